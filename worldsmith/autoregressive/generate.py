"""Continuing a video with a trained autoregressive run: frames and a prompt in, frames out.

``ARGenerator.from_run(run_dir)`` loads the GPT (EMA weights) and the DV tokenizer its config.yaml names. A request's
frames are fitted to the training size, cut to the last ``1 + k * ct`` frames that fit the window, tokenized, and
the model rolls out token by token (rollout.py: KV cache, sliding window, streamed decoding). Nothing here imports
training.

Speed on a CPU: decoding is a few hundred small ops per token, so one torch thread is fastest (``threads=1``, the
default; it also avoids OpenMP stalls on a busy machine); ``compile=True`` roughly halves a step after a compile of
tens of seconds. Step-by-step rollouts of ``WIDE_BATCH`` or more rows (a planner's candidates) are the exception:
their matmuls are wide enough to use every core (torch's thread count), which made a 32-candidate planning decision
1.3x faster on 2 cores (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from worldsmith import progress
from worldsmith.autoregressive.config import SamplingConfig
from worldsmith.autoregressive.model import VideoGPT
from worldsmith.autoregressive.rollout import TokenRollout, generate_tokens, stream_video, trim_context
from worldsmith.autoregressive.sampling import RowStreams
from worldsmith.conditioning.text import default_text_encoder
from worldsmith.decoder.generate import DecoderGenerator
from worldsmith.errors import CheckpointError, ConfigError, VideoError
from worldsmith.family import GenerationRequest
from worldsmith.io.frames import fit_frames
from worldsmith.io.video import to_tensor, to_uint8
from worldsmith.tokenizer.causal_conv import select_rows
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.weights import read_run_config
from worldsmith.zoo import resolve

DEFAULT_NEW_FRAMES = 16  # frames generated after the given ones when a request names no length


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` torch threads (None: unchanged), then restore."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def encode_prompts(prompts: list[str], device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """MiniLM token states (B, L, 384) and mask (B, L) of prompts; an empty prompt is unconditioned (mask False)."""
    emb = default_text_encoder(device).encode(prompts)
    keep = torch.tensor([bool(p) for p in prompts], device=emb.mask.device)
    return emb.tokens, emb.mask & keep[:, None]


@dataclass
class ARRolloutState:
    """What a step-by-step rollout carries between steps: the token rollout (window, KV cache, per-row random
    streams) and the causal decoder's streaming state; memory bounded by the model's window."""

    tokens: TokenRollout
    decode: dict  # the tokenizer decoder's streaming state (tokenizer/causal_conv.py)

    def repeat(self, n: int) -> "ARRolloutState":
        """Each rollout ``n`` times (row i * n + j copies row i), each copy with its own stream seeded from row
        i's: the candidates of a planner branch from one present."""
        idx = torch.arange(self.tokens.batch).repeat_interleave(n)
        return replace(self, tokens=self.tokens.repeat(n), decode=select_rows(self.decode, idx))


WIDE_BATCH = 16  # step-by-step rollouts of this many rows or more run on every core, not on ``threads``


