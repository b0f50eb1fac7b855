"""`wsicell map` (to be written)."""

COMMANDS: list = []
