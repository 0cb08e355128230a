"""``CausalVideoTokenizer``: the continuous (CV/CI) and discrete (DV/DI) causal tokenizers of Cosmos.

Cosmos tokenizer (arXiv 2501.03575, Sec. 3.1): Haar wavelet patching -> causal encoder -> bottleneck -> causal
decoder -> inverse wavelet. Causal in time: ``1 + T`` frames become ``1 + T / ct`` latent frames and the first
latent frame depends on the first video frame only, so one network is both an image and a video tokenizer.

Beyond the reference: ``cfg.shortcut`` (on in every preset) adds linear paths from the Haar patches to the latent
and from the latent back to the patches (shortcut.py), so encoder and decoder learn a residual on top of a
linear transform code; on 64x64 arm-world clips this lifts held-out PSNR by ~3 dB at equal training time.

Bottlenecks (``cfg.kind`` / ``cfg.kl``):
  * continuous: ``latent_channels`` floats per latent pixel (a plain autoencoder, as Cosmos CV; ``kl: true``
    makes it a VAE with a KL term);
  * discrete: a linear map to ``len(fsq_levels)`` channels, finite scalar quantization (fsq.py), and a linear map
    back; ``encode`` returns integer tokens (B, T', H', W') in ``[0, prod(fsq_levels))``.

Tensors: videos (B, 3, T, H, W) float in [-1, 1]; continuous latents (B, C, T', H', W'); tokens (B, T', H', W')
int64. ``decode`` returns the raw network output (clamp to [-1, 1] for display).

The model only codes: the training objective, the discriminator and the frozen perceptual network live in
losses.py (``TokenizerLoss``). Weights load with ``CausalVideoTokenizer.from_pretrained(run_dir)``
(worldsmith.weights); run folders written before the loss moved out of the model load too (``upgrade``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from worldsmith.tokenizer import stream
from worldsmith.tokenizer.blocks import ResBlock
from worldsmith.tokenizer.causal_conv import CausalTemporalConv, State
from worldsmith.tokenizer.config import TokenizerConfig
from worldsmith.tokenizer.fsq import FSQ
from worldsmith.tokenizer.networks import Decoder, Encoder, initialize_weights
from worldsmith.tokenizer.shortcut import FoldShortcut, UnfoldShortcut
from worldsmith.tokenizer.tensors import TokenizerInputError, check_latents, check_video
from worldsmith.tokenizer.wavelet import HaarPatcher
from worldsmith.weights import Pretrained

__all__ = ["CausalVideoTokenizer", "TokenizerInputError"]

# what older run folders hold that the model no longer owns: the loss weights in config.yaml's ``model.loss`` and
# the patch discriminator's tensors in model.safetensors (both belong to losses.TokenizerLoss now)
_OLD_LOSS_KEY, _OLD_DISCRIMINATOR_PREFIX = "loss", "discriminator."


class CausalVideoTokenizer(nn.Module, Pretrained):
    Config = TokenizerConfig

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patcher = HaarPatcher(cfg.patch_size, cfg.temporal_patch)
        c = cfg.latent_channels
        self.encoder = Encoder(cfg, self.patcher.out_channels, 2 * c if cfg.kl else c)
        self.decoder = Decoder(cfg, c, self.patcher.out_channels)
        self.fsq = FSQ(cfg.fsq_levels) if cfg.kind == "discrete" else None
        # an encoding setting, not a weight: > 0 gives tokens with hysteresis along time (FSQ.stable_digits), set by
        # whoever encodes for a GPT trained on such tokens (its run's data.hysteresis)
        self.hysteresis = 0.0
        self.quant = nn.Linear(c, self.fsq.dim) if self.fsq else None  # (.., C) -> (.., d)
        self.post_quant = nn.Linear(self.fsq.dim, c) if self.fsq else None  # (.., d) -> (.., C)
        self.enc_shortcut = self.dec_shortcut = None
        if cfg.shortcut:  # linear paths around encoder and decoder (shortcut.py)
            r, s = cfg.temporal_compression // cfg.temporal_patch, cfg.spatial_compression // cfg.patch_size
            self.enc_shortcut = FoldShortcut(self.patcher.out_channels, c, r, s)
            self.dec_shortcut = UnfoldShortcut(c, self.patcher.out_channels, r, s)
        initialize_weights(self)
        if self.dec_shortcut is not None:
            with torch.no_grad():
                self.dec_shortcut.proj.weight.div_(self.decoder.synthesis_gain)
                self.dec_shortcut.proj.bias.zero_()

    @classmethod
    def from_pretrained(cls, run_dir: str | Path, device: str | torch.device = "cpu", ema: bool = True):
        """The tokenizer saved in ``run_dir``, in eval mode and in the inference layout (``use_inference_layout``).
        To train from saved weights, load them into a fresh model (as ``init_from`` does)."""
        return super().from_pretrained(run_dir, device=device, ema=ema).use_inference_layout()

    @torch.no_grad()
    def use_inference_layout(self) -> "CausalVideoTokenizer":
        """Store every convolution weight channels-last, the layout oneDNN computes in, so no call re-lays it out
        (~5 % of an encode + decode at base width; benchmarks/RESULTS.md, issue22). Values are unchanged, and
        checkpoints are written contiguous either way; training keeps the default layout (optimizer state and
        gradient buckets expect it)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
            elif isinstance(m, CausalTemporalConv):  # (Cout, Cin, k) stored as (Cout, k, Cin)
                m.weight.data = m.weight.data.transpose(1, 2).contiguous().transpose(1, 2)
        return self

    # ---------------------------------------------------------------------------------------------------------
    # input checks (tensors.py)
    # ---------------------------------------------------------------------------------------------------------
    def check_video(self, video: torch.Tensor, first_chunk: bool = True) -> None:
        check_video(self.cfg, video, first_chunk)

    def check_latents(self, z: torch.Tensor) -> None:
        check_latents(self.cfg, z)

    # ---------------------------------------------------------------------------------------------------------
    # chunk-level encode / decode (whole videos are one chunk with state=None)
    # ---------------------------------------------------------------------------------------------------------
    def _features(self, video: torch.Tensor, state: State) -> torch.Tensor:
        first = state is None or self.patcher not in state
        if state is not None:
            state[self.patcher] = True
        patches = self.patcher.patchify(video, first_chunk=first)  # (B, T', H/p, W/p, 3*pt*p*p)
        h = self.encoder(patches, state)  # (B, T', H', W', C or 2C)
        if self.enc_shortcut is not None:  # onto the latent (the mean of a VAE)
            linear = self.enc_shortcut(patches, state)  # (B, T', H', W', C)
            h = h + torch.nn.functional.pad(linear, (0, h.shape[-1] - linear.shape[-1]))
        return h

    def _patches(self, z: torch.Tensor, state: State) -> torch.Tensor:
        """Decoder input (B, T', H', W', C) -> Haar patches (B, T, H/p, W/p, 3*pt*p*p)."""
        out = self.decoder(z, state)
        return out if self.dec_shortcut is None else out + self.dec_shortcut(z, state)

    def _bottleneck(self, h: torch.Tensor, sample: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Encoder output (B, T', H', W', C*) -> decoder input (B, T', H', W', C), plus "codes" (discrete) or the
        posterior's "mean" and "logvar" (VAE; ``sample`` draws from the posterior instead of taking its mean)."""
        if self.fsq is not None:
            codes = self.fsq.quantize(self.quant(h).permute(0, 4, 1, 2, 3))  # (B, d, T', H', W')
            return self.post_quant(codes.permute(0, 2, 3, 4, 1)), {"codes": codes}
        if self.cfg.kl:
            mean, logvar = h.chunk(2, dim=-1)  # (B, T', H', W', C) each
            logvar = logvar.clamp(-30.0, 20.0)
            z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if sample else mean
            return z, {"mean": mean, "logvar": logvar}
        return h, {}

    def encode_chunk(self, video: torch.Tensor, state: State = None) -> torch.Tensor:
        """Latents (B, C, T', H', W') or tokens (B, T', H', W') of a video chunk; ``state`` carries the past."""
        self.check_video(video, first_chunk=state is None or self.patcher not in state)
        h = self._features(video, state)
        if self.fsq is not None and self.hysteresis:  # tokens that do not flicker at rounding boundaries
            y = self.fsq.bound(self.quant(h).permute(0, 4, 1, 2, 3))  # (B, d, T', H', W')
            digits = self.fsq.stable_digits(y, self.hysteresis, None if state is None else state.get(self.fsq))
            if state is not None:
                state[self.fsq] = digits[:, :, -1]
            return self.fsq.digits_to_indices(digits)  # (B, T', H', W')
        z, extras = self._bottleneck(h)  # (B, T', H', W', C)
        if self.fsq is not None:
            return self.fsq.codes_to_indices(extras["codes"])  # (B, T', H', W')
        return z.permute(0, 4, 1, 2, 3).contiguous()  # (B, C, T', H', W')

    def decode_chunk(self, z: torch.Tensor, state: State = None) -> torch.Tensor:
        """Video chunk (B, 3, T, H, W) from latents or tokens; ``state`` carries the past."""
        self.check_latents(z)
        if self.fsq is not None:
            codes = self.fsq.indices_to_codes(z, self.post_quant.weight.dtype)  # (B, d, T', H', W')
            z_cl = self.post_quant(codes.permute(0, 2, 3, 4, 1))  # (B, T', H', W', C)
        else:
            z_cl = z.permute(0, 2, 3, 4, 1)  # (B, T', H', W', C)
        first = state is None or self.decoder not in state
        if state is not None:
            state[self.decoder] = True
        return self.patcher.unpatchify(self._patches(z_cl, state), first_chunk=first)  # (B, 3, T, H, W)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Whole video (B, 3, 1 + k*ct, H, W) -> latents (B, C, 1 + k, H/cs, W/cs) or tokens (B, 1 + k, H/cs, W/cs)."""
        return self.encode_chunk(video)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents or tokens of a whole video -> video (B, 3, 1 + k*ct, H, W)."""
        return self.decode_chunk(z)

    def encode_stream(
        self, chunks: Iterable[torch.Tensor], chunk_frames: int | None = None, pad_tail: bool = True
    ) -> Iterator[torch.Tensor]:
        """Latent chunks of a video given as chunks of any length (see stream.py)."""
        return stream.encode_stream(self, chunks, chunk_frames=chunk_frames, pad_tail=pad_tail)

    def decode_stream(self, chunks: Iterable[torch.Tensor], chunk_latents: int = 4) -> Iterator[torch.Tensor]:
        """Video chunks of a latent stream (see stream.py)."""
        return stream.decode_stream(self, chunks, chunk_latents=chunk_latents)

    # ---------------------------------------------------------------------------------------------------------
    # training forward
    # ---------------------------------------------------------------------------------------------------------
    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reconstruction (B, 3, T, H, W) with gradients through the bottleneck, and the bottleneck's extras
        ("codes" of a discrete model; "mean" / "logvar" of a VAE, which samples its posterior in training)."""
        self.check_video(video)
        z, extras = self._bottleneck(self._features(video, None), sample=self.training)  # (B, T', H', W', C)
        return self.patcher.unpatchify(self._patches(z, None)), extras

    def checkpoint_modules(self) -> list[nn.Module]:
        return [m for m in self.modules() if isinstance(m, ResBlock)]

    # ---------------------------------------------------------------------------------------------------------
    # older run folders
    # ---------------------------------------------------------------------------------------------------------
    @classmethod
    def upgrade(cls, model_config: dict[str, Any], state: dict[str, torch.Tensor],
                run_dir: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:  # fmt: skip
        """A run written when the model owned its loss: drop ``model.loss`` and the ``discriminator.*`` tensors
        (the tokenizer's own weights are unchanged); newer runs pass through untouched."""
        model_config = {k: v for k, v in model_config.items() if k != _OLD_LOSS_KEY}
        state = {k: v for k, v in state.items() if not k.startswith(_OLD_DISCRIMINATOR_PREFIX)}
        return model_config, state
