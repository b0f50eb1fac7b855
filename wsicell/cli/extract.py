"""`wsicell extract` (to be written)."""

COMMANDS: list = []
