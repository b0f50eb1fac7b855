"""The nucleus segmenter's encoder as a cell embedder (``backbone: nucleus``).

The shipped HV-net (``wsicell/segment/hvnet.py``) was trained to find nuclei and to outline
them, on CoNSeP's train tiles and the MoNuSeg images (7 organs, many hospitals), with
stains jittered; no cell-type label was used. Its encoder has learned what a nucleus looks
like to a segmenter: chromatin, edges, the nucleus against its surroundings. A cell's
embedding is the average-pooled output of the chosen encoder levels (``embed_stages``,
1-5: 8, 16, 32, 64 and 128 channels), each L2-normalised, concatenated in level order; the
decoder and the heads are not used. The weights start as the shipped ones (a run with
``epochs: 0`` embeds with them as they are; a run's checkpoint holds them, so its
embeddings do not change if the package's weights do).

The input is a float batch in [0, 1], NCHW, as the segmenter sees tiles (no normalisation).
The HV-net's BatchNorm statistics are the segmenter's: this module is meant for eval mode.
The weights are CC BY-NC-SA 4.0 (MoNuSeg; ``wsicell/segment/hvnet_weights.md``), and so is
an embedding made with them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wsicell.train.config import NUCLEUS_CHANNELS, nucleus_channels, valid_stages


class NucleusEncoder(nn.Module):
    """(N, 3, H, W) in [0, 1] -> (N, channels of ``stages``): the HV-net's encoder levels, pooled."""

    def __init__(self, stages: tuple[int, ...] = (3, 4, 5), *, pretrained: bool = True) -> None:
        super().__init__()
        from wsicell.segment.hvnet import CHANNELS, WEIGHTS_PATH, build_hvnet, load_hvnet

        if not valid_stages(tuple(stages), "nucleus"):
            raise ValueError(f"stages must be increasing, distinct and among 1-{len(NUCLEUS_CHANNELS)}, got {stages}")
        if tuple(CHANNELS) != NUCLEUS_CHANNELS:
            raise ValueError(f"the segmenter's channels {CHANNELS} are not train.config.NUCLEUS_CHANNELS")
        net = load_hvnet(WEIGHTS_PATH) if pretrained else build_hvnet(CHANNELS)
        self.levels = net.enc  # all five, so that runs with other stages share one state_dict
        self.pool = nn.MaxPool2d(2)
        self.stages = tuple(stages)
        self.out_dim = nucleus_channels(self.stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = []
        for level, block in enumerate(self.levels, start=1):
            x = block(x if level == 1 else self.pool(x))  # x: N x C_level x H/2^(level-1) x ...
            if level in self.stages:
                pooled.append(F.normalize(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1), dim=1))
            if level == self.stages[-1]:
                break  # the deeper levels do not enter the embedding
        return torch.cat(pooled, dim=1)  # N x out_dim
