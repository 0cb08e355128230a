"""``TokenizerConfig`` (the architecture of a causal video tokenizer) and ``PRESETS``, the named configs.

Presets are ``{variant}-{size}``, plus ``tiny`` / ``small`` / ``base`` for ``cv4x8x8-{size}``. Variants follow the
Cosmos tokenizer suite (arXiv 2501.03575, Table 3): continuous/discrete video tokenizers ``cv4x8x8``, ``cv8x8x8``,
``cv8x16x16``, ``dv4x8x8``, ``dv8x8x8``, ``dv8x16x16`` (temporal x height x width compression) and image tokenizers
``ci8x8``, ``ci16x16``, ``di8x8``, ``di16x16``.

Every preset has the linear encoder/decoder shortcuts of shortcut.py (``shortcut: false`` gives the plain Cosmos
network). Sizes (widths double per level up to 4x; as many levels as the compression needs after the Haar patch
of 4):

=======  =====  ==========  ==========================================  ============================
size     width  res blocks  latent                                      use
=======  =====  ==========  ==========================================  ============================
tiny     16     1           16 ch (CV), FSQ [8, 5, 5, 5] = 1,000 codes  tests, seconds on a CPU
small    32     1           16 ch (CV), FSQ [8, 8, 8, 5, 5, 5]          64x64 sim worlds on a CPU
base     128    2           16 ch (CV), FSQ [8, 8, 8, 5, 5, 5]          Cosmos-like widths, GPU
=======  =====  ==========  ==========================================  ============================

For the best quality per CPU-minute at 64x64, widen the first level to the second's width
(``--set model.channels=[64,64]`` for cv4x8x8-small): each step costs ~27 % more and learns more than that
(benchmarks/RESULTS.md, tokenizer-ablation). The presets keep the narrower first level, which the demo and the
world-model benchmarks are timed with.

The training objective's weights are not part of the model: they are ``TokenizerLossConfig`` in losses.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

from worldsmith.errors import ConfigError


@dataclass
class TokenizerConfig:
    kind: Literal["continuous", "discrete"] = "continuous"  # CV/CI: float latents; DV/DI: FSQ integer tokens
    temporal_compression: int = 4  # frames per latent frame (after the first); 1 = image tokenizer
    spatial_compression: int = 8  # pixels per latent pixel along H and W
    patch_size: int = 4  # Haar patch (2 or 4) in H, W and (capped by temporal_compression) in T
    channels: tuple[int, ...] = (64, 128, 256)  # encoder width per resolution level; decoder mirrors it
    num_res_blocks: int = 2  # residual blocks per encoder level (decoder: one more, as in the reference)
    latent_channels: int = 16  # continuous latent channels (DV: before the FSQ projection)
    fsq_levels: tuple[int, ...] = (8, 8, 8, 5, 5, 5)  # discrete only: levels per FSQ channel
    kl: bool = False  # continuous only: encoder predicts mean and log-variance; KL term in the loss
    head_dim: int = 64  # attention head width at the lowest resolution
    shortcut: bool = False  # linear paths around encoder and decoder, the network learns a residual (shortcut.py)
    # temporal attention sees the last this-many latent frames (itself included); train on clips of at least this
    # many latent frames (17 frames at ct=4 give 5) so that every frame offset the model meets in streaming is trained
    attn_window: int = 5

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        self.fsq_levels = tuple(self.fsq_levels)
        ct, cs, p = self.temporal_compression, self.spatial_compression, self.patch_size
        for name, v in (("temporal_compression", ct), ("spatial_compression", cs), ("patch_size", p)):
            if v < 1 or v & (v - 1):
                raise ConfigError(f"model.{name} must be a power of two, got {v}.")
        if p not in (2, 4) or p > cs:
            raise ConfigError(f"model.patch_size must be 2 or 4 and <= spatial_compression ({cs}), got {p}.")
        if self.kind not in ("continuous", "discrete"):
            raise ConfigError(f"model.kind must be 'continuous' or 'discrete', got {self.kind!r}.")
        if not self.channels or min(self.channels) < 8 or any(c % 8 for c in self.channels):
            raise ConfigError(f"model.channels must be multiples of 8, got {list(self.channels)}.")
        levels_needed = max(self.spatial_downsamples, self.temporal_downsamples) + 1
        if len(self.channels) < levels_needed:
            raise ConfigError(
                f"model.channels needs at least {levels_needed} levels for {ct}x{cs}x{cs} compression with patch "
                f"{p}, got {len(self.channels)}."
            )
        if self.num_res_blocks < 1 or self.latent_channels < 1 or self.attn_window < 1:
            raise ConfigError("model.num_res_blocks, model.latent_channels and model.attn_window must be >= 1.")
        if self.head_dim < 8 or self.channels[-1] % self.heads:
            raise ConfigError(f"model.head_dim ({self.head_dim}) must be >= 8 and split the last width "
                              f"{self.channels[-1]} into equal heads.")  # fmt: skip
        if self.kind == "discrete" and (self.kl or not self.fsq_levels or min(self.fsq_levels) < 2):
            raise ConfigError("a discrete tokenizer needs fsq_levels (each >= 2) and kl: false.")

    # derived ------------------------------------------------------------------------------------------------
    @property
    def temporal_patch(self) -> int:
        return min(self.patch_size, self.temporal_compression)

    @property
    def spatial_downsamples(self) -> int:
        return int(math.log2(self.spatial_compression // self.patch_size))

    @property
    def temporal_downsamples(self) -> int:
        return int(math.log2(self.temporal_compression // self.temporal_patch))

    @property
    def is_video(self) -> bool:
        return self.temporal_compression > 1

    @property
    def heads(self) -> int:
        return max(1, self.channels[-1] // self.head_dim)

    @property
    def name(self) -> str:
        kind = ("c" if self.kind == "continuous" else "d") + ("v" if self.is_video else "i")
        t = f"{self.temporal_compression}x" if self.is_video else ""
        return f"{kind}{t}{self.spatial_compression}x{self.spatial_compression}"

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(T', H', W') of the latent grid of a (frames, height, width) video."""
        cs = self.spatial_compression
        return 1 + (frames - 1) // self.temporal_compression, height // cs, width // cs


