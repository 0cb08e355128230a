"""3D Haar-wavelet patching: the tokenizer's first (and the decoder's last) step, done as one matrix product.

The Cosmos tokenizer (arXiv 2501.03575, Sec. 3.1 "Tokenizer", Fig. 4) starts by applying a ``log2(p)``-level 3D
Haar wavelet transform that folds every ``p x p x p`` block of the video into ``3 * p**3`` channels, so the
network never sees redundant pixels. Every level filters *all* sub-bands again (a full wavelet packet), so the
whole transform of one block is the fixed orthogonal matrix ``kron(M_t, M_h, M_w)`` with
``M_2 = [[1, 1], [1, -1]] / sqrt(2)`` and ``M_4 = kron(M_2, M_2)``. We apply it as a reshape and a single matrix
product instead of the reference's 14 grouped convolutions per level.

Scaling follows the reference (each level divides by ``sqrt(8)``): the first channel of a block is the block mean.

Causality: the first frame is repeated ``p_t - 1`` times in front, so ``1 + T`` frames become ``1 + T / p_t`` patch
frames and the first patch frame depends on the first video frame alone (an image is a one-frame video).

Layout: patches come out channels-last, ``(B, T', H', W', 3 * p_t * p * p)``, the layout every tokenizer layer uses.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def haar_matrix(n: int) -> torch.Tensor:
    """Orthonormal full-packet Haar matrix of size ``n`` (a power of two; ``n = 1`` is the identity)."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"Haar size must be a power of two, got {n}")
    m = torch.ones(1, 1, dtype=torch.float64)
    h2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / math.sqrt(2.0)
    for _ in range(int(math.log2(n))):
        m = torch.kron(h2, m)
    return m


class HaarPatcher(nn.Module):
    """Video (B, 3, 1 + T, H, W) <-> channels-last Haar patches (B, 1 + T / pt, H / ps, W / ps, 3 * pt * ps * ps)."""

    def __init__(self, spatial_patch: int, temporal_patch: int, channels: int = 3) -> None:
        super().__init__()
        self.ps, self.pt, self.channels = spatial_patch, temporal_patch, channels
        h_t, h_s = haar_matrix(temporal_patch), haar_matrix(spatial_patch)
        block = torch.kron(torch.kron(h_t, h_s), h_s)  # (P, P), P = pt * ps * ps, block index (t, y, x)
        levels_scale = math.sqrt(temporal_patch * spatial_patch * spatial_patch)  # sqrt(8) per 3D level, as Cosmos
        self.register_buffer("analysis", (block / levels_scale).to(torch.float32), persistent=False)  # (P, P)
        self.register_buffer("synthesis", (block.T * levels_scale).to(torch.float32), persistent=False)  # inverse

    @property
    def out_channels(self) -> int:
        return self.channels * self.pt * self.ps * self.ps

    def patchify(self, video: torch.Tensor, first_chunk: bool = True) -> torch.Tensor:
        """video (B, C, T, H, W) -> (B, T', H', W', C * pt * ps * ps).

        ``first_chunk``: the chunk starts the video, so its first frame is repeated ``pt - 1`` times in front
        (T = 1 + k * pt); a later streaming chunk holds whole blocks only (T = k * pt).
        """
        b, c, t, h, w = video.shape
        pt, ps = self.pt, self.ps
        if first_chunk and pt > 1:
            video = torch.cat([video[:, :, :1].expand(b, c, pt - 1, h, w), video], dim=2)  # (B, C, k*pt, H, W)
            t = video.shape[2]
        x = video.reshape(b, c, t // pt, pt, h // ps, ps, w // ps, ps)  # (B, C, T', pt, H', ps, W', ps)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # (B, T', H', W', C, pt, ps, ps)
        x = x.reshape(b, t // pt, h // ps, w // ps, c, pt * ps * ps)  # (B, T', H', W', C, P)
        x = torch.matmul(x, self.analysis.to(x.dtype).T)  # Haar packet coefficients per block
        return x.reshape(b, t // pt, h // ps, w // ps, c * pt * ps * ps)  # (B, T', H', W', C*P)

    def unpatchify(self, x: torch.Tensor, first_chunk: bool = True) -> torch.Tensor:
        """(B, T', H', W', C * P) -> video (B, C, T, H, W); drops the ``pt - 1`` repeated frames of a first chunk."""
        b, tp, hp, wp, _ = x.shape
        pt, ps, c = self.pt, self.ps, self.channels
        x = x.reshape(b, tp, hp, wp, c, pt * ps * ps)  # (B, T', H', W', C, P)
        x = torch.matmul(x, self.synthesis.to(x.dtype).T)  # back to pixels of each block
        x = x.reshape(b, tp, hp, wp, c, pt, ps, ps)  # (B, T', H', W', C, pt, ps, ps)
        x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)  # (B, C, T', pt, H', ps, W', ps)
        video = x.reshape(b, c, tp * pt, hp * ps, wp * ps)  # (B, C, T'*pt, H, W)
        return video[:, :, pt - 1 :] if first_chunk else video
