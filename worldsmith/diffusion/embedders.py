"""Embedders feeding the DiT: the noise level, absolute positions, and the slot for extra conditions.

The extra-conditioning slot: a condition (actions, camera poses, views ...) is a module with

    name: str                                 # key of its value in ``Condition.extras``
    target: "modulation" | "channels"
    channels: int                             # "channels" only: input channels it adds
    forward(value, latent_shape) -> tensor    # latent_shape = (B, T', H', W')
        "modulation": (B, D) or (B, T', D), added to the noise embedding that drives every AdaLN-LoRA modulation
        "channels":   (B, channels, T', H', W'), concatenated to the latents before the patch embedding

Pass such modules to ``DiT(cfg, embedders=[...])`` (a model subclass builds them from its config); the DiT's
forward stays the same for every condition.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol

import torch
from torch import nn

from worldsmith.errors import ConfigError


class ConditionEmbedder(Protocol):
    name: str
    target: Literal["modulation", "channels"]
    channels: int

    def __call__(self, value: torch.Tensor, latent_shape: tuple[int, int, int, int]) -> torch.Tensor: ...


def sinusoidal(x: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(...,) -> (..., dim) sinusoidal features (Vaswani et al. 2017, Sec. 3.5): [cos(x f_i), sin(x f_i)]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=x.device) / half)
    angles = x.float()[..., None] * freqs  # (..., half)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class NoiseEmbedder(nn.Module):
    """EDM's c_noise = ln(sigma) / 4 per latent frame -> embedding (B, Tm, D) and the AdaLN-LoRA term (B, Tm, 3D).

    Cosmos (arXiv 2501.03575, Sec. 5.1): the noise embedding is shared by all blocks; each block adds its own
    low-rank modulation (see ``Modulation`` in dit.py) to the shared 3D-wide ``lora`` term.
    """

    def __init__(self, width: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.lora = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width, bias=False))

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        """c_noise (B, Tm) -> embedding (B, Tm, D); scaled by 1000 so one unit of ln(sigma) spans many periods."""
        return self.mlp(sinusoidal(c_noise * 1000.0, self.freq_dim))


class PositionEmbedding(nn.Module):
    """Learnable absolute position embedding, factorized: e[t] + e[h] + e[w] (Cosmos' extra position embedding).

    Tables cover ``max_latent`` (T', H', W') latents in patches; RoPE carries position beyond them.
    """

    def __init__(self, width: int, max_tokens: tuple[int, int, int]) -> None:
        super().__init__()
        self.max_tokens = max_tokens
        self.t, self.h, self.w = (nn.Parameter(torch.zeros(n, width)) for n in max_tokens)

    def forward(self, t: int, h: int, w: int) -> torch.Tensor:
        """(t*h*w, D) embedding of a (t, h, w) token grid in row-major order."""
        if t > self.max_tokens[0] or h > self.max_tokens[1] or w > self.max_tokens[2]:
            raise ConfigError(
                f"a latent grid of {t}x{h}x{w} tokens exceeds the absolute position table ({'x'.join(map(str, self.max_tokens))}); "
                f"generate fewer frames or a smaller size, or train with a larger model.dit.max_latent."
            )
        emb = self.t[:t, None, None] + self.h[None, :h, None] + self.w[None, None, :w]  # (t, h, w, D)
        return emb.reshape(t * h * w, -1)
