"""`wsicell train` (to be written)."""

COMMANDS: list = []
