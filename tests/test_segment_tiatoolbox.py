"""The tiatoolbox (HoVer-Net) backend end to end, with random weights saved to a local file.

Skipped when the optional extra is not installed (``make tiatoolbox``).
"""

from __future__ import annotations

import numpy as np
import pytest

from wsicell.errors import ConfigError
from wsicell.io.slide import open_slide
from wsicell.segment import SegmentConfig, make_segmenter

hovernet = pytest.importorskip(
    "tiatoolbox.models.architecture.hovernet", reason="tiatoolbox not installed (optional: `make tiatoolbox`)"
)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    model = hovernet.HoVerNet(num_types=6, mode="fast")  # the hovernet_fast-pannuke architecture
    path = tmp_path_factory.mktemp("weights") / "hovernet-random.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.slow
def test_hovernet_backend_runs_on_a_slide_region(sample_slide, random_weights):
    with open_slide(sample_slide) as slide:
        # ~41 x 41 µm read at the model's 0.25 µm/px: 164 px, one output patch
        image = slide.read((1000, 1000, 1082, 1082), 0.25)
    segmenter = make_segmenter(SegmentConfig(method="tiatoolbox", weights=str(random_weights)))
    assert segmenter.name == "tiatoolbox" and segmenter.max_nucleus_um > 0
    labels = segmenter.segment(image, mpp=0.25)
    assert labels.shape == image.shape[:2] and labels.dtype == np.int32
    assert labels.min() >= 0  # random weights may find no nuclei or many


def test_missing_weights_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="weights file not found"):
        make_segmenter(SegmentConfig(method="tiatoolbox", weights=str(tmp_path / "nope.pth")))
