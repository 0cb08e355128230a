"""``DiffusionDecoder``: the diffusion world model with the token embedder in its conditioning slot.

The same DiT, EDM preconditioning, latent scaling and samplers as ``DiffusionWorldModel``; the only difference is
the condition (worldsmith/conditioning/tokens.py): a DV token grid, embedded and brought to the continuous latent
grid, concatenated to the noisy latents as input channels.

With ``dv_residual`` (the default) the DV tokenizer's own decoding of the tokens, encoded by the continuous
tokenizer, is a second condition and the model generates the clip's latents as their difference from it (the
residual hook every diffusion model has; Video2World's is the difference from the last given frame): with no
detail added the output is what the DV decoder gives, and every sampling step can only add what the tokens imply
beyond it. The difference is scaled to the std ``sigma_data`` that EDM's preconditioning and training noise levels
assume (``dv_residual_scale``, measured on the training crops like Video2World's ``residual_scale``): unscaled it is
a fraction of that std, so most training noise levels drown it and the model learns little of the detail it is
for. Measured in benchmarks/decoder.py against generating the latents from the codes alone.
"""

from __future__ import annotations

import torch
from torch import nn

from worldsmith.conditioning.tokens import DecodedTokenEmbedder, TokenEmbedder
from worldsmith.diffusion.condition import Condition
from worldsmith.decoder.config import DecoderConfig
from worldsmith.diffusion.model import DiffusionWorldModel
from worldsmith.errors import DataError


class DiffusionDecoder(DiffusionWorldModel):
    Config = DecoderConfig

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__(cfg)
        self.register_buffer("dv_residual_scale", torch.ones(()))  # sigma_data / std of (latents - DV decoding)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # decoders saved before the residual was scaled generate it unscaled
        state_dict.setdefault(prefix + "dv_residual_scale", torch.ones(()))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def make_embedders(self, cfg: DecoderConfig) -> list[nn.Module]:
        embedders = super().make_embedders(cfg)
        if cfg.token_levels:
            embedders.append(TokenEmbedder(cfg.token_levels, cfg.token_channels))
            if cfg.dv_residual:
                embedders.append(DecodedTokenEmbedder(cfg.dit.latent_channels))
        return embedders

    @torch.no_grad()
    def set_latent_stats(self, latents: torch.Tensor, extras: dict | None = None) -> None:
        """The latent statistics, and with ``dv_residual`` the scale of the latents' difference from the DV decoding
        (``extras["dv_latents"]``, the same crops)."""
        super().set_latent_stats(latents, extras)
        for e in self.net.embedders:
            if isinstance(e, DecodedTokenEmbedder):
                e.set_stats(self.latent_mean, self.latent_std)
        if self.cfg.token_levels and self.cfg.dv_residual:
            if not extras or "dv_latents" not in extras:
                raise DataError("a dv_residual decoder measures its residual's scale on the DV decodings of the "
                                "training crops; build its latent cache with the DV tokenizer (data.token_tokenizer).")
            diff = self.normalize(latents.float()) - self.normalize(extras["dv_latents"].float())
            self.dv_residual_scale.fill_(self.cfg.edm.sigma_data / float(diff.std().clamp_min(1e-4)))

    def _base(self, cond: Condition) -> torch.Tensor | None:
        if not (self.cfg.token_levels and self.cfg.dv_residual):
            return None
        return self.normalize(cond.extras["dv_latents"].float())

    def to_residual(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        base = self._base(cond)
        return x if base is None else (x - base.to(x)) * self.dv_residual_scale.to(x)

    def from_residual(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        base = self._base(cond)
        return x if base is None else x / self.dv_residual_scale.to(x) + base.to(x)
