"""Embedders feeding the DiT: the noise level, and the slot for extra conditions.

The extra-conditioning slot: a condition (actions, camera poses, views ...) is a module with

    name: str                                 # key of its value in ``Condition.extras``
    target: "modulation" | "channels" | "tokens"
    channels: int                             # "channels" only: input channels it adds
    forward(value, latent_shape) -> tensor    # latent_shape = (B, T', H', W')
        "modulation": (B, D) or (B, T', D), added to the noise embedding that drives every AdaLN-LoRA modulation
        "channels":   (B, channels, T', H', W'), concatenated to the latents before the patch embedding
        "tokens":     (B, T', h*w, D), added to the tokens after the patch embedding (a per-patch condition that
                      a post-training adds to a base: the base's patch embedding keeps its shape)
        "blocks":     (B, T', h*w, depth*D), one D-wide slice added to the tokens before each block

Pass such modules to ``DiT(cfg, embedders=[...])`` (a model subclass builds them from its config); the DiT's
forward stays the same for every condition.
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch
from torch import nn

from worldsmith.nn.embeddings import sinusoidal


GUIDED_KEEP = "guided_keep"  # Condition.extras key: (B,) 1 keeps the guidable conditions, 0 drops them (guidance)


class ConditionEmbedder(Protocol):
    name: str
    target: Literal["modulation", "channels", "tokens", "blocks"]
    channels: int

    def __call__(self, value: torch.Tensor, latent_shape: tuple[int, int, int, int]) -> torch.Tensor: ...


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
