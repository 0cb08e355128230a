"""Configs of the diffusion decoder: a diffusion model (diffusion/config.py) conditioned on discrete tokens.

``DecoderConfig`` is the diffusion family's ``WorldModelConfig`` plus the token condition (the DV tokenizer's FSQ
levels, set at training, and the width of the token embedding); nothing else differs. The decoder is trained on
one task: all latent frames generated, no first-frame condition, no text (``video2world_prob = 0``,
``caption_dropout = 1``). Its DiT reads the latent grid at patch 1 (every 8x8 pixel cell is one token: detail is
what a decoder is for) and mixes neighbouring tokens in every MLP (``local_mixing``).

=======  =====  =====  =====  ==============================================
preset   width  depth  heads  use
=======  =====  =====  =====  ==============================================
tiny     64     2      4      tests
small    128    4      4      64x64 worlds on a 2-core CPU
base     384    8      6      a GPU
=======  =====  =====  =====  ==============================================
"""

from __future__ import annotations

from dataclasses import dataclass

from worldsmith.diffusion.config import DiTConfig, EDMConfig, SamplingConfig, WorldModelConfig
from worldsmith.errors import ConfigError


@dataclass
class DecoderConfig(WorldModelConfig):
    token_levels: tuple[int, ...] = ()  # FSQ levels of the DV tokenizer whose tokens it decodes (set at training)
    token_channels: int = 32  # channels the token embedding adds to the DiT's input
    # also condition on the DV tokenizer's decoding of the tokens (re-encoded to continuous latents) and generate
    # the difference from it (decoder/model.py); False: the tokens' codes alone, generating the latents themselves
    dv_residual: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.token_levels = tuple(int(v) for v in self.token_levels)  # type: ignore[assignment]
        if self.token_channels < 1:
            raise ConfigError(f"model.token_channels must be >= 1, got {self.token_channels}.")


@dataclass
class DecoderSamplingConfig(SamplingConfig):
    """A decoder's sampling: the tokens pin the output down, so few steps do. On held-out arm clips
    (benchmarks/decoder.py) 3 Euler steps scored best: the lowest FD at a PSNR not below the DV decoder's; DPM++(2M)
    and more steps add detail the decoder does not yet draw well (FD rises, PSNR falls)."""

    steps: int = 3
    sampler: str = "euler"


def _preset(width: int, depth: int, heads: int, lora: int) -> DecoderConfig:
    dit = DiTConfig(width=width, depth=depth, heads=heads, adaln_lora_dim=lora, patch=1, cond_mask_channel=False,
                    local_mixing=True)  # fmt: skip
    return DecoderConfig(dit=dit, edm=EDMConfig(p_mean=-0.8, p_std=1.2), video2world_prob=0.0, caption_dropout=1.0)


PRESETS = {
    "tiny": lambda: _preset(64, 2, 4, 16),
    "small": lambda: _preset(128, 4, 4, 64),
    "base": lambda: _preset(384, 8, 6, 128),
}
