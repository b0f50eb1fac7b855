"""Self-supervised training on the cell store (CCRL by default; see docs/training.md).

Import the pieces from their modules (``wsicell.train.loop.train``,
``wsicell.train.config.TrainConfig``); this package imports nothing heavy itself.
"""
