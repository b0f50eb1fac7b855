"""Cluster names and colours: defaults, the palette, and the YAML file's validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsicell.errors import ConfigError
from wsicell.export.names import default_styles, load_styles
from wsicell.export.palette import PALETTE, cluster_color

EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "cluster-names.example.yaml"


def test_defaults_are_named_and_distinct() -> None:
    styles = default_styles(40)
    assert [s.name for s in styles[:3]] == ["Cluster 0", "Cluster 1", "Cluster 2"]
    colors = [s.color for s in styles]
    assert len(set(colors)) == 40
    assert colors[:20] == list(PALETTE)
    assert all(0 <= c <= 255 and isinstance(c, int) for color in colors for c in color)
    a, b = cluster_color(0), cluster_color(1)
    assert sum(abs(x - y) for x, y in zip(a, b, strict=True)) > 150  # neighbours clearly differ


def test_example_file_loads() -> None:
    styles = load_styles(EXAMPLE, k=6)
    assert styles[0].name == "Tumour epithelium" and styles[0].color == (230, 25, 75)
    assert styles[1].color == (0x3C, 0xB4, 0x4B)
    assert styles[3].name == "Endothelial" and styles[3].color == cluster_color(3)
    assert styles[5].name == "Cluster 5"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("clusters:\n  9: {name: X}\n", "no such cluster; the store's clustering has k=6"),
        ("clusters:\n  a: {name: X}\n", "cluster keys must be integers"),
        ("clusters:\n  0: {name: X, color: [300, 0, 0]}\n", "integers 0-255"),
        ("clusters:\n  0: {name: X, color: '#12345'}\n", "is not #rrggbb"),
        ("clusters:\n  0: {name: X, colour: [1, 2, 3]}\n", "unknown key(s) colour"),
        ("clusters:\n  0: {name: ''}\n", "non-empty string"),
        ("- 0\n- 1\n", "top-level 'clusters:'"),
        ("clusters: {0: {name: A, color: [1,2,3]}, 1: {name: A, color: [4,5,6]}}\n", "different colours"),
        ("clusters: [\n", "not valid YAML"),
    ],
)
def test_bad_files_say_what_and_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "names.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_styles(path, k=6)
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cluster-names file not found"):
        load_styles(tmp_path / "nope.yaml", k=3)
