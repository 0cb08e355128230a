"""3D rotary position embedding over (t, h, w) latent-token positions (RoFormer, Su et al. 2021, eq. 34).

The head width is split in three like Cosmos: ``2 * (d // 6)`` channels rotate with the row ``h``, as many with
the column ``w`` and the rest with the time ``t``. Each part uses frequencies ``theta^(-2i / part)`` (eq. 15), and a
query at position p and a key at position q then score ``q^T R(p - q) k``: attention depends only on relative
offsets, so the grid may be larger or smaller at generation than in training.

Time is measured in seconds-like units: with ``rope_fps`` set, latent frame ``t`` of a video at ``fps`` latent
frames per second sits at ``t * rope_fps / fps``, so the same motion at another frame rate keeps its timing.

Layout: channels (2i, 2i + 1) form pair i, rotated as one complex number ``(x_2i + j x_2i+1) e^(j angle_i)``: one
complex multiply per tensor (about 3x faster on a CPU than the "rotate half" form's six elementwise passes).

Models that index rotations by a fixed slot (the autoregressive window) tabulate them once (``rope_table``, a real
(cos, sin) tensor that a model's ``.to(dtype)`` cannot damage) and rotate with ``rotate``: the complex multiply in
eager code, the same rotation in real arithmetic under ``torch.compile`` (which cannot generate code for complex
numbers), so a compiled decode step fuses it.
"""

from __future__ import annotations

import torch
from torch import nn


def axis_dims(head_dim: int) -> tuple[int, int, int]:
    """(t, h, w) channels of a head of width ``head_dim`` (each even)."""
    dim_h = head_dim // 6 * 2
    return head_dim - 2 * dim_h, dim_h, dim_h


class RoPE3D(nn.Module):
    def __init__(self, head_dim: int, theta: float = 10000.0, rope_fps: float = 0.0) -> None:
        super().__init__()
        self.dims, self.rope_fps = axis_dims(head_dim), rope_fps
        inv = [theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d) for d in self.dims]
        self.register_buffer("inv_freq", torch.cat(inv).float(), persistent=False)  # (head_dim / 2,)
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def positions(self, t: int, h: int, w: int, time_scale: float, device: torch.device) -> torch.Tensor:
        """(t*h*w, 3) float positions of the tokens of a (t, h, w) grid in row-major (t, h, w) order."""
        axes = [torch.arange(n, device=device, dtype=torch.float32) for n in (t, h, w)]
        grid = torch.meshgrid(axes[0] * time_scale, axes[1], axes[2], indexing="ij")
        return torch.stack([g.reshape(-1) for g in grid], dim=-1)

    def _angles(self, pos: torch.Tensor) -> torch.Tensor:
        """(..., 3) positions -> (..., head_dim / 2) rotation angles."""
        d_t, d_h, _ = (d // 2 for d in self.dims)
        axis = torch.zeros(self.inv_freq.shape[0], dtype=torch.long, device=pos.device)
        axis[d_t:] = 1
        axis[d_t + d_h :] = 2
        return pos[..., axis] * self.inv_freq.to(pos.device)

    def time_scales(self, fps: torch.Tensor | float | None, batch: int) -> list[float]:
        if fps is None or self.rope_fps == 0:
            return [1.0]
        values = fps.flatten().tolist() if isinstance(fps, torch.Tensor) else [float(fps)]
        scales = [self.rope_fps / v for v in values]
        return scales[:1] if len(set(scales)) == 1 else scales if len(scales) == batch else scales[:1] * batch

    def forward(
        self, t: int, h: int, w: int, fps: torch.Tensor | float | None = None, batch: int = 1,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:  # fmt: skip
        """Complex rotations e^(j angle) (N, head_dim / 2), or (B, N, head_dim / 2) when the samples' fps differ."""
        device = torch.device(device)
        scales = self.time_scales(fps, batch)
        key = (t, h, w, tuple(scales), device)
        if key not in self._cache:
            angles = torch.stack([self._angles(self.positions(t, h, w, s, device)) for s in scales])  # (b, N, d/2)
            angles = angles[0] if len(scales) == 1 else angles
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = torch.polar(torch.ones_like(angles), angles)
        return self._cache[key]


def apply_rope(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs of ``x`` (..., head_dim) by complex ``rotation`` broadcasting to (..., head_dim / 2)."""
    pairs = torch.view_as_complex(x.to(torch.float32).reshape(*x.shape[:-1], -1, 2))  # (..., head_dim / 2)
    out = torch.view_as_real(pairs * rotation).flatten(-2)
    return out if out.dtype == x.dtype else out.to(x.dtype)


def rope_table(frames: int, height: int, width: int, head_dim: int, theta: float) -> torch.Tensor:
    """Rotations of every slot of a (frames, height, width) raster-order window as float32 (N, head_dim // 2, 2)."""
    return torch.view_as_real(RoPE3D(head_dim, theta)(frames, height, width)).float().contiguous()


def rotation(table: torch.Tensor) -> torch.Tensor:
    """Rotations of slots, table (S, hd/2, 2), in the form ``rotate`` takes (build once per forward): complex
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
