"""A whole study at once: per-slide tables and spatial statistics, scverse export, naming
clusters from a pathologist's labels, and mapping a folder of slides."""
