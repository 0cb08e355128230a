"""``DiffusionDecoder``: the diffusion world model with the token embedder in its conditioning slot.

The same DiT, EDM preconditioning, latent scaling and samplers as ``DiffusionWorldModel``; the only difference is
the condition (worldsmith/conditioning/tokens.py): a DV token grid, embedded and brought to the continuous latent
grid, concatenated to the noisy latents as input channels.

With ``dv_residual`` (the default) the DV tokenizer's own decoding of the tokens, encoded by the continuous
tokenizer, is a second condition and the model generates the clip's latents as their difference from it (the
residual hook every diffusion model has; Video2World's is the difference from the last given frame): with no
detail added the output is what the DV decoder gives, and every sampling step can only add what the tokens imply
beyond it. Measured in benchmarks/decoder.py against generating the latents from the codes alone.
"""

from __future__ import annotations

import torch
from torch import nn

from worldsmith.conditioning.tokens import DecodedTokenEmbedder, TokenEmbedder
from worldsmith.diffusion.condition import Condition
from worldsmith.decoder.config import DecoderConfig
from worldsmith.diffusion.model import DiffusionWorldModel


class DiffusionDecoder(DiffusionWorldModel):
    Config = DecoderConfig

    def make_embedders(self, cfg: DecoderConfig) -> list[nn.Module]:
        embedders = super().make_embedders(cfg)
        if cfg.token_levels:
            embedders.append(TokenEmbedder(cfg.token_levels, cfg.token_channels))
            if cfg.dv_residual:
                embedders.append(DecodedTokenEmbedder(cfg.dit.latent_channels))
        return embedders

    @torch.no_grad()
    def set_latent_stats(self, latents: torch.Tensor) -> None:
        super().set_latent_stats(latents)
        for e in self.net.embedders:
            if isinstance(e, DecodedTokenEmbedder):
                e.set_stats(self.latent_mean, self.latent_std)

    def _base(self, cond: Condition) -> torch.Tensor | None:
        if not (self.cfg.token_levels and self.cfg.dv_residual):
            return None
        return self.normalize(cond.extras["dv_latents"].float())

    def to_residual(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        base = self._base(cond)
        return x if base is None else x - base.to(x)

    def from_residual(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        base = self._base(cond)
        return x if base is None else x + base.to(x)
