"""Factorized causal convolutions on channels-last video features ``(B, T, H, W, C)``.

The Cosmos tokenizer (arXiv 2501.03575, Sec. 3.1) factorizes every 3D convolution into a spatial ``1 x 3 x 3``
convolution followed by a temporal ``3 x 1 x 1`` convolution that is *causal*: it pads only on the past side, so
output frame ``t`` depends on input frames ``<= t``.

Speed (the reason for the layout): features stay channels-last for the whole network. The spatial convolution
is then a ``conv2d`` on the frames seen as a channels-last batch ``(B*T, C, H, W)`` (a view, no copy), and the
temporal convolution a ``(k, 1)`` ``conv2d`` on the channels-last view ``(B, C, T, H*W)`` of the features with
the ``k - 1`` past frames in front. Both are several times faster on CPU than the reference's ``conv3d`` kernels
with padding copies (see benchmarks/tokenizer.py).

Causal padding: the past of the first frame is the first frame itself (replicate padding, as in the reference),
so an image (T = 1) goes through exactly the same computation as the first frame of a video.

Streaming: pass a ``state`` dict (one per stream). A temporal convolution then keeps the input frames its next
output window still needs (``k - stride`` frames at most) under ``state[self]``; the next chunk continues from them,
so chunk-by-chunk outputs equal whole-video outputs. ``state=None`` is the stateless whole-video call.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

State = Optional[dict[nn.Module, Any]]  # per-stream causal caches, keyed by module; None = whole video at once


def select_rows(state: dict[nn.Module, Any], idx: torch.Tensor) -> dict[nn.Module, Any]:
    """A streaming state of rows ``idx`` of this one's videos (its cached frames are batch-first tensors, alone or
    in tuples; flags stay as they are)."""

    def pick(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v[idx]
        return tuple(pick(x) for x in v) if isinstance(v, tuple) else v

    return {k: pick(v) for k, v in state.items()}


class SpatialConv(nn.Module):
    """A ``1 x k x k`` convolution applied to every frame: (B, T, H, W, Cin) -> (B, T, H / s, W / s, Cout)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h, w, c = x.shape
        frames = x.reshape(b * t, h, w, c).permute(0, 3, 1, 2)  # (B*T, C, H, W), channels-last view
        y = self.conv(frames)  # (B*T, Cout, H', W'), channels-last
        return y.permute(0, 2, 3, 1).reshape(b, t, y.shape[2], y.shape[3], y.shape[1])  # (B, T, H', W', Cout)


class CausalTemporalConv(nn.Module):
    """A causal ``k x 1 x 1`` convolution with temporal stride ``s``: (B, T, H, W, Cin) -> (B, T_out, H, W, Cout).

    On the padded sequence ``P = [past (k - 1 frames); x]`` output ``j`` reads ``P[j*s : j*s + k]``, so with
    ``s = 2`` and ``T = 1 + 2n`` the output has ``1 + n`` frames and output 0 sees the first frame alone.
    Computed as a ``(k, 1)`` conv2d over the channels-last view ``(B, C, T, H*W)`` of the features (no copy).
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.weight = nn.Parameter(torch.empty(cout, cin, kernel))  # tap 0 = oldest frame, k-1 = current
        self.bias = nn.Parameter(torch.zeros(cout))
        bound = 1.0 / math.sqrt(kernel * cin)  # the default init of the equivalent conv3d
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    @torch.no_grad()
    def init_current_frame_identity(self) -> None:
        """Start as the identity on the current frame (past taps zero): the block begins as a 2D network."""
        self.weight.zero_()
        self.bias.zero_()
        n = min(self.weight.shape[:2])
        self.weight[:n, :n, -1].copy_(torch.eye(n))

    def forward(self, x: torch.Tensor, state: State = None) -> torch.Tensor:
        b, t, h, w, c = x.shape
        k, s = self.kernel, self.stride
        past = state.get(self) if state is not None else None
        if past is None:  # start of the video: replicate the first frame into the past
            past = x[:, :1].expand(b, k - 1, h, w, c)
        padded = torch.cat([past, x], dim=1) if past.shape[1] else x  # (B, Tp, H, W, Cin)
        tp = padded.shape[1]
        n_out = (tp - k) // s + 1
        if state is not None:
            state[self] = padded[:, n_out * s :].clone()  # frames the next output window still needs
        view = padded.reshape(b, tp, h * w, c).permute(0, 3, 1, 2)  # (B, Cin, Tp, H*W), channels-last view
        y = F.conv2d(view, self.weight.unsqueeze(-1), self.bias, stride=(s, 1))  # (B, Cout, n_out, H*W)
        return y.permute(0, 2, 3, 1).reshape(b, n_out, h, w, -1)  # (B, n_out, H, W, Cout)


class FactorizedCausalConv(nn.Module):
    """Spatial ``1 x 3 x 3`` conv and causal temporal ``3 x 1 x 1`` conv (the latter only for video models).

    The temporal conv runs at the narrower of the two widths: after the spatial conv when it narrows (or keeps)
    the width, before it when it widens (e.g. the decoder's output projection to 192 Haar channels), which
    makes that projection ~6x cheaper than the reference's spatial-then-temporal order at the wide side.
    """

    def __init__(self, cin: int, cout: int, temporal: bool = True) -> None:
        super().__init__()
        self.temporal_first = temporal and cout > cin
        self.spatial = SpatialConv(cin, cout)
        width = cin if self.temporal_first else cout
        self.temporal = CausalTemporalConv(width, width) if temporal else None

    def forward(self, x: torch.Tensor, state: State = None) -> torch.Tensor:
        if self.temporal is None:
            return self.spatial(x)
        if self.temporal_first:
            return self.spatial(self.temporal(x, state))
        return self.temporal(self.spatial(x), state)
