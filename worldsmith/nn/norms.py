"""Normalization layers that behave under autocast."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.RMSNorm):
    """``nn.RMSNorm`` whose weight follows the input's dtype: under bf16 autocast the queries and keys arrive in bf16
    while the weight stays fp32, and ``torch.rms_norm`` then leaves its fused kernel with a warning on every run.
    The parameters (and so the checkpoints) are those of ``nn.RMSNorm``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.to(x.dtype) if self.weight is not None else None
        return F.rms_norm(x, self.normalized_shape, weight, self.eps)
