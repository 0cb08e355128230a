"""The tensors a tokenizer takes and gives: checks that fail with one sentence, and the frame layout helper.

Videos are float (B, 3, T, H, W) in [-1, 1]; continuous latents (B, C, T', H', W'); tokens (B, T', H', W') int64.
A tokenizer codes ``1 + k * ct`` frames whose height and width are multiples of ``cs`` (a later chunk of a stream
codes ``k * ct`` frames).
"""

from __future__ import annotations

import math

import torch

from worldsmith.errors import WorldsmithError
from worldsmith.tokenizer.config import TokenizerConfig


class TokenizerInputError(WorldsmithError):
    """A video, latent or token tensor has the wrong shape, dtype or size for this tokenizer."""


def describe(x: object) -> str:
    return f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__


def check_video(cfg: TokenizerConfig, video: torch.Tensor, first_chunk: bool = True) -> None:
    """TokenizerInputError unless ``video`` is a float (B, 3, T, H, W) the tokenizer of ``cfg`` can code."""
    name = cfg.name
    is_video = isinstance(video, torch.Tensor) and video.ndim == 5 and video.shape[1] == 3
    if not (is_video and video.is_floating_point()):
        raise TokenizerInputError(
            f"the {name} tokenizer expects a float video tensor (B, 3, T, H, W) in [-1, 1], got {describe(video)}."
        )
    t, h, w = video.shape[2:]
    ct, cs = cfg.temporal_compression, cfg.spatial_compression
    if h % cs or w % cs or h == 0 or w == 0:
        raise TokenizerInputError(
            f"frame size {h}x{w} is not divisible by the {name} tokenizer's spatial compression {cs}; "
            f"resize or crop the frames to multiples of {cs}."
        )
    ok = (t >= 1 and (t - 1) % ct == 0) if first_chunk else (t >= ct and t % ct == 0)
    if not ok:
        need = f"1 + k*{ct} frames (1, {1 + ct}, {1 + 2 * ct}, ...)" if first_chunk else f"k*{ct} frames"
        raise TokenizerInputError(
            f"the {name} tokenizer needs {need}, got {t}; trim or pad the video (encode_stream pads the tail)."
        )


def check_latents(cfg: TokenizerConfig, z: torch.Tensor) -> None:
    """TokenizerInputError unless ``z`` is what the tokenizer of ``cfg`` decodes: tokens (discrete) or latents."""
    name = cfg.name
    if cfg.kind == "discrete":
        if not isinstance(z, torch.Tensor) or z.ndim != 4 or z.is_floating_point() or z.is_complex():
            raise TokenizerInputError(f"the {name} tokenizer decodes integer tokens (B, T', H', W'), got {describe(z)}.")
        codebook = math.prod(cfg.fsq_levels)
        if z.numel() and (int(z.min()) < 0 or int(z.max()) >= codebook):
            raise TokenizerInputError(
                f"tokens must lie in [0, {codebook}) for FSQ levels {list(cfg.fsq_levels)}, "
                f"got values in [{int(z.min())}, {int(z.max())}]."
            )
    elif not (isinstance(z, torch.Tensor) and z.ndim == 5 and z.shape[1] == cfg.latent_channels
              and z.is_floating_point()):  # fmt: skip
        raise TokenizerInputError(
            f"the {name} tokenizer decodes float latents (B, {cfg.latent_channels}, T', H', W'), got {describe(z)}."
        )


def frames_of(video: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 3, T, H, W) -> (B*K, 3, H, W) for frame indices ``index`` (K,) (all frames when None)."""
    if index is not None:
        video = video[:, :, index]  # (B, 3, K, H, W)
    b, c, k, h, w = video.shape
    return video.permute(0, 2, 1, 3, 4).reshape(b * k, c, h, w)  # (B*K, 3, H, W)
