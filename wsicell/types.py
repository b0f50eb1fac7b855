"""Domain types, named once.

Coordinates are always (x, y) in level-0 pixels unless a name says otherwise.
"""

from __future__ import annotations

from os import PathLike
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

PathLikeStr: TypeAlias = str | PathLike[str]
RGBImage: TypeAlias = npt.NDArray[np.uint8]  # (H, W, 3) uint8
LabelImage: TypeAlias = npt.NDArray[np.int32]  # (H, W) instance labels, 0 = background
Mask: TypeAlias = npt.NDArray[np.bool_]  # (H, W)
IntPoint: TypeAlias = tuple[int, int]  # (x, y)
Size: TypeAlias = tuple[int, int]  # (width, height)
Bounds: TypeAlias = tuple[int, int, int, int]  # (x0, y0, x1, y1), half-open
