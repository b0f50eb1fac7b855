"""Self-supervised methods besides CCRL: SimCLR for histopathology and SSLP.

A method is its heads, its loss and its view/positive sampling; backbone, data loading,
augmentation primitives and the run directory are shared with CCRL (``wsicell.train``).
See ``docs/methods.md`` for the choices made for cells.
"""
