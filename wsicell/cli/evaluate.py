"""`wsicell evaluate` (to be written)."""

COMMANDS: list = []
