"""Reading slides, finding tissue and cutting tiles."""
