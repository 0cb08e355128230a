"""Position and scalar embeddings: sinusoidal features (1D and 3D) and a factorized learnable 3D table.

* ``sinusoidal``: scalars -> [cos, sin] features at geometric frequencies (Vaswani et al. 2017, Sec. 3.5), for noise
  levels, time, actions ...;
* ``raster_positions`` + ``sinusoidal_3d``: the absolute embedding of tokens of a (t, h, w) grid, one band of
  channels per axis, split like the 3D RoPE (``rope.axis_dims``);
* ``PositionEmbedding``: a learnable e[t] + e[h] + e[w] table (Cosmos' extra absolute position embedding).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from worldsmith.errors import ConfigError
from worldsmith.nn.rope import axis_dims


def sinusoidal(x: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(...,) -> (..., dim) sinusoidal features (Vaswani et al. 2017, Sec. 3.5): [cos(x f_i), sin(x f_i)]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=x.device) / half)
    angles = x.float()[..., None] * freqs  # (..., half)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, T', H', W') -> (B, T', h*w, C*p*p) with h = H'/p, w = W'/p: the DiT's tokens, and the per-token inputs
    of the condition embedders that add to them (camera rays, the origin frame)."""
    b, c, t, hh, ww = x.shape
    x = x.reshape(b, c, t, hh // p, p, ww // p, p).permute(0, 2, 3, 5, 1, 4, 6)  # (B, T', h, w, C, p, p)
    return x.reshape(b, t, (hh // p) * (ww // p), c * p * p)


def raster_positions(frames: int, height: int, width: int) -> torch.Tensor:
    """(t, y, x) coordinates (frames * height * width, 3) int64 of a token grid in raster order."""
    t, y, x = torch.meshgrid(torch.arange(frames), torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([t, y, x], dim=-1).reshape(-1, 3)  # (N, 3)


def sinusoidal_3d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Absolute 3D sinusoidal embedding (N, dim) float32 of positions (N, 3): per axis band (the RoPE split)
    ``sin(p w_i), cos(p w_i)`` with ``w_i = 10000 ** (-2i / band)``, the bands concatenated."""
    parts = []
    for i, band in enumerate(axis_dims(dim)):
        freqs = 10000.0 ** (-torch.arange(0, band, 2, dtype=torch.float64) / band)  # (band/2,)
        angles = positions[:, i].to(torch.float64)[:, None] * freqs[None]  # (N, band/2)
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1).float()  # (N, dim)


class PositionEmbedding(nn.Module):
    """Learnable absolute position embedding, factorized: e[t] + e[h] + e[w].

    Tables cover ``max_tokens`` (t, h, w) positions; a relative embedding (RoPE) carries position beyond them.
    """

    def __init__(self, width: int, max_tokens: tuple[int, int, int]) -> None:
        super().__init__()
        self.max_tokens = max_tokens
        self.t, self.h, self.w = (nn.Parameter(torch.zeros(n, width)) for n in max_tokens)

    def forward(self, t: int, h: int, w: int) -> torch.Tensor:
        """(t*h*w, D) embedding of a (t, h, w) token grid in row-major order."""
        if t > self.max_tokens[0] or h > self.max_tokens[1] or w > self.max_tokens[2]:
            raise ConfigError(
                f"a latent grid of {t}x{h}x{w} tokens exceeds the absolute position table "
                f"({'x'.join(map(str, self.max_tokens))}); generate fewer frames or a smaller size, or train with a "
                f"larger model.dit.max_latent."
            )
        emb = self.t[:t, None, None] + self.h[None, :h, None] + self.w[None, None, :w]  # (t, h, w, D)
        return emb.reshape(t * h * w, -1)


class LatentTokens(nn.Module):
    """Latent frames as a token condition: (B, C, T', H', W') patchified like the DiT's input and projected to its
    width, (B, T', h*w, D), through a zero-initialised linear (a base post-trained with it starts as the base). The
    shared body of the embedders that show the model a latent frame (the rollout's origin, the warped first frame)."""

    target = "tokens"
    channels = 0

    def __init__(self, latent_channels: int, width: int, patch: int) -> None:
        super().__init__()
        self.patch, self.latent_channels = patch, latent_channels
        self.proj = nn.Linear(latent_channels * patch * patch, width, bias=False)
        nn.init.zeros_(self.proj.weight)

    def tokens(self, latents: torch.Tensor) -> torch.Tensor:
        return self.proj(patchify(latents, self.patch).to(self.proj.weight.dtype))
