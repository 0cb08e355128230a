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
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import torch
from torch import nn

from worldsmith.errors import WorldsmithError
from worldsmith.tokenizer.blocks import ResBlock
from worldsmith.tokenizer.causal_conv import State
from worldsmith.tokenizer.discriminator import PatchDiscriminator
from worldsmith.tokenizer.fsq import FSQ
from worldsmith.tokenizer.losses import kl_loss, tokenizer_loss
from worldsmith.tokenizer.networks import Decoder, Encoder, initialize_weights
from worldsmith.tokenizer.shortcut import FoldShortcut, UnfoldShortcut
from worldsmith.tokenizer.tokenizer_config import TokenizerConfig
from worldsmith.tokenizer.wavelet import HaarPatcher


class TokenizerInputError(WorldsmithError):
    """A video, latent or token tensor has the wrong shape, dtype or size for this tokenizer."""


class CausalVideoTokenizer(nn.Module):
    Config = TokenizerConfig

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patcher = HaarPatcher(cfg.patch_size, cfg.temporal_patch)
        c = cfg.latent_channels
        self.encoder = Encoder(cfg, self.patcher.out_channels, 2 * c if cfg.kl else c)
        self.decoder = Decoder(cfg, c, self.patcher.out_channels)
        self.fsq = FSQ(cfg.fsq_levels) if cfg.kind == "discrete" else None
        self.quant = nn.Linear(c, self.fsq.dim) if self.fsq else None  # (.., C) -> (.., d)
        self.post_quant = nn.Linear(self.fsq.dim, c) if self.fsq else None  # (.., d) -> (.., C)
        self.discriminator = PatchDiscriminator(cfg.loss.disc_channels) if cfg.loss.adversarial > 0 else None
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

    # ---------------------------------------------------------------------------------------------------------
    # input checks
    # ---------------------------------------------------------------------------------------------------------
    def check_video(self, video: torch.Tensor, first_chunk: bool = True) -> None:
        cfg, name = self.cfg, self.cfg.name
        is_video = isinstance(video, torch.Tensor) and video.ndim == 5 and video.shape[1] == 3
        if not (is_video and video.is_floating_point()):
            got = f"{video.dtype} {tuple(video.shape)}" if isinstance(video, torch.Tensor) else type(video).__name__
            raise TokenizerInputError(
                f"the {name} tokenizer expects a float video tensor (B, 3, T, H, W) in [-1, 1], got {got}."
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

    def check_latents(self, z: torch.Tensor) -> None:
        cfg, name = self.cfg, self.cfg.name
        if self.fsq is not None:
            if not isinstance(z, torch.Tensor) or z.ndim != 4 or z.is_floating_point() or z.is_complex():
                got = f"{z.dtype} {tuple(z.shape)}" if isinstance(z, torch.Tensor) else type(z).__name__
                raise TokenizerInputError(f"the {name} tokenizer decodes integer tokens (B, T', H', W'), got {got}.")
            if z.numel() and (int(z.min()) < 0 or int(z.max()) >= self.fsq.codebook_size):
                raise TokenizerInputError(
                    f"tokens must lie in [0, {self.fsq.codebook_size}) for FSQ levels {list(cfg.fsq_levels)}, "
                    f"got values in [{int(z.min())}, {int(z.max())}]."
                )
        elif not (isinstance(z, torch.Tensor) and z.ndim == 5 and z.shape[1] == cfg.latent_channels
                  and z.is_floating_point()):
            got = f"{z.dtype} {tuple(z.shape)}" if isinstance(z, torch.Tensor) else type(z).__name__
            raise TokenizerInputError(
                f"the {name} tokenizer decodes float latents (B, {cfg.latent_channels}, T', H', W'), got {got}."
            )

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
        """Encoder output (B, T', H', W', C*) -> decoder input (B, T', H', W', C), plus "codes" (discrete) or
        "kl" (VAE; ``sample`` draws from the posterior instead of taking its mean)."""
        if self.fsq is not None:
            codes = self.fsq.quantize(self.quant(h).permute(0, 4, 1, 2, 3))  # (B, d, T', H', W')
            return self.post_quant(codes.permute(0, 2, 3, 4, 1)), {"codes": codes}
        if self.cfg.kl:
            mean, logvar = h.chunk(2, dim=-1)  # (B, T', H', W', C) each
            logvar = logvar.clamp(-30.0, 20.0)
            z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if sample else mean
            return z, {"kl": kl_loss(mean, logvar)}
        return h, {}

    def encode_chunk(self, video: torch.Tensor, state: State = None) -> torch.Tensor:
        """Latents (B, C, T', H', W') or tokens (B, T', H', W') of a video chunk; ``state`` carries the past."""
        self.check_video(video, first_chunk=state is None or self.patcher not in state)
        z, extras = self._bottleneck(self._features(video, state))  # (B, T', H', W', C)
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
        from worldsmith.tokenizer.stream import encode_stream

        return encode_stream(self, chunks, chunk_frames=chunk_frames, pad_tail=pad_tail)

    def decode_stream(self, chunks: Iterable[torch.Tensor], chunk_latents: int = 4) -> Iterator[torch.Tensor]:
        """Video chunks of a latent stream (see stream.py)."""
        from worldsmith.tokenizer.stream import decode_stream

        return decode_stream(self, chunks, chunk_latents=chunk_latents)

    # ---------------------------------------------------------------------------------------------------------
    # training
    # ---------------------------------------------------------------------------------------------------------
    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reconstruction (B, 3, T, H, W) with gradients through the bottleneck, and the bottleneck's extras."""
        self.check_video(video)
        z, extras = self._bottleneck(self._features(video, None), sample=self.training)  # (B, T', H', W', C)
        return self.patcher.unpatchify(self._patches(z, None)), extras

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        return tokenizer_loss(self, batch)

    def checkpoint_modules(self) -> list[nn.Module]:
        return [m for m in self.modules() if isinstance(m, ResBlock)]

    # ---------------------------------------------------------------------------------------------------------
    # weights
    # ---------------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls, run_dir: str | Path, device: str | torch.device = "cpu", ema: bool = True
    ) -> "CausalVideoTokenizer":
        """Load a run directory (config.yaml + model.safetensors) written by training or ``save_pretrained``."""
        from worldsmith.train.checkpoint import load_pretrained

        return load_pretrained(cls, run_dir, ema=ema, device=device)

    def save_pretrained(self, run_dir: str | Path) -> Path:
        """Write ``model.safetensors`` and the ``model:`` section of ``config.yaml`` into ``run_dir``."""
        from worldsmith.train.checkpoint import save_pretrained

        return save_pretrained(self, self.cfg, run_dir)
