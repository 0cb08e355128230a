"""Discrete tokens as a condition: what turns a diffusion model into a diffusion decoder (Cosmos, Sec. 5.2).

The autoregressive world model predicts DV (FSQ) tokens; the DV tokenizer's own decoder turns them into frames, and
loses detail. Cosmos instead decodes them with a diffusion model that generates the continuous tokenizer's latents
of the same clip *given* the tokens. This embedder is that condition, in the DiT's conditioning slot as input
channels (``target = "channels"``):

1. tokens (B, T'', H'', W'') -> their FSQ codes (B, d, T'', H'', W'') in [-1, 1] (fixed: the tokenizer's grid);
2. a small convolution stack per latent frame (3x3, so every position also sees its neighbours' codes) to
   ``channels`` channels;
3. brought to the continuous latent grid (B, channels, T', H', W') by nearest-neighbour resampling in space:
   equal grids (the same compression, the usual pairing) pass unchanged; a DV grid coarser than the CV grid
   (dv8x16x16 with cv8x8x8) repeats each token over the latents it covers. The temporal compression must be the
   same (decoder/train.py checks it), so latent frame i is decoded from token frame i.

Concatenated to the noisy latents before the patch embedding, so the DiT's forward is the one of every other model.

``DecodedTokenEmbedder`` is a second view of the same tokens: the DV tokenizer's own decoding of them, encoded by
the continuous tokenizer (``dv_latents``, computed next to the tokens by the data cache and by the generator),
normalised with the decoder's latent statistics and concatenated as channels. The decoder then starts from what
the DV decoder already recovers, in its own latent space, and generates the difference (decoder/model.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from worldsmith.errors import DataError
from worldsmith.tokenizer.fsq import FSQ


class TokenEmbedder(nn.Module):
    name = "tokens"  # its value's key in the batch / Condition.extras
    target = "channels"

    def __init__(self, levels: tuple[int, ...] | list[int], channels: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.fsq = FSQ(levels)
        self.channels = channels
        self.net = nn.Sequential(nn.Conv2d(self.fsq.dim, hidden, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(hidden, channels, 3, padding=1))  # fmt: skip

    def forward(self, tokens: torch.Tensor, latent_shape: tuple[int, int, int, int]) -> torch.Tensor:
        """tokens (B, T'', H'', W'') int -> (B, channels, T', H', W') on the latent grid of ``latent_shape``."""
        if tokens.ndim != 4 or tokens.is_floating_point():
            raise DataError(f"the decoder's tokens must be integer grids (B, T, H, W), got {tokens.dtype} "
                            f"{tuple(tokens.shape)}.")  # fmt: skip
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.fsq.codebook_size):
            raise DataError(f"tokens must lie in [0, {self.fsq.codebook_size}); they come from another tokenizer.")
        b, t, h, w = tokens.shape
        weight = self.net[0].weight
        codes = self.fsq.indices_to_codes(tokens.reshape(b * t, h, w), weight.dtype)  # (B*T'', d, H'', W'')
        x = self.net(codes).view(b, t, self.channels, h, w).transpose(1, 2)  # (B, channels, T'', H'', W'')
        target = tuple(latent_shape[1:])
        if (t, h, w) != target:
            x = F.interpolate(x, size=target, mode="nearest")
        return x


class DecodedTokenEmbedder(nn.Module):
    """The DV decoding of the tokens in continuous latents (B, C, T', H', W') -> normalised input channels."""

    name = "dv_latents"
    target = "channels"

    def __init__(self, latent_channels: int) -> None:
        super().__init__()
        self.channels = latent_channels
        self.register_buffer("mean", torch.zeros(latent_channels))  # the decoder's latent statistics (set_stats)
        self.register_buffer("std", torch.ones(latent_channels))

    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean), self.std.copy_(std)

    def forward(self, latents: torch.Tensor, latent_shape: tuple[int, int, int, int]) -> torch.Tensor:
        if latents.ndim != 5 or latents.shape[1] != self.channels or tuple(latents.shape[2:]) != tuple(latent_shape[1:]):
            raise DataError(f"dv_latents must be (B, {self.channels}, {latent_shape[1]}, {latent_shape[2]}, "
                            f"{latent_shape[3]}), got {tuple(latents.shape)}.")  # fmt: skip
        shape = (1, -1, 1, 1, 1)
        return (latents - self.mean.view(shape).to(latents)) / self.std.view(shape).to(latents)
