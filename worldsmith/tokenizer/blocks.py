"""Per-frame normalization and the factorized causal residual block of the Cosmos tokenizer.

Cosmos (arXiv 2501.03575, Sec. 3.1) builds encoder and decoder from residual blocks of two factorized causal
convolutions, normalized with a one-group GroupNorm computed *per frame* (statistics over C, H, W of that frame
only), which keeps the network causal. Features are channels-last ``(B, T, H, W, C)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from worldsmith.tokenizer.causal_conv import FactorizedCausalConv, State


class FrameNorm(nn.Module):
    """GroupNorm with one group, per frame: normalize over (H, W, C) of each frame, then a per-channel affine."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h, w, c = x.shape
        frames = x.reshape(b * t, h, w, c).permute(0, 3, 1, 2)  # (B*T, C, H, W), channels-last view
        y = F.group_norm(frames, 1, self.weight, self.bias, self.eps)  # statistics per frame
        return y.permute(0, 2, 3, 1).reshape(b, t, h, w, c)


class ResBlock(nn.Module):
    """x + conv2(silu(norm2(conv1(silu(norm1(x)))))), each conv a factorized causal conv."""

    def __init__(self, cin: int, cout: int, temporal: bool = True) -> None:
        super().__init__()
        self.norm1, self.norm2 = FrameNorm(cin), FrameNorm(cout)
        self.conv1 = FactorizedCausalConv(cin, cout, temporal)
        self.conv2 = FactorizedCausalConv(cout, cout, temporal)
        self.skip = nn.Linear(cin, cout) if cin != cout else None

    def forward(self, x: torch.Tensor, state: State = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x), inplace=True), state)  # (B, T, H, W, Cout)
        h = self.conv2(F.silu(self.norm2(h), inplace=True), state)
        return (self.skip(x) if self.skip is not None else x) + h
