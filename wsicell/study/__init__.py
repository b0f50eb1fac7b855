"""A whole study at once: per-slide tables and spatial statistics, scverse export, and
naming clusters from a pathologist's labels (a folder of slides' maps: wsicell.mapping)."""
