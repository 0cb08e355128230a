"""Spatial attention and windowed causal temporal attention at the lowest resolution of the tokenizer.

Cosmos (arXiv 2501.03575, Sec. 3.1) interleaves spatial self-attention (tokens = pixels of one frame) with causal
temporal self-attention (tokens = one pixel over time) at the lowest resolution of encoder and decoder.

Streaming choice: temporal attention here is causal *within a window* of the last ``window`` latent frames (the
query frame included). Whole-video encoding uses the same window, so a stream only has to keep the keys and
values of the last ``window - 1`` frames (bounded memory), and chunked output equals whole-video output. A
learned bias per (head, frame offset) gives the attention its sense of order; there are no absolute positions, so
nothing depends on where in a long video a chunk starts. With clips no longer than the window (training) this is
the reference's plain causal attention plus the offset bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from worldsmith.tokenizer.blocks import FrameNorm
from worldsmith.tokenizer.causal_conv import State


class SpatialAttention(nn.Module):
    """Self-attention among the H*W positions of each frame: (B, T, H, W, C) -> same."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = FrameNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, state: State = None) -> torch.Tensor:
        b, t, h, w, c = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b * t, h * w, 3, self.heads, c // self.heads)  # (B*T, HW, 3, nh, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B*T, nh, HW, d)
        o = F.scaled_dot_product_attention(q, k, v)  # (B*T, nh, HW, d)
        o = o.transpose(1, 2).reshape(b, t, h, w, c)  # (B, T, H, W, C)
        return x + self.out(o)


class CausalTemporalAttention(nn.Module):
    """Each position attends to itself in the last ``window`` frames: (B, T, H, W, C) -> same; KV cache in state."""

    def __init__(self, channels: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads, self.window = heads, window
        self.norm = FrameNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)
        self.offset_bias = nn.Parameter(torch.zeros(heads, window))  # bias[h, i - j] for query i, key j

    def forward(self, x: torch.Tensor, state: State = None) -> torch.Tensor:
        b, t, h, w, c = x.shape
        nh, d = self.heads, c // self.heads
        qkv = self.qkv(self.norm(x))  # (B, T, H, W, 3C)
        qkv = qkv.permute(0, 2, 3, 1, 4).reshape(b * h * w, t, 3, nh, d)  # (B*H*W, T, 3, nh, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B*H*W, nh, T, d)
        cached = state.get(self) if state is not None else None
        if cached is not None:
            k, v = torch.cat([cached[0], k], dim=2), torch.cat([cached[1], v], dim=2)  # (BHW, nh, P+T, d)
        n_past = k.shape[2] - t
        offset = (torch.arange(t, device=x.device)[:, None] + n_past) - torch.arange(k.shape[2], device=x.device)
        allowed = (offset >= 0) & (offset < self.window)  # (T, P+T): causal, within the window
        bias = self.offset_bias[:, offset.clamp(0, self.window - 1)]  # (nh, T, P+T)
        mask = bias.masked_fill(~allowed, float("-inf")).to(q.dtype)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (BHW, nh, T, d)
        if state is not None:
            keep = self.window - 1
            state[self] = (k[:, :, k.shape[2] - keep :].clone(), v[:, :, v.shape[2] - keep :].clone())
        o = o.permute(0, 2, 1, 3).reshape(b, h, w, t, c).permute(0, 3, 1, 2, 4)  # (B, T, H, W, C)
        return x + self.out(o)
