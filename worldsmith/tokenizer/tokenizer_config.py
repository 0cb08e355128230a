"""``TokenizerConfig``: architecture, bottleneck and training loss of a causal video tokenizer (one dataclass)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from worldsmith.errors import ConfigError


@dataclass
class TokenizerLossConfig:
    """Weights of the reconstruction objective (Cosmos, arXiv 2501.03575 Sec. 3.1 "Training strategy")."""

    l1: float = 1.0  # pixel L1
    l2: float = 0.0  # pixel mean squared error (PSNR's own measure)
    perceptual: float = 0.1  # LPIPS-style EfficientNet-lite0 feature distance (losses.py); 0 disables
    perceptual_frames: int = 4  # frames per clip through the feature net (first + random others); 0 = all
    temporal: float = 0.0  # L1 between frame differences of input and reconstruction (temporal consistency)
    kl: float = 1e-6  # KL weight, used only when the model has ``kl: true``
    image: float = 0.0  # joint image training: weight of the loss on random single frames encoded as images
    adversarial: float = 0.0  # > 0 adds a patch discriminator (hinge loss); use it to fine-tune a trained model
    disc_channels: int = 64  # width of the discriminator's first layer
    # train on a random crop x crop window of each batch (0: whole frames): the network is convolutional with
    # attention only at the lowest level, so it runs on whole frames afterwards; fewer pixels per step means more
    # steps per CPU-minute. Offsets are multiples of the spatial compression, so the crop keeps the latent grid.
    crop: int = 0

    def __post_init__(self) -> None:
        for name in ("l1", "l2", "perceptual", "temporal", "kl", "image", "adversarial"):
            if getattr(self, name) < 0:
                raise ConfigError(f"model.loss.{name} must be >= 0, got {getattr(self, name)}.")
        if self.l1 == self.l2 == self.perceptual == 0:
            raise ConfigError("model.loss needs a reconstruction term: set l1, l2 or perceptual above 0.")
        if self.perceptual_frames < 0 or self.disc_channels < 8 or self.crop < 0:
            raise ConfigError("model.loss.perceptual_frames and model.loss.crop must be >= 0 and "
                              "model.loss.disc_channels >= 8.")


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
    loss: TokenizerLossConfig = field(default_factory=TokenizerLossConfig)

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
                              f"{self.channels[-1]} into equal heads.")
        if self.kind == "discrete" and (self.kl or not self.fsq_levels or min(self.fsq_levels) < 2):
            raise ConfigError("a discrete tokenizer needs fsq_levels (each >= 2) and kl: false.")
        if self.loss.crop % cs:
            raise ConfigError(f"model.loss.crop must be a multiple of the spatial compression {cs}, got {self.loss.crop}.")

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
