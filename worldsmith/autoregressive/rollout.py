"""Rollouts: frame after frame of tokens from a prefix, with a KV cache, a sliding window, and streamed decoding.

``generate_tokens`` is the token loop. For each new latent frame it draws ``H' * W'`` tokens one at a time and
yields the frame (B, H', W') the moment its last token exists. The window holds at most ``max_frames`` latent
frames; when it is full the oldest ``slide`` frames are dropped and the rest is re-read from slot 0 (one batched
prefill), so rollouts can run forever at a bounded cost per frame.

Steppers compute the output state of the next slot (the model's head turns it into a token):

* ``CachedStepper``: keys/values of past slots live in a static ``KVCache``; a step runs the network on one token.
  ``compile=True`` runs that step through ``torch.compile`` in its static-shape form (position as a tensor);
* ``FullStepper``: no cache, the whole window is recomputed for every token (the reference the cache must match,
  and the baseline of the benchmark).

``stream_video`` wraps it with the tokenizer: the context video is encoded, the causal decoder is primed with the
context tokens, and each generated latent frame is decoded with the decoder's streaming state into its
``temporal_compression`` video frames, yielded one at a time.

Speed on a CPU: a decode step is a few hundred small ops, so one torch thread is fastest (``torch.set_num_threads(1)``,
which also avoids OpenMP stalls on a busy machine); ``compile=True`` roughly halves the step time after a compile
of tens of seconds per batch size. See benchmarks/autoregressive.py.
"""

from __future__ import annotations

import copy
from typing import Iterator

import torch

from worldsmith.autoregressive.config import SamplingConfig
from worldsmith.autoregressive.model import GPTContext, VideoGPT
from worldsmith.autoregressive.sampling import RowStreams
from worldsmith.errors import ConfigError, DataError
from worldsmith.tokenizer.model import CausalVideoTokenizer


