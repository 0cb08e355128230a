"""Finite scalar quantization (Mentzer et al. 2023, arXiv 2309.15505), the discrete bottleneck of DV tokenizers.

Each of the ``d = len(levels)`` latent channels is squashed to a bounded range and rounded to one of ``L_i``
evenly spaced values in ``[-1, 1]``; a token is the mixed-radix number of the ``d`` digits, so the codebook has
``prod(levels)`` entries (``[8, 8, 8, 5, 5, 5]`` -> 64,000, the Cosmos DV setting, arXiv 2501.03575 Sec. 3.1).
Gradients pass the rounding unchanged (straight-through estimator, FSQ eq. 2).

Bound: ``f(z) = tanh(a z) / tanh(a)`` with a slope ``a`` chosen so that ``f`` moves no grid value by half a step:
quantizing a code gives the same code back (``quantize`` is idempotent on its own outputs), so decoded tokens
re-encode to themselves. Values past the ends round to the end values.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from worldsmith.errors import ConfigError


def _slope(levels: tuple[int, ...]) -> float:
    """Largest a in a 1/64 grid (<= 1) for which tanh(a g)/tanh(a) stays within 0.45 steps of every grid value g."""
    worst = max(levels)
    grid = torch.linspace(-1, 1, worst, dtype=torch.float64)
    half_step = 1.0 / (worst - 1)
    for a in (i / 64 for i in range(64, 0, -1)):
        moved = (torch.tanh(a * grid) / math.tanh(a) - grid).abs().max().item()
        if moved < 0.9 * half_step:
            return a
    return 1.0 / 64


class FSQ(nn.Module):
    """z (B, d, ...) -> codes (B, d, ...) in [-1, 1] on the grid; codes <-> integer tokens (B, ...)."""

    def __init__(self, levels: tuple[int, ...] | list[int]) -> None:
        super().__init__()
        levels = tuple(int(v) for v in levels)
        if not levels or any(v < 2 or v > 64 for v in levels):
            raise ConfigError(f"fsq_levels must be a non-empty list of integers in [2, 64], got {list(levels)}.")
        self.levels = levels
        self.slope = _slope(levels)
        basis = [math.prod(levels[:i]) for i in range(len(levels))]
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.int64), persistent=False)
        self.register_buffer("_basis", torch.tensor(basis, dtype=torch.int64), persistent=False)

    @property
    def dim(self) -> int:
        return len(self.levels)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    def _per_channel(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        return t.view(1, -1, *([1] * (ndim - 2)))  # (1, d, 1, ...) broadcast over (B, d, ...)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.slope * z) / math.tanh(self.slope)

    def digits(self, codes: torch.Tensor) -> torch.Tensor:
        """codes in [-1, 1] (B, d, ...) -> nearest grid digits in [0, L_i) as int64."""
        span = self._per_channel(self._levels, codes.ndim) - 1  # L - 1
        d = torch.round((codes.clamp(-1, 1) + 1) * span.to(codes.dtype) / 2)
        return d.to(torch.int64)

    def from_digits(self, digits: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        span = (self._per_channel(self._levels, digits.ndim) - 1).to(dtype)
        return digits.to(dtype) * 2 / span - 1

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, d, ...) -> codes on the grid (B, d, ...), straight-through gradient."""
        if z.shape[1] != self.dim:
            raise ValueError(f"FSQ expects {self.dim} channels at dim 1, got {z.shape[1]}")
        y = self.bound(z)
        q = self.from_digits(self.digits(y), y.dtype)
        return y + (q - y).detach()

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, d, ...) -> tokens (B, ...) int64 in [0, prod(levels))."""
        return self.digits_to_indices(self.digits(codes))

    def digits_to_indices(self, digits: torch.Tensor) -> torch.Tensor:
        return (digits * self._per_channel(self._basis, digits.ndim)).sum(1)

    def stable_digits(self, y: torch.Tensor, margin: float, prev: torch.Tensor | None = None) -> torch.Tensor:
        """Digits (B, d, T, ...) of bounded values y (B, d, T, ...) with hysteresis along T: a digit keeps its
        value from the frame before (``prev`` (B, d, ...) before the first) while y stays within ``0.5 + margin``
        grid steps of it, so noise at a rounding boundary does not flip the token from frame to frame. margin 0
        is plain rounding."""
        span = (self._per_channel(self._levels, y.ndim) - 1).to(y.dtype)
        u = (y.clamp(-1, 1) + 1) * span / 2  # position on the grid, in steps
        out = torch.round(u)
        for t in range(u.shape[2]):
            before = prev if t == 0 else out[:, :, t - 1]
            if before is not None:
                keep = (u[:, :, t] - before).abs() < 0.5 + margin
                out[:, :, t] = torch.where(keep, before.to(out.dtype), out[:, :, t])
        return out.to(torch.int64)

    def indices_to_codes(self, indices: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """tokens (B, ...) -> codes (B, d, ...)."""
        indices = indices.to(torch.int64).unsqueeze(1)  # (B, 1, ...)
        basis = self._per_channel(self._basis, indices.ndim)
        levels = self._per_channel(self._levels, indices.ndim)
        return self.from_digits((indices // basis) % levels, dtype)
