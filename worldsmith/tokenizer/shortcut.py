"""Linear shortcuts around the encoder and the decoder (the residual autoencoding of DC-AE, arXiv 2410.10733).

A deep autoencoder with high compression learns slowly because every bit of the reconstruction has to pass
through many non-linear layers. DC-AE adds non-parametric space-to-channel shortcuts so that the network only
learns a residual. Here the shortcut is one learned linear map per side, which is cheap and keeps every other
part of the network unchanged:

* encoder: the Haar patches ``(B, T, H, W, Cp)`` are folded ``r x s x s`` into channels (``r = ct / pt``,
  ``s = cs / p``: exactly the resampling the encoder's levels still do) and projected to the latent channels;
  this is added to the encoder's output. Alone it is a learned linear transform code of each latent block (a
  PCA-like code; the best linear code reaches ~26 dB on 64x64 arm-world clips at the CV4x8x8 rate);
* decoder: a linear map of each latent pixel to the ``r x s x s`` Haar patches it covers, added to the decoder's
  output.

So the network starts as a linear transform coder and the non-linear paths learn what it cannot do.

Causality and streaming follow the rest of the tokenizer: the first patch frame is folded with ``r - 1`` copies of
itself in front (as the wavelet patcher does with pixels), and the decoder drops the ``r - 1`` patch frames that
latent frame 0 makes beyond the first; ``state`` records that a stream has started.
"""

from __future__ import annotations

import torch
from torch import nn

from worldsmith.tokenizer.causal_conv import State


class FoldShortcut(nn.Module):
    """Patches (B, T, H, W, Cin) -> (B, T', H / s, W / s, Cout), linear in each r x s x s block."""

    def __init__(self, cin: int, cout: int, r: int, s: int) -> None:
        super().__init__()
        self.r, self.s = r, s
        self.proj = nn.Linear(cin * r * s * s, cout)

    def forward(self, x: torch.Tensor, state: State = None) -> torch.Tensor:
        r, s = self.r, self.s
        first = state is None or self not in state
        if state is not None:
            state[self] = True
        if first and r > 1:
            x = torch.cat([x[:, :1].expand(-1, r - 1, -1, -1, -1), x], dim=1)  # causal: the first frame alone
        b, t, h, w, c = x.shape
        x = x.reshape(b, t // r, r, h // s, s, w // s, s, c).permute(0, 1, 3, 5, 2, 4, 6, 7)
        return self.proj(x.reshape(b, t // r, h // s, w // s, r * s * s * c))  # (B, T', H', W', Cout)


class UnfoldShortcut(nn.Module):
    """Latents (B, T', H', W', Cin) -> (B, T, H' * s, W' * s, Cout), linear per latent pixel."""

    def __init__(self, cin: int, cout: int, r: int, s: int) -> None:
        super().__init__()
        self.r, self.s, self.cout = r, s, cout
        self.proj = nn.Linear(cin, cout * r * s * s)

    def forward(self, z: torch.Tensor, state: State = None) -> torch.Tensor:
        r, s, c = self.r, self.s, self.cout
        first = state is None or self not in state
        if state is not None:
            state[self] = True
        b, t, h, w, _ = z.shape
        y = self.proj(z).reshape(b, t, h, w, r, s, s, c).permute(0, 1, 4, 2, 5, 3, 6, 7)
        y = y.reshape(b, t * r, h * s, w * s, c)  # (B, T' r, H, W, Cout)
        return y[:, r - 1 :] if first else y  # latent frame 0 covers one patch frame
