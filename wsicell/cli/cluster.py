"""`wsicell cluster` (to be written)."""

COMMANDS: list = []
