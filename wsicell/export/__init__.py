"""Handing clusters back to people: QuPath GeoJSON, overlay pictures, crop galleries."""
