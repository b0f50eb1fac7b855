"""`wsicell embed` (to be written)."""

COMMANDS: list = []
