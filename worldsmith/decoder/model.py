"""``DiffusionDecoder``: the diffusion world model with the token embedder in its conditioning slot.

The same DiT, EDM preconditioning, latent scaling and samplers as ``DiffusionWorldModel``; the only difference is
the condition (worldsmith/conditioning/tokens.py): a DV token grid, embedded and brought to the continuous latent
grid, concatenated to the noisy latents as input channels.
"""

from __future__ import annotations

from torch import nn

from worldsmith.conditioning.tokens import TokenEmbedder
from worldsmith.decoder.config import DecoderConfig
from worldsmith.diffusion.model import DiffusionWorldModel


class DiffusionDecoder(DiffusionWorldModel):
    Config = DecoderConfig

    def make_embedders(self, cfg: DecoderConfig) -> list[nn.Module]:
        embedders = super().make_embedders(cfg)
        if cfg.token_levels:
            embedders.append(TokenEmbedder(cfg.token_levels, cfg.token_channels))
        return embedders
