"""Cluster names and colours: defaults, or a YAML file a pathologist fills in.

File format (see configs/cluster-names.example.yaml)::

    clusters:
      0: {name: Tumour epithelium, color: [230, 25, 75]}
      1: {name: Lymphocyte, color: "#3cb44b"}
      2: {name: Stroma}            # colour omitted: the default palette colour

Clusters not listed keep "Cluster N" and the palette colour. Errors name the file and the
entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from wsicell.errors import ConfigError
from wsicell.export.palette import RGB, cluster_color
from wsicell.types import PathLikeStr


@dataclass(frozen=True)
class ClusterStyle:
    """How one cluster is shown: its class name in QuPath and its colour."""

    name: str
    color: RGB

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if len(self.color) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in self.color):
            raise ValueError(f"color must be three integers 0-255, got {self.color!r}")


def default_styles(k: int) -> list[ClusterStyle]:
    """"Cluster 0".."Cluster k-1" with the palette's colours."""
    return [ClusterStyle(f"Cluster {i}", cluster_color(i)) for i in range(k)]


def load_styles(path: PathLikeStr | None, *, k: int) -> list[ClusterStyle]:
    """The styles of clusters 0..k-1: defaults overridden by the YAML file at ``path``."""
    styles = default_styles(k)
    if path is None:
        return styles
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: cluster-names file not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from None
    if not isinstance(data, dict) or set(data) != {"clusters"} or not isinstance(data["clusters"], dict):
        raise ConfigError(f"{p}: expected a top-level 'clusters:' mapping of cluster number -> {{name, color}}")
    names_seen: dict[str, int] = {}
    for key, entry in data["clusters"].items():
        where = f"{p}: cluster {key!r}"
        if isinstance(key, bool) or not isinstance(key, int):
            raise ConfigError(f"{where}: cluster keys must be integers 0..{k - 1}")
        if not 0 <= key < k:
            raise ConfigError(f"{where}: no such cluster; the store's clustering has k={k} (0..{k - 1})")
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected {{name: ..., color: ...}}, got {entry!r}")
        unknown = sorted(set(entry) - {"name", "color"})
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known: name, color")
        name = entry.get("name", styles[key].name)
        color = parse_color(entry["color"], where) if "color" in entry else styles[key].color
        try:
            styles[key] = ClusterStyle(name, color)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    for i, s in enumerate(styles):  # QuPath keeps one colour per class name
        j = names_seen.setdefault(s.name, i)
        if styles[j].color != s.color:
            raise ConfigError(
                f"{p}: clusters {j} and {i} are both named {s.name!r} but have different colours; "
                "QuPath keeps one colour per class: give them the same colour"
            )
    return styles


def parse_color(value: object, where: str) -> RGB:
    """[r, g, b] (0-255 integers) or "#rrggbb"."""
    if isinstance(value, str):
        m = re.fullmatch(r"#?([0-9a-fA-F]{6})", value.strip())
        if not m:
            raise ConfigError(f"{where}: color {value!r} is not #rrggbb")
        h = m.group(1)
        return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
    if (
        isinstance(value, (list, tuple))
        and len(value) == 3
        and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value)
    ):
        return (value[0], value[1], value[2])
    raise ConfigError(f"{where}: color must be [r, g, b] with integers 0-255 or \"#rrggbb\", got {value!r}")