# ---------------------------------------------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------------------------------------------
VARIANTS = {  # name -> (kind, temporal compression, spatial compression)
    "cv4x8x8": ("continuous", 4, 8),
    "cv8x8x8": ("continuous", 8, 8),
    "cv8x16x16": ("continuous", 8, 16),
    "dv4x8x8": ("discrete", 4, 8),
    "dv8x8x8": ("discrete", 8, 8),
    "dv8x16x16": ("discrete", 8, 16),
    "ci8x8": ("continuous", 1, 8),
    "ci16x16": ("continuous", 1, 16),
    "di8x8": ("discrete", 1, 8),
    "di16x16": ("discrete", 1, 16),
}
SIZES = {  # name -> (first width, residual blocks per level, head width, FSQ levels)
    "tiny": (16, 1, 32, (8, 5, 5, 5)),
    "small": (32, 1, 64, (8, 8, 8, 5, 5, 5)),
    "base": (128, 2, 64, (8, 8, 8, 5, 5, 5)),
}
WIDTH_MULTIPLIERS = (1, 2, 4, 4, 4)


def make_config(variant: str, size: str) -> TokenizerConfig:
    """The config of preset ``{variant}-{size}``."""
    kind, ct, cs = VARIANTS[variant]
    width, blocks, head_dim, levels = SIZES[size]
    probe = TokenizerConfig(kind=kind, temporal_compression=ct, spatial_compression=cs, channels=(8,) * 4)
    n_levels = max(probe.spatial_downsamples, probe.temporal_downsamples) + 1
    channels = tuple(width * m for m in WIDTH_MULTIPLIERS[:n_levels])
    return TokenizerConfig(kind=kind, temporal_compression=ct, spatial_compression=cs, patch_size=4,
                           channels=channels, num_res_blocks=blocks, latent_channels=16, fsq_levels=levels,
                           head_dim=min(head_dim, channels[-1]), shortcut=True)  # fmt: skip


PRESETS: dict[str, Callable[[], TokenizerConfig]] = {
    **{f"{variant}-{size}": partial(make_config, variant, size) for variant in VARIANTS for size in SIZES},
    **{size: partial(make_config, "cv4x8x8", size) for size in SIZES},
}