class FullStepper:
    """The next slot's state by running the network over the whole window every time (no cache)."""

    def __init__(self, model: VideoGPT, ctx: GPTContext) -> None:
        self.model, self.ctx = model, ctx
        self.inputs: torch.Tensor | None = None

    def prefill(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """inputs (B, n) at slots [0, n) -> the state (B, D) of slot n - 1 (None for n = 0)."""
        self.inputs = inputs
        return self.model(inputs, self.ctx)[:, -1] if inputs.shape[1] else None

    def step(self, token: torch.Tensor, slot: int) -> torch.Tensor:
        """Append token (B,) at ``slot`` -> the state (B, D) of that slot."""
        assert self.inputs is not None and slot == self.inputs.shape[1]
        self.inputs = torch.cat([self.inputs, token[:, None]], dim=1)
        return self.model(self.inputs, self.ctx)[:, -1]

    def select(self, idx: torch.Tensor, ctx: GPTContext) -> "FullStepper":
        """A stepper of rows ``idx`` of this one's rollouts, under ``ctx`` (theirs)."""
        out = FullStepper(self.model, ctx)
        out.inputs = None if self.inputs is None else self.inputs[idx]
        return out


def _static_step(model: VideoGPT, ctx: GPTContext, cache, token: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    return model(token[:, None], ctx, start=pos, cache=cache)[:, -1]


class CachedStepper:
    """The next slot's state from one token and the cached keys/values of the slots before it."""

    def __init__(self, model: VideoGPT, ctx: GPTContext, batch: int, compile: bool = False) -> None:
        self.model, self.ctx = model, ctx
        self.cache = model.new_cache(batch)
        self._compiled = torch.compile(_static_step, dynamic=False) if compile else None

    def prefill(self, inputs: torch.Tensor) -> torch.Tensor | None:
        self.cache.reset()
        if not inputs.shape[1]:
            return None
        state = self.model(inputs, self.ctx, start=0, cache=self.cache)[:, -1]
        self.cache.advance(inputs.shape[1])
        return state

    def step(self, token: torch.Tensor, slot: int) -> torch.Tensor:
        if slot != self.cache.length:
            raise ValueError(f"cached step at slot {slot}, but the cache holds {self.cache.length} slots")
        if self._compiled is not None:
            pos = torch.tensor(slot, device=token.device)
            state = self._compiled(self.model, self.ctx, self.cache, token, pos)
        else:
            state = self.model(token[:, None], self.ctx, start=slot, cache=self.cache)[:, -1]
        self.cache.advance(1)
        return state

    def select(self, idx: torch.Tensor, ctx: GPTContext) -> "CachedStepper":
        """A stepper of rows ``idx`` of this one's rollouts (their cached keys and values), under ``ctx``."""
        out = copy.copy(self)
        out.ctx, out.cache = ctx, self.cache.select(idx)
        return out


class TokenRollout:
    """A batch of token rollouts advanced one latent frame per ``next_frame`` call: the engine of ``generate_tokens``
    (all actions known up front) and of step-by-step rollouts (environments, play, the planner), where each
    frame's actions arrive with it.

    A frame's actions reach its slots through the conditioning slot, and slot ``n`` (the input that predicts a
    frame's first token) already sits in the new frame, so the last token of a frame is fed at the start of the
    next call, once that frame's actions are known. Embeddings are per frame and attention is causal, so actions
    given late produce exactly the tokens of actions given up front.
    """

    def __init__(self, model: VideoGPT, prefix: torch.Tensor, *, text: torch.Tensor | None = None,
                 text_mask: torch.Tensor | None = None, sampling: SamplingConfig | None = None,
                 generator: torch.Generator | RowStreams | None = None, use_cache: bool = True, slide: int = 1,
                 compile: bool = False, actions: torch.Tensor | None = None) -> None:  # fmt: skip
        cfg = model.cfg
        if prefix.ndim != 4 or tuple(prefix.shape[2:]) != tuple(cfg.grid) or prefix.is_floating_point():
            raise DataError(f"the prefix must be integer tokens (B, K, {cfg.grid[0]}, {cfg.grid[1]}), got "
                            f"{prefix.dtype} {tuple(prefix.shape)}; encode frames of the size the model was trained "
                            f"on.")  # fmt: skip
        if prefix.numel() and (int(prefix.min()) < 0 or int(prefix.max()) >= cfg.vocab_size):
            raise DataError(f"prefix tokens must lie in [0, {cfg.vocab_size}); they come from another tokenizer.")
        if not 1 <= slide <= cfg.max_frames:
            raise ConfigError(f"slide must be in [1, {cfg.max_frames}] latent frames, got {slide}.")
        if compile and not use_cache:
            raise ConfigError("compile=True compiles the cached decode step; it needs use_cache=True.")
        self.model, self.sampling, self.generator = model, sampling or SamplingConfig(), generator
        self.use_cache, self.slide, self.compile = use_cache, slide, compile
        b, self.m = prefix.shape[0], cfg.tokens_per_frame
        self.device = device = model.tok_emb.weight.device
        if text is not None and text.shape[0] == 1 and b > 1:
            text = text.expand(b, -1, -1)
            text_mask = text_mask.expand(b, -1) if text_mask is not None else None
        self.cross = model.cross_kv(text, text_mask, text.shape[0] if text is not None else b)
        keep = min(prefix.shape[1], cfg.max_frames - 1)
        self.first = prefix.shape[1] - keep  # latent frame of the rollout at window slot 0
        # the actions known from the window's first frame on (action models; zeros stand for those not yet given)
        self.actions = None if actions is None else actions[:, self.first * cfg.action_chunk :].to(device)
        self.window = prefix[:, self.first :].reshape(b, keep * self.m).to(device=device, dtype=torch.long)
        self.bos = torch.full((b, 1), model.bos, dtype=torch.long, device=device)
        self.stepper: CachedStepper | FullStepper | None = None
        self.last: torch.Tensor | None = None  # the previous frame's last token, fed when the next frame starts
        self._ctx_key: tuple | None = None

    @property
    def batch(self) -> int:
        return self.window.shape[0]

    def context(self) -> GPTContext:
        """The window's conditions, recomputed only when its first frame or the known actions changed."""
        key = (self.first, None if self.actions is None else self.actions.shape[1])
        if key != self._ctx_key:
            extras = None if self.actions is None else {"actions": self.actions}
            self._ctx = GPTContext(self.cross, self.model.slot_embeddings(extras, self.batch))
            self._ctx_key = key
        return self._ctx

    def next_frame(self, actions: torch.Tensor | None = None) -> torch.Tensor:
        """The next latent frame's tokens (B, H', W'). ``actions`` (B, action_chunk, A): the actions leading into
        it, for a rollout whose actions were not all given up front."""
        model, cfg, m = self.model, self.model.cfg, self.m
        if actions is not None:
            if self.actions is None:
                raise ConfigError("this rollout takes no actions (the model is not action-conditioned).")
            self.actions = torch.cat([self.actions, actions.to(self.device, self.actions.dtype)], dim=1)
        self.prime()
        if self.window.shape[1] + m > cfg.max_len:  # window full: drop the oldest frames, re-read the rest
            self.window, self.first = self.window[:, self.slide * m :], self.first + self.slide
            if self.actions is not None:
                self.actions = self.actions[:, self.slide * cfg.action_chunk :]
            self.stepper.ctx = self.context()
            state = self.stepper.prefill(torch.cat([self.bos, self.window], dim=1))
        else:
            self.stepper.ctx = self.context()
            state = self.stepper.step(self.last, self.window.shape[1])
        n, new = self.window.shape[1], []
        for j in range(m):
            token = model.head.sample(state, self.sampling, self.generator)  # (B,)
            new.append(token)
            if j < m - 1:
                state = self.stepper.step(token, n + j + 1)
        frame = torch.stack(new, dim=1)  # (B, H'*W')
        self.window, self.last = torch.cat([self.window, frame], dim=1), token
        return frame.view(self.batch, *cfg.grid)

    @torch.no_grad()
    def prime(self) -> None:
        """Read the window into a new stepper (once): every input but the last, whose slot lies in the next frame
        and so waits for that frame's actions. A planner primes its one present, then ``repeat`` copies the cache
        into every candidate: one prefill of one row instead of one of every candidate."""
        if self.stepper is not None:
            return
        ctx = self.context()
        self.stepper = CachedStepper(self.model, ctx, self.batch, self.compile) if self.use_cache else \
            FullStepper(self.model, ctx)  # fmt: skip
        inputs = torch.cat([self.bos, self.window], dim=1)
        self.stepper.prefill(inputs[:, :-1])
        self.last = inputs[:, -1]

    def repeat(self, n: int) -> "TokenRollout":
        """Each rollout ``n`` times (row i * n + j copies row i), the copies drawing from streams seeded from row i's
        (a planner's candidates branch from one present); needs per-row streams (RowStreams) or greedy sampling."""
        if self.generator is not None and not isinstance(self.generator, RowStreams):
            raise ConfigError("only a rollout with one random stream per row (RowStreams) can be repeated.")
        self.prime()
        idx = torch.arange(self.batch, device=self.device).repeat_interleave(n)
        out = copy.copy(self)
        out.generator = None if self.generator is None else self.generator.repeat(n)
        out.window, out.bos, out.last = self.window[idx], self.bos[idx], self.last[idx]
        out.actions = None if self.actions is None else self.actions[idx]
        out.cross = [(k[idx], v[idx], None if mask is None else mask[idx]) for k, v, mask in self.cross]
        out._ctx_key = None
        out.stepper = self.stepper.select(idx, out.context())
        return out


@torch.no_grad()
def generate_tokens(model: VideoGPT, prefix: torch.Tensor, frames: int, **kwargs) -> Iterator[torch.Tensor]:
    """Yield ``frames`` new latent frames (B, H', W') int64 after prefix (B, K, H', W') (K may be 0).

    ``text`` (B or 1, L, text_dim) with ``text_mask`` conditions every rollout; B rows of the prefix are B
    independent rollouts (batched sampling). ``slide`` latent frames leave a full window at a time. ``actions``
    (B, N, A), for an action model: the transitions from the prefix's first frame on (``action_chunk`` per latent
    frame); each window is conditioned on the actions leading into its frames. The other keywords are
    ``TokenRollout``'s.
    """
    rollout = TokenRollout(model, prefix, **kwargs)
    for _ in range(frames):
        yield rollout.next_frame()


def trim_context(video: torch.Tensor, temporal_compression: int) -> torch.Tensor:
    """The last 1 + k * ct frames of video (B, 3, T, H, W): the longest suffix a causal tokenizer can encode."""
    t = video.shape[2]
    if t < 1:
        raise DataError("the context video has no frames.")
    keep = 1 + (t - 1) // temporal_compression * temporal_compression
    return video[:, :, t - keep :]


@torch.no_grad()
def stream_video(
    model: VideoGPT,
    tokenizer: CausalVideoTokenizer,
    context: torch.Tensor,
    frames: int,
    *,
    text: torch.Tensor | None = None,
    text_mask: torch.Tensor | None = None,
    sampling: SamplingConfig | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    slide: int = 1,
    compile: bool = False,
    actions: torch.Tensor | None = None,
) -> Iterator[torch.Tensor]:
    """Yield ``frames`` new video frames (B, 3, H, W) in [-1, 1] after context video (B, 3, T, H, W).

    The context is cut to its last 1 + k * temporal_compression frames and tokenized; the other arguments are
    those of ``generate_tokens``. Each frame is yielded as soon as the latent frame holding it has been sampled
    and decoded.
    """
    if tokenizer.fsq is None:
        raise ConfigError(f"the {tokenizer.cfg.name} tokenizer is continuous; the autoregressive model needs a "
                          f"discrete (DV/DI) tokenizer.")  # fmt: skip
    if frames < 1:
        raise ConfigError(f"frames must be >= 1, got {frames}.")
    ct = tokenizer.cfg.temporal_compression
    skip = context.shape[2]
    context = trim_context(context, ct)
    skip -= context.shape[2]  # video frames cut from the front of the context
    prefix = tokenizer.encode(context)  # (B, K, H', W')
    if tuple(prefix.shape[2:]) != tuple(model.cfg.grid):
        cs = tokenizer.cfg.spatial_compression
        raise DataError(f"context frames of {context.shape[3]}x{context.shape[4]} give {tuple(prefix.shape[2:])} "
                        f"token grids, but the model was trained on {tuple(model.cfg.grid)}: resize the frames to "
                        f"{model.cfg.grid[0] * cs}x{model.cfg.grid[1] * cs}.")  # fmt: skip
    state: dict = {}
    tokenizer.decode_chunk(prefix, state)  # prime the causal decoder with the context's tokens
    emitted, latents = 0, -(-frames // ct)
    if actions is not None:  # the context's first kept frame is frame ``skip`` of the given actions' timeline
        actions = actions[:, skip:]
    tokens = generate_tokens(model, prefix, latents, text=text, text_mask=text_mask, sampling=sampling, actions=actions,
                             generator=generator, use_cache=use_cache, slide=slide, compile=compile)  # fmt: skip
    for latent in tokens:
        video = tokenizer.decode_chunk(latent[:, None], state)  # (B, 3, ct, H, W)
        for i in range(video.shape[2]):
            if emitted == frames:
                return
            yield video[:, :, i].clamp(-1, 1)
            emitted += 1
