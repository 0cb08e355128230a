"""AdaLN modulation: a conditioning embedding scales, shifts and gates normalised activations.

``Modulation`` is Cosmos' AdaLN-LoRA (arXiv 2501.03575, Sec. 5.1): each block maps the shared embedding through a
low-rank ``up(down(.))`` and adds the shared 3D-wide LoRA term, instead of a full D -> 9D linear per block. The
embedding may vary per frame: (B, Tm, D) with Tm = 1 (one per sample) or T (one per latent frame).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-6


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """LayerNorm(x) * (1 + scale) + shift; x (B, T, S, D), shift/scale (B, Tm, 1, D) with Tm in {1, T}."""
    return torch.addcmul(shift, F.layer_norm(x, x.shape[-1:], eps=EPS), 1 + scale)


class Modulation(nn.Module):
    """AdaLN-LoRA: ``up(down(SiLU(emb))) + lora`` -> ``chunks`` (shift, scale or gate)-wide vectors."""

    def __init__(self, width: int, rank: int, chunks: int) -> None:
        super().__init__()
        self.chunks = chunks
        self.down = nn.Linear(width, rank, bias=False)
        self.up = nn.Linear(rank, chunks * width, bias=False)

    def forward(self, emb_act: torch.Tensor, lora: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """emb_act = SiLU(emb) (B, Tm, D), lora (B, Tm, 3D) -> ``chunks`` tensors (B, Tm, 1, D)."""
        m = self.up(self.down(emb_act))  # (B, Tm, chunks*D)
        m = m + lora.repeat(1, 1, self.chunks // 3) if self.chunks % 3 == 0 else m + lora[..., : m.shape[-1]]
        return m[:, :, None].chunk(self.chunks, dim=-1)
