"""Decoding discrete tokens with a trained diffusion decoder: tokens in, frames out.

``DecoderGenerator.from_run(run)`` loads the decoder (EMA weights) and both tokenizers its generation.json names.
``decode(tokens)`` samples the continuous latents of the clip given its DV tokens (windows of the latent frames the
decoder was trained on, each conditioned on its own tokens), then the continuous tokenizer decodes them in one pass
(causal decoders need the whole sequence). ``generate(request)`` is the Generator protocol: a video reconstructed
through the discrete tokens (encode with the DV tokenizer, decode with the decoder), like the tokenizer family's.
The autoregressive generator decodes its rollouts with it (``worldsmith generate --decoder RUN``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from worldsmith.decoder.config import DecoderSamplingConfig
from worldsmith.decoder.model import DiffusionDecoder
from worldsmith.diffusion.condition import Condition, null_text
from worldsmith.diffusion.generate import GENERATION_FILE, load_discrete_tokenizer, load_tokenizer
from worldsmith.errors import CheckpointError, ConfigError, DataError
from worldsmith.family import GenerationRequest
from worldsmith.io.frames import fit_frames
from worldsmith.io.video import to_tensor, to_uint8
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.zoo import resolve


class DecoderGenerator:
    Sampling = DecoderSamplingConfig
    fps = None  # a reconstruction keeps the request's frame rate

    def __init__(self, model: DiffusionDecoder, latents: CausalVideoTokenizer, tokens: CausalVideoTokenizer, *,
                 frames: int, size: int) -> None:  # fmt: skip
        if tokens.fsq is None or tuple(tokens.fsq.levels) != tuple(model.cfg.token_levels):
            raise CheckpointError(f"the decoder decodes FSQ levels {list(model.cfg.token_levels)}, which the "
                                  f"{tokens.cfg.name} tokenizer does not produce; pass the run's own DV tokenizer.")
        self.model, self.latent_tokenizer, self.token_tokenizer = model.eval(), latents.eval(), tokens.eval()
        self.size, self.device = size, next(model.parameters()).device
        self.window = latents.cfg.latent_shape(frames, size, size)[0]  # latent frames per training sample

    @classmethod
    def from_run(cls, run: str | Path, device: str | torch.device = "cpu") -> "DecoderGenerator":
        run = resolve(run)
        path = Path(run) / GENERATION_FILE
        if not path.is_file():
            raise CheckpointError(f"{run} has no {GENERATION_FILE}, so it is not a finished decoder run; train it "
                                  f"with `worldsmith train decoder` first.")  # fmt: skip
        info = json.loads(path.read_text())
        model = DiffusionDecoder.from_pretrained(run, device=device)
        latents = load_tokenizer(info["tokenizer"], device)
        tokens = load_discrete_tokenizer(info["token_tokenizer"], device)
        return cls(model, latents, tokens, frames=info["frames"], size=info["size"])

    def latent_grid(self, tokens: torch.Tensor) -> tuple[int, int, int]:
        """(T', H', W') of the continuous latents of the video whose tokens are (B, T'', H'', W'')."""
        dv, cv = self.token_tokenizer.cfg, self.latent_tokenizer.cfg
        frames = 1 + (tokens.shape[1] - 1) * dv.temporal_compression
        return cv.latent_shape(frames, tokens.shape[2] * dv.spatial_compression, tokens.shape[3] * dv.spatial_compression)

    @torch.no_grad()
    def latents(self, tokens: torch.Tensor, sampling: DecoderSamplingConfig | None = None,
                seed: int = 0) -> torch.Tensor:  # fmt: skip
        """Continuous latents (B, C, T', H', W') (tokenizer scale) of DV tokens (B, T'', H'', W'')."""
        s = sampling or DecoderSamplingConfig()
        if tokens.ndim != 4 or tokens.is_floating_point():
            raise DataError(f"tokens must be integer grids (B, T, H, W), got {tokens.dtype} {tuple(tokens.shape)}.")
        t, h, w = self.latent_grid(tokens)
        b, tokens = tokens.shape[0], tokens.to(self.device)
        generator = torch.Generator(self.device).manual_seed(seed)
        noise = torch.randn(b, self.model.cfg.dit.latent_channels, t, h, w, generator=generator, device=self.device)
        text, mask = null_text(b, self.model.cfg.dit.text_dim, self.device)
        decoded = None
        if self.model.cfg.dv_residual:  # the DV tokenizer's own decoding, in continuous latents
            decoded = self.latent_tokenizer.encode(self.token_tokenizer.decode(tokens).clamp(-1, 1))
        out = []
        for start in range(0, t, self.window):  # windows of the length trained on, each given its own tokens
            window = slice(start, min(start + self.window, t))
            extras = {"tokens": tokens[:, window]}
            if decoded is not None:
                extras["dv_latents"] = decoded[:, :, window]
            cond = Condition(text, mask, extras=extras)
            out.append(self.model.generate(cond, (window.stop - start, h, w), steps=s.steps, sampler=s.sampler,
                                           noise=noise[:, :, window]))  # fmt: skip
        return self.model.denormalize(torch.cat(out, dim=2))

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor, sampling: DecoderSamplingConfig | None = None, seed: int = 0) -> torch.Tensor:
        """Video (B, 3, T, H, W) in [-1, 1] of DV tokens (B, T'', H'', W'')."""
        return self.latent_tokenizer.decode(self.latents(tokens, sampling, seed)).clamp(-1, 1)

    # -- the Generator protocol --------------------------------------------------------------------------------
    def generate(self, request: GenerationRequest, sampling: DecoderSamplingConfig | None = None) -> np.ndarray:
        """uint8 (T, H, W, 3): the request's video through the DV tokens and back (a reconstruction)."""
        if request.video is None or len(request.video) == 0:
            raise ConfigError("the decoder reconstructs a video through its discrete tokens: give it one (--input).")
        ct = self.token_tokenizer.cfg.temporal_compression
        video = fit_frames(request.video, self.size, square=True)
        video = video[: 1 + (len(video) - 1) // ct * ct]
        if request.frames:
            video = video[: request.frames]
        x = to_tensor(video)[None].to(self.device)
        tokens = self.token_tokenizer.encode(x)
        return to_uint8(self.decode(tokens, sampling, request.seed)[0, :, : len(video)].cpu())
