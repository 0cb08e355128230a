"""Positions of video tokens in a window: raster order, 3D rotary angles and a 3D absolute sinusoidal embedding.

Tokens are laid out in raster order: index ``n`` of a window with frames of ``h x w`` tokens sits at
``(t, y, x) = (n // (h w), (n // w) % h, n % w)``. The Cosmos autoregressive models (arXiv 2501.03575, Sec. 5.2)
encode that position twice:

* 3D RoPE on queries and keys: the rotations of the shared ``worldsmith.diffusion.rope`` (RoFormer eq. 34, the
  head split in (t, h, w) bands), tabulated once per window slot. Eager code rotates with one complex multiply
  (``diffusion.rope.apply_rope``); under ``torch.compile``, which cannot generate code for complex numbers, the same
  rotation is written in real arithmetic so the compiled decode step fuses it;
* a 3D absolute sinusoidal embedding added to the input (Vaswani et al. 2017, Sec. 3.5), per axis band the same
  split as RoPE: ``sin(p w_i), cos(p w_i)`` with ``w_i = 10000 ** (-2i / band)``, the bands concatenated.
"""

from __future__ import annotations

import torch

from worldsmith.diffusion.rope import RoPE3D, apply_rope, axis_dims


def raster_positions(frames: int, height: int, width: int) -> torch.Tensor:
    """(t, y, x) coordinates (frames * height * width, 3) int64 of a token grid in raster order."""
    t, y, x = torch.meshgrid(torch.arange(frames), torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([t, y, x], dim=-1).reshape(-1, 3)  # (N, 3)


def rope_table(frames: int, height: int, width: int, head_dim: int, theta: float) -> torch.Tensor:
    """Rotations of every slot of a (frames, height, width) window as float32 (N, head_dim // 2, 2) (cos, sin):
    a real tensor, so the model's ``.to(dtype)`` cannot drop its imaginary part."""
    rotation = RoPE3D(head_dim, theta)(frames, height, width)  # (N, hd/2) complex
    return torch.view_as_real(rotation).float().contiguous()


def rotation(table: torch.Tensor) -> torch.Tensor:
    """The rotations of slots, table (S, hd/2, 2), in the form ``rotate`` takes (built once per forward): complex
    (S, 1, hd/2) in eager code, real (S, 1, hd/2, 2) (cos, sin) under torch.compile."""
    table = table.float().unsqueeze(1)  # (S, 1, hd/2, 2)
    return table if torch.compiler.is_compiling() else torch.view_as_complex(table)


def rotate(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs of x (B, S, heads, hd) by ``rotation`` (from ``rotation(table)``)."""
    if rotation.is_complex():
        return apply_rope(x, rotation)
    cos, sin = rotation.unbind(-1)  # (S, 1, hd/2) each
    x0, x1 = x.float().unflatten(-1, (-1, 2)).unbind(-1)  # (B, S, heads, hd/2) each
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2).type_as(x)


def sinusoidal_embedding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Absolute 3D sinusoidal embedding (N, dim) float32 of positions (N, 3)."""
    parts = []
    for i, band in enumerate(axis_dims(dim)):
        freqs = 10000.0 ** (-torch.arange(0, band, 2, dtype=torch.float64) / band)  # (band/2,)
        angles = positions[:, i].to(torch.float64)[:, None] * freqs[None]  # (N, band/2)
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1).float()  # (N, dim)