class ARGenerator:
    Sampling = SamplingConfig
    fps = None  # the model keeps no frame rate: outputs take the request's

    def __init__(self, model: VideoGPT, tokenizer: CausalVideoTokenizer, size: int, *, threads: int | None = 1,
                 compile: bool = False) -> None:  # fmt: skip
        if tokenizer.fsq is None or tokenizer.fsq.codebook_size != model.cfg.vocab_size:
            raise CheckpointError(f"the {tokenizer.cfg.name} tokenizer does not produce the {model.cfg.vocab_size} "
                                  f"codes this model was trained on; pass the run's own DV tokenizer.")  # fmt: skip
        self.model, self.tokenizer, self.size = model.eval(), tokenizer.eval(), size
        self.threads, self.compile = threads, compile
        self.device = model.tok_emb.weight.device
        self.decoder: DecoderGenerator | None = None  # None: the DV tokenizer's own decoder turns tokens into frames

    def use_decoder(self, decoder: DecoderGenerator) -> "ARGenerator":
        """Decode rollouts with a diffusion decoder (``worldsmith train decoder``) trained on this model's tokens."""
        mine, its = tuple(self.tokenizer.fsq.levels), tuple(decoder.model.cfg.token_levels)
        ours = self.tokenizer.cfg.spatial_compression, self.tokenizer.cfg.temporal_compression
        theirs = decoder.token_tokenizer.cfg.spatial_compression, decoder.token_tokenizer.cfg.temporal_compression
        if mine != its or ours != theirs:
            raise ConfigError(f"the decoder decodes tokens of FSQ levels {list(its)} on a {theirs[1]}x{theirs[0]}x"
                              f"{theirs[0]} grid, this model makes {list(mine)} on {ours[1]}x{ours[0]}x{ours[0]}; "
                              f"train a decoder with --tokens set to this model's tokenizer.")  # fmt: skip
        self.decoder = decoder
        return self

    @torch.no_grad()
    def reconstruct(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, 3, T, H, W) in [-1, 1] through the DV tokens and back, by whichever decoder rollouts use."""
        tokens = self.tokenizer.encode(video.to(self.device))
        if self.decoder is not None:
            return self.decoder.decode(tokens)
        return self.tokenizer.decode(tokens).clamp(-1, 1)

    @classmethod
    def from_run(cls, run: str | Path, device: str = "cpu", *, tokenizer: str | Path | None = None,
                 threads: int | None = 1, compile: bool = False) -> "ARGenerator":  # fmt: skip
        """The model of an autoregressive run and its DV tokenizer (from config.yaml, or ``tokenizer``)."""
        run = resolve(run)
        model = VideoGPT.from_pretrained(run, device=device)
        config = read_run_config(run)
        tokenizer = tokenizer or config.get("tokenizer")
        if not tokenizer:
            raise CheckpointError(f"{run}/config.yaml names no tokenizer run; pass the DV tokenizer run directory.")
        tok = CausalVideoTokenizer.from_pretrained(resolve(tokenizer), device=device)
        tok.hysteresis = float((config.get("data") or {}).get("hysteresis") or 0.0)  # encode as its tokens were
        cs = tok.cfg.spatial_compression
        size = int((config.get("data") or {}).get("size") or model.cfg.grid[0] * cs)
        return cls(model, tok, size, threads=threads, compile=compile)

    def step_threads(self, batch: int) -> int | None:
        """Torch threads for a step of ``batch`` rollouts: ``threads`` below ``WIDE_BATCH`` rows, else every core."""
        return None if batch >= WIDE_BATCH else self.threads

    def planning_sampling(self) -> SamplingConfig:
        """How a planner imagines its candidates: the model's own sampling (temperature 1: of greedy, 0.5 and 1 it
        misplaces the gripper least on held-out arm rollouts; benchmarks/RESULTS.md, both families)."""
        return SamplingConfig()

    @property
    def ct(self) -> int:
        """Video frames per latent frame (the tokenizer's temporal compression): a rollout step's frames."""
        return self.tokenizer.cfg.temporal_compression

    @property
    def rollout_context(self) -> int:
        """Latent frames a rollout step reads before the new one (the window minus the new frame)."""
        return max(self.model.cfg.max_frames - 1, 1)

    @property
    def context_limit(self) -> int:
        """Video frames of the longest context the window keeps room after: max_frames - 1 latent frames."""
        return 1 + max(self.model.cfg.max_frames - 2, 0) * self.tokenizer.cfg.temporal_compression

    def generate(self, request: GenerationRequest, sampling: SamplingConfig | None = None) -> np.ndarray:
        """uint8 (T, H, W, 3): the request's frames (the first, with actions; else the last that fit the window),
        then the rollout after them."""
        if request.video is None or len(request.video) == 0:
            raise ConfigError("the autoregressive model continues a video: give it an image or video (--input).")
        acts = self.model.cfg.action_dim
        if acts and request.actions is None:
            raise ConfigError("this model is action-conditioned: give it the actions to take (--actions), one per "
                              "frame transition.")  # fmt: skip
        video = fit_frames(request.video, self.size, square=True)
        video = video[:1] if acts else video[-self.context_limit :]  # (k, S, S, 3)
        context = trim_context(to_tensor(video)[None].to(self.device), self.tokenizer.cfg.temporal_compression)
        default = 1 + len(request.actions) if acts else context.shape[2] + DEFAULT_NEW_FRAMES
        new = (request.frames or default) - context.shape[2]
        if new < 1:
            raise ConfigError(f"--frames {request.frames} leaves nothing to generate after the {context.shape[2]} "
                              f"given frames; ask for more.")  # fmt: skip
        actions = torch.as_tensor(np.asarray(request.actions, np.float32))[None] if acts else None
        frames = self.stream(context, new, [request.prompt], sampling, request.seed, actions=actions)
        return to_uint8(torch.cat([context, torch.stack(list(frames), dim=2)], dim=2)[0].cpu())

    @torch.no_grad()
    def stream(self, context: torch.Tensor, frames: int, prompts: list[str] | None = None,
               sampling: SamplingConfig | None = None, seed: int = 0, generator: torch.Generator | None = None,
               actions: torch.Tensor | None = None) -> Iterator[torch.Tensor]:  # fmt: skip
        """Yield ``frames`` new frames (B, 3, H, W) in [-1, 1] after context (B, 3, T, H, W), one at a time;
        ``prompts`` (one per sample, "" = none); ``actions`` (B, N, A) from the context's first frame on, for an
        action model; draws from ``generator`` when given, else from ``seed``."""
        text = text_mask = None
        if prompts and any(prompts):
            text, text_mask = encode_prompts(prompts, self.device)
        generator = generator or torch.Generator(self.device).manual_seed(seed)
        if self.decoder is not None:
            yield from self._decoded(context, frames, text, text_mask, sampling, generator, seed, actions)
            return
        with torch_threads(self.threads):
            frames_out = stream_video(self.model, self.tokenizer, context, frames, text=text, text_mask=text_mask,
                                      sampling=sampling, generator=generator, compile=self.compile,
                                      actions=None if actions is None else actions.to(self.device))  # fmt: skip
            for i, frame in enumerate(frames_out):
                progress.report((i + 1) / frames)  # worldsmith.progress: a server's job progress and cancel point
                yield frame

    def _decoded(self, context, frames, text, text_mask, sampling, generator, seed, actions) -> Iterator[torch.Tensor]:
        """``stream`` through the diffusion decoder: every token first, then one decode of the whole clip (a
        causal continuous tokenizer needs the sequence), then its new frames one at a time."""
        ct = self.tokenizer.cfg.temporal_compression
        trimmed = trim_context(context, ct)
        if actions is not None:  # the kept context's first frame is frame ``skip`` of the actions' timeline
            actions = actions[:, context.shape[2] - trimmed.shape[2] :].to(self.device)
        with torch_threads(self.threads):
            prefix = self.tokenizer.encode(trimmed.to(self.device))  # (B, K, H', W')
            latents = -(-frames // ct)
            new = generate_tokens(self.model, prefix, latents, text=text, text_mask=text_mask, sampling=sampling,
                                  generator=generator, compile=self.compile, actions=actions)  # fmt: skip
            tokens = torch.cat([prefix, torch.stack(list(new), dim=1)], dim=1)
            video = self.decoder.decode(tokens, seed=seed)[:, :, trimmed.shape[2] :]  # (B, 3, >= frames, H, W)
        for i in range(frames):
            progress.report((i + 1) / frames)
            yield video[:, :, i]

    # -- step by step (environments, play, the planner) -----------------------------------------------------------
    @torch.no_grad()
    def start_rollout(self, video: torch.Tensor, prompts: list[str], sampling: SamplingConfig | None = None,
                      seeds: list[int] | None = None, actions: torch.Tensor | None = None) -> ARRolloutState:  # fmt: skip
        """The state of ``B`` rollouts that continue ``video`` (B, 3, 1 + m * ct, H, W) in [-1, 1]; row i draws
        its tokens from its own stream seeded with ``seeds[i]``, so a rollout does not depend on its batch.
        ``actions`` (B, m * ct, A): the actions taken between the given frames (zeros when not given: unknown).
        The interface of ``DiffusionGenerator.start_rollout``; the same tokens as ``rollout`` for greedy sampling."""
        a_dim = self.model.cfg.action_dim
        if not a_dim:
            raise ConfigError("step-by-step rollouts need an action-conditioned model (train one with "
                              "`worldsmith train autoregressive ... --set data.actions=true`).")  # fmt: skip
        if self.decoder is not None:
            raise ConfigError("step-by-step rollouts decode each frame with the DV tokenizer's own decoder; the "
                              "diffusion decoder needs the whole clip (drop --decoder).")  # fmt: skip
        if video.ndim != 5 or video.shape[1] != 3 or (video.shape[2] - 1) % self.ct:
            raise VideoError(f"a rollout starts from float video (B, 3, 1 + m * {self.ct}, H, W), got "
                             f"{tuple(video.shape)}.")  # fmt: skip
        b, past = video.shape[0], video.shape[2] - 1
        seeds = list(range(b)) if seeds is None else list(seeds)
        if len(seeds) != b:
            raise ConfigError(f"start_rollout got {len(seeds)} seeds for {b} rollouts.")
        if actions is None:
            actions = torch.zeros(b, past, a_dim)
        elif tuple(actions.shape) != (b, past, a_dim):
            raise ConfigError(f"{video.shape[2]} given frames need the {past} actions between them, (B={b}, {past}, "
                              f"{a_dim}); got {tuple(actions.shape)}.")  # fmt: skip
        text = text_mask = None
        if prompts and any(prompts):
            text, text_mask = encode_prompts(prompts, self.device)
        with torch_threads(self.step_threads(b)):
            prefix = self.tokenizer.encode(video.to(self.device, torch.float32))  # (B, K, H', W')
            decode: dict = {}
            self.tokenizer.decode_chunk(prefix, decode)  # prime the causal decoder with the given frames
        streams = RowStreams([torch.Generator().manual_seed(int(s)) for s in seeds])
        tokens = TokenRollout(self.model, prefix, text=text, text_mask=text_mask, sampling=sampling,
                              generator=streams, compile=self.compile, actions=actions.float())  # fmt: skip
        return ARRolloutState(tokens=tokens, decode=decode)

    @torch.no_grad()
    def step_rollout(self, state: ARRolloutState, actions: torch.Tensor) -> torch.Tensor:
        """The next ``ct`` frames (B, 3, ct, H, W) in [-1, 1] of ``state`` under ``actions`` (B, ct, A)."""
        want = (state.tokens.batch, self.ct, self.model.cfg.action_dim)
        if tuple(actions.shape) != want:
            raise ConfigError(f"a rollout step takes actions {want}, got {tuple(actions.shape)}.")
        with torch_threads(self.step_threads(state.tokens.batch)):
            latent = state.tokens.next_frame(actions.float())  # (B, H', W')
            return self.tokenizer.decode_chunk(latent[:, None], state.decode).clamp(-1, 1)

    def rollout(self, video: torch.Tensor, actions: torch.Tensor, frames: int, prompts: list[str],
                sampling: SamplingConfig | None = None, seed: int = 0) -> torch.Tensor:  # fmt: skip
        """Videos (B, 3, frames, H, W): ``video`` (B, 3, k, H, W) continued under ``actions`` (B, N, A)."""
        video = video.to(self.device)
        new = list(self.stream(video, frames - video.shape[2], prompts, sampling, seed, actions=actions))
        return torch.cat([video, torch.stack(new, dim=2)], dim=2)

    def generate_videos(self, prompts: list[str], *, video: torch.Tensor, frames: int,
                        sampling: SamplingConfig | None = None, seed: int = 0) -> torch.Tensor:  # fmt: skip
        """Videos (B, 3, frames, H, W): ``video`` (B, 3, k, H, W) continued under the prompts (no actions)."""
        video = video.to(self.device)
        new = list(self.stream(video, frames - video.shape[2], prompts, sampling, seed))
        return torch.cat([video, torch.stack(new, dim=2)], dim=2)
