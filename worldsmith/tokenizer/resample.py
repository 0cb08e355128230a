"""Spatial and causal temporal down/upsampling of channels-last features ``(B, T, H, W, C)``.

Cosmos (arXiv 2501.03575, Sec. 3.1) downsamples with strided factorized convolutions and upsamples by repetition
followed by convolutions. Here:

* spatial down: a ``3 x 3`` stride-2 convolution on every frame;
* temporal down: a causal ``3 x 1 x 1`` stride-2 convolution; ``1 + 2n`` frames -> ``1 + n``, the first frame
  kept alone (output ``j >= 1`` reads input frames ``2j - 2 .. 2j``);
* spatial up: a ``3 x 3`` convolution to ``4 C`` channels, then depth-to-space (sub-pixel convolution; the same
  cost as "repeat then convolve" but every output pixel gets its own weights);
* temporal up: a per-frame linear map to ``2 C`` channels, then depth-to-time, dropping the first of the two
  frames made from latent frame 0: ``1 + n`` frames -> ``1 + 2n``, undoing the temporal down's frame count.
"""

from __future__ import annotations

import torch
from torch import nn

from worldsmith.tokenizer.causal_conv import CausalTemporalConv, SpatialConv, State


class SpatialDown(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = SpatialConv(channels, channels, kernel=3, stride=2)

    def forward(self, x: torch.Tensor, state: State = None) -> torch.Tensor:
        return self.conv(x)  # (B, T, H/2, W/2, C)


class TemporalDown(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = CausalTemporalConv(channels, channels, kernel=3, stride=2)

    def forward(self, x: torch.Tensor, state: State = None) -> torch.Tensor:
        return self.conv(x, state)  # (B, 1 + (T-1)/2, H, W, C) for a first chunk, (B, T/2, H, W, C) after


class SpatialUp(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = SpatialConv(channels, 4 * channels)

    def forward(self, x: torch.Tensor, state: State = None) -> torch.Tensor:
        b, t, h, w, _ = x.shape
        y = self.conv(x).reshape(b, t, h, w, 2, 2, -1)  # (B, T, H, W, 2, 2, C)
        return y.permute(0, 1, 2, 4, 3, 5, 6).reshape(b, t, 2 * h, 2 * w, -1)  # (B, T, 2H, 2W, C)


class TemporalUp(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(channels, 2 * channels)

    def forward(self, x: torch.Tensor, state: State = None) -> torch.Tensor:
        b, t, h, w, _ = x.shape
        y = self.proj(x).reshape(b, t, h, w, 2, -1)  # (B, T, H, W, 2, C)
        y = y.permute(0, 1, 4, 2, 3, 5).reshape(b, 2 * t, h, w, -1)  # (B, 2T, H, W, C)
        first = state is None or self not in state
        if state is not None:
            state[self] = True  # later chunks keep both frames of every latent frame
        return y[:, 1:] if first else y  # latent frame 0 decodes to one frame
