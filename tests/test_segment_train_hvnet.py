"""Training targets and loss of the HV-net (``wsicell.segment.train_hvnet``)."""

from __future__ import annotations

import numpy as np
import torch

from wsicell.segment.train_hvnet import GAP_RADII, gaps, loss_fn, sobel_kernels


def naive_gaps(labels: np.ndarray) -> np.ndarray:
    """Per pixel and radius: the distinct nucleus labels in its window, counted in a loop."""
    h, w = labels.shape
    out = np.zeros((h, w), np.float32)
    for y in range(h):
        for x in range(w):
            if labels[y, x]:
                continue
            for r in GAP_RADII:
                window = labels[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1]
                out[y, x] += len(set(window[window > 0].tolist())) >= 2
    return out / len(GAP_RADII)


def test_gaps_match_the_per_pixel_reference():
    labels = np.zeros((40, 40), np.int32)
    labels[5:15, 5:15] = 1
    labels[5:15, 16:26] = 2  # one px of background between 1 and 2
    labels[23:30, 5:15] = 3  # 8 px below 1: its middle is farther than the largest radius from both
    labels[30:36, 30:36] = 7
    labels[32:34, 36:38] = 8  # touching 7: no background between them
    got = gaps(labels)
    np.testing.assert_array_equal(got, naive_gaps(labels))
    assert got[10, 15] == 1 and got[18, 10] == 0 and got[31, 36] == 1 and got[labels > 0].max() == 0


def test_the_gap_weight_raises_the_loss_only_where_background_between_nuclei_is_called_nucleus():
    y = torch.zeros(1, 4, 16, 16)
    y[0, 0, 4:8, 2:7] = y[0, 0, 4:8, 8:13] = 1  # two nuclei, a one-px gap at column 7
    y[0, 3, 4:8, 7] = 1
    kernels, has_hv = sobel_kernels(), torch.tensor([False])
    logit = torch.where(y[:, :1] > 0, 4.0, -4.0).repeat(1, 3, 1, 1)
    bridged = logit.clone()
    bridged[0, 0, 4:8, 7] = 4.0  # the gap called nucleus
    def cost_of_bridging(gap_weight: float) -> float:
        return float(loss_fn(bridged, y, has_hv, kernels, gap_weight=gap_weight)
                     - loss_fn(logit, y, has_hv, kernels, gap_weight=gap_weight))  # fmt: skip

    assert cost_of_bridging(0) > 0
    assert cost_of_bridging(10) > 5 * cost_of_bridging(0)  # the 4 gap pixels weigh 11x
