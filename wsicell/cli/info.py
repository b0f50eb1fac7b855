"""`wsicell info` (to be written)."""

COMMANDS: list = []
