"""Training settings: one registry of methods, and the library applying a method's paper defaults."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from wsicell.cli import main
from wsicell.train import config as train_config_module
from wsicell.train.config import TrainConfig, train_config
from wsicell.train.method import build_method
from wsicell.train.methods.registry import METHODS, REGISTRY, method_defaults, method_title


def test_every_list_of_methods_is_the_registry() -> None:
    assert train_config_module.METHODS == METHODS == tuple(REGISTRY) == ("ccrl", "simclr", "sslp", "stain-distill")
    help_text = " ".join(CliRunner().invoke(main, ["train", "--help"]).output.split())
    assert "[ccrl|simclr|sslp|stain-distill]" in help_text
    for name in METHODS:
        method = build_method(train_config(method=name, width=4, crop_size=16, batch_size=8, queue_size=8))
        assert method.name == name and method_title(name) == REGISTRY[name].title


def test_the_library_applies_a_methods_paper_settings() -> None:
    simclr = train_config(method="simclr")
    assert simclr.temperature == 0.1 and simclr.weight_decay == 1e-6 and simclr.projector_dims == (512, 128)
    assert simclr.batch_size == 512 and simclr.lr == pytest.approx(0.3 * 512 / 256)  # LARS: 0.3 x batch / 256
    small = train_config(method="simclr", batch_size=256)
    assert small.lr == pytest.approx(0.3) and train_config(method="simclr", lr=0.05).lr == 0.05  # given values win
    assert train_config(method="sslp").temperature == 0.1 and train_config(method="sslp").lr == TrainConfig().lr
    assert train_config() == TrainConfig() == train_config(method="ccrl")
    assert method_defaults("ccrl") == {}
    with pytest.raises(ValueError, match="method must be one of"):
        method_defaults("byol")


@pytest.mark.parametrize("name", ["ccrl", "ccrl-cpu-fast", "ccrl-cpu-stain", "cpu-untrained", "simclr", "simclr-cpu-fast", "sslp", "sslp-cpu-fast", "stain-distill-cpu-fast", "nucleus-untrained"])
def test_every_training_preset_loads(name: str) -> None:
    from pathlib import Path

    from wsicell.config import load_config

    config = load_config(TrainConfig, Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml")
    assert config.method in METHODS
    if name == "ccrl-cpu-stain":  # the multi-lab preset: stain changes instead of RGB jitter and grayscale
        assert (config.stain_jitter, config.jitter_p, config.grayscale_p) == (0.3, 0.0, 0.0)


def test_embed_from_sets_what_embed_stores() -> None:
    """Tile features need no training; their width joins the crop embedding's."""
    crops = TrainConfig(backbone="nucleus", epochs=0, embed_stages=(3, 4, 5))
    assert crops.cell_embedding_dim == crops.embedding_dim == 224
    assert TrainConfig(backbone="nucleus", epochs=0, embed_stages=(3, 4, 5), embed_from="tile").cell_embedding_dim == 224
    joined = TrainConfig(backbone="nucleus", epochs=3, embed_stages=(3, 4), embed_from="crops+tile")  # trainable
    assert joined.embedding_dim == 96 and joined.cell_embedding_dim == 96 + 224
    with pytest.raises(ValueError, match="embed_from: tile embeds with the features extraction keeps .* epochs must be 0"):
        TrainConfig(backbone="nucleus", epochs=1, embed_from="tile")
    with pytest.raises(ValueError, match="embed_from must be one of crops, tile, crops\\+tile"):
        TrainConfig(embed_from="segmenter")
