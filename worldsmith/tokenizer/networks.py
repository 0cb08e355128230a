"""Encoder and decoder of the causal video tokenizer (Cosmos, arXiv 2501.03575 Sec. 3.1, Fig. 4).

Both work on channels-last features ``(B, T, H, W, C)``. With widths ``channels = (c0, c1, ..., cL)``:

encoder: Haar patches -> conv_in (c0) -> per level i: ``num_res_blocks`` residual blocks at width ci, then (except
after the last level) a spatial and/or temporal downsampling -> mid (res, spatial attention, causal temporal
attention, res) -> norm, SiLU, conv_out.

decoder: the mirror image, with one residual block more per level (as the reference) and upsampling between
levels; it ends at Haar patch channels, which the wavelet synthesis turns back into pixels.

The first ``spatial_downsamples`` level transitions halve H and W and the first ``temporal_downsamples`` halve T;
attention runs only at the lowest resolution. Every module takes ``(x, state)`` so the same code serves whole
videos (``state=None``) and streams (see worldsmith/tokenizer/stream.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from worldsmith.tokenizer.attention import CausalTemporalAttention, SpatialAttention
from worldsmith.tokenizer.blocks import FrameNorm, ResBlock
from worldsmith.tokenizer.causal_conv import CausalTemporalConv, FactorizedCausalConv, State
from worldsmith.tokenizer.resample import SpatialDown, SpatialUp, TemporalDown, TemporalUp
from worldsmith.tokenizer.config import TokenizerConfig


class Stage(nn.ModuleList):
    """A sequence of modules that all take ``(x, state)``."""

    def forward(self, x: torch.Tensor, state: State = None) -> torch.Tensor:
        for module in self:
            x = module(x, state)
        return x


def mid_stage(cfg: TokenizerConfig) -> Stage:
    c = cfg.channels[-1]
    layers: list[nn.Module] = [ResBlock(c, c, cfg.is_video), SpatialAttention(c, cfg.heads)]
    if cfg.is_video:
        layers.append(CausalTemporalAttention(c, cfg.heads, cfg.attn_window))
    layers.append(ResBlock(c, c, cfg.is_video))
    return Stage(layers)


class Encoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig, in_channels: int, out_channels: int) -> None:
        super().__init__()
        ch, video = cfg.channels, cfg.is_video
        self.conv_in = FactorizedCausalConv(in_channels, ch[0], video)
        levels = []
        for i, c in enumerate(ch):
            widths_in = [ch[max(i - 1, 0)]] + [c] * (cfg.num_res_blocks - 1)  # the first block widens
            layers: list[nn.Module] = [ResBlock(w, c, video) for w in widths_in]
            if i < len(ch) - 1:
                if i < cfg.spatial_downsamples:
                    layers.append(SpatialDown(c))
                if i < cfg.temporal_downsamples:
                    layers.append(TemporalDown(c))
            levels.append(Stage(layers))
        self.levels = nn.ModuleList(levels)
        self.mid = mid_stage(cfg)
        self.norm_out = FrameNorm(ch[-1])
        self.conv_out = FactorizedCausalConv(ch[-1], out_channels, video)

    def forward(self, x: torch.Tensor, state: State = None) -> torch.Tensor:
        """patches (B, T, H, W, Cp) -> latents (B, T', H', W', out_channels)."""
        x = self.conv_in(x, state)  # (B, T, H, W, c0)
        for level in self.levels:
            x = level(x, state)  # (B, T_i, H_i, W_i, c_i), smaller after each down step
        x = self.mid(x, state)
        return self.conv_out(F.silu(self.norm_out(x)), state)


class Decoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig, in_channels: int, out_channels: int) -> None:
        super().__init__()
        ch, video = cfg.channels, cfg.is_video
        self.conv_in = FactorizedCausalConv(in_channels, ch[-1], video)
        self.mid = mid_stage(cfg)
        levels = []
        for i in reversed(range(len(ch))):
            prev = ch[min(i + 1, len(ch) - 1)]
            widths_in = [prev] + [ch[i]] * cfg.num_res_blocks  # the first block narrows
            layers: list[nn.Module] = [ResBlock(w, ch[i], video) for w in widths_in]
            if i > 0:  # mirror of the encoder transition (i - 1) -> i
                if i - 1 < cfg.temporal_downsamples:
                    layers.append(TemporalUp(ch[i]))
                if i - 1 < cfg.spatial_downsamples:
                    layers.append(SpatialUp(ch[i]))
            levels.append(Stage(layers))
        self.levels = nn.ModuleList(levels)
        self.norm_out = FrameNorm(ch[0])
        self.conv_out = FactorizedCausalConv(ch[0], out_channels, video)
        self.synthesis_gain = (cfg.temporal_patch * cfg.patch_size**2) ** 0.5  # pixels per unit Haar coefficient

    def forward(self, z: torch.Tensor, state: State = None) -> torch.Tensor:
        """latents (B, T', H', W', Cz) -> patches (B, T, H, W, Cp)."""
        x = self.mid(self.conv_in(z, state), state)  # (B, T', H', W', cL)
        for level in self.levels:
            x = level(x, state)  # larger after each up step
        return self.conv_out(F.silu(self.norm_out(x)), state)


def initialize_weights(module: nn.Module) -> None:
    """All non-default initialization of the tokenizer, in one place.

    * every temporal conv starts as the identity on the current frame (past taps zero), so the network begins as
      a per-frame 2D autoencoder and learns temporal mixing from there;
    * the last conv of every residual block is zero: blocks start as the identity;
    * attention output projections are zero for the same reason;
    * the decoder's output projection is scaled down by the wavelet synthesis gain (``sqrt(pt * p * p)``, 8 for
      patch 4): with the default init, first reconstructions would be noise of std ~3 on a [-1, 1] scale.
    """
    for m in module.modules():
        if isinstance(m, CausalTemporalConv):
            m.init_current_frame_identity()
    for m in module.modules():
        if isinstance(m, ResBlock):
            last = m.conv2.temporal if m.conv2.temporal is not None else m.conv2.spatial.conv
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        elif isinstance(m, (SpatialAttention, CausalTemporalAttention)):
            nn.init.zeros_(m.out.weight)
            nn.init.zeros_(m.out.bias)
        elif isinstance(m, Decoder):
            with torch.no_grad():
                m.conv_out.spatial.conv.weight.div_(m.synthesis_gain)
                m.conv_out.spatial.conv.bias.zero_()
