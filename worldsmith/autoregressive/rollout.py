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

from typing import Iterator

import torch

from worldsmith.autoregressive.config import SamplingConfig
from worldsmith.autoregressive.model import GPTContext, VideoGPT
from worldsmith.errors import ConfigError, DataError
from worldsmith.tokenizer.model import CausalVideoTokenizer


class FullStepper:
    """The next slot's state by running the network over the whole window every time (no cache)."""

    def __init__(self, model: VideoGPT, ctx: GPTContext) -> None:
        self.model, self.ctx = model, ctx
        self.inputs: torch.Tensor | None = None

    def prefill(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs (B, n) at slots [0, n) -> the state (B, D) of slot n - 1."""
        self.inputs = inputs
        return self.model(inputs, self.ctx)[:, -1]

    def step(self, token: torch.Tensor, slot: int) -> torch.Tensor:
        """Append token (B,) at ``slot`` -> the state (B, D) of that slot."""
        assert self.inputs is not None and slot == self.inputs.shape[1]
        self.inputs = torch.cat([self.inputs, token[:, None]], dim=1)
        return self.model(self.inputs, self.ctx)[:, -1]


def _static_step(model: VideoGPT, ctx: GPTContext, cache, token: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    return model(token[:, None], ctx, start=pos, cache=cache)[:, -1]


class CachedStepper:
    """The next slot's state from one token and the cached keys/values of the slots before it."""

    def __init__(self, model: VideoGPT, ctx: GPTContext, batch: int, compile: bool = False) -> None:
        self.model, self.ctx = model, ctx
        self.cache = model.new_cache(batch)
        self._compiled = torch.compile(_static_step, dynamic=False) if compile else None

    def prefill(self, inputs: torch.Tensor) -> torch.Tensor:
        self.cache.reset()
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


@torch.no_grad()
def generate_tokens(
    model: VideoGPT,
    prefix: torch.Tensor,
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
    """Yield ``frames`` new latent frames (B, H', W') int64 after prefix (B, K, H', W') (K may be 0).

    ``text`` (B or 1, L, text_dim) with ``text_mask`` conditions every rollout; B rows of the prefix are B
    independent rollouts (batched sampling). ``slide`` latent frames leave a full window at a time. ``actions``
    (B, N, A), for an action model: the transitions from the prefix's first frame on (``action_chunk`` per latent
    frame); each window is conditioned on the actions leading into its frames.
    """
    cfg, sampling = model.cfg, sampling or SamplingConfig()
    if prefix.ndim != 4 or tuple(prefix.shape[2:]) != tuple(cfg.grid) or prefix.is_floating_point():
        raise DataError(f"the prefix must be integer tokens (B, K, {cfg.grid[0]}, {cfg.grid[1]}), got {prefix.dtype} "
                        f"{tuple(prefix.shape)}; encode frames of the size the model was trained on.")  # fmt: skip
    if prefix.numel() and (int(prefix.min()) < 0 or int(prefix.max()) >= cfg.vocab_size):
        raise DataError(f"prefix tokens must lie in [0, {cfg.vocab_size}); they come from another tokenizer.")
    if not 1 <= slide <= cfg.max_frames:
        raise ConfigError(f"slide must be in [1, {cfg.max_frames}] latent frames, got {slide}.")
    if compile and not use_cache:
        raise ConfigError("compile=True compiles the cached decode step; it needs use_cache=True.")
    b, m, (h, w) = prefix.shape[0], cfg.tokens_per_frame, cfg.grid
    device = model.tok_emb.weight.device
    if text is not None and text.shape[0] == 1 and b > 1:
        text = text.expand(b, -1, -1)
        text_mask = text_mask.expand(b, -1) if text_mask is not None else None
    ct = cfg.action_chunk

    def context(first: int) -> GPTContext:  # the window starts at latent frame ``first`` of the rollout
        extras = {"actions": actions[:, first * ct :].to(device)} if actions is not None else None
        return model.context(text, text_mask, batch=b, extras=extras)

    keep = min(prefix.shape[1], cfg.max_frames - 1)
    first = prefix.shape[1] - keep
    ctx = context(first)
    stepper = CachedStepper(model, ctx, b, compile) if use_cache else FullStepper(model, ctx)
    bos = torch.full((b, 1), model.bos, dtype=torch.long, device=device)
    window = prefix[:, first:].reshape(b, keep * m).to(device=device, dtype=torch.long)
    state = stepper.prefill(torch.cat([bos, window], dim=1))  # predicts the first new token
    for f in range(frames):
        n = window.shape[1]  # slots before the new frame
        new = []
        for j in range(m):
            token = model.head.sample(state, sampling, generator)  # (B,)
            new.append(token)
            if j < m - 1:
                state = stepper.step(token, n + j + 1)
        frame = torch.stack(new, dim=1)  # (B, H'*W')
        yield frame.view(b, h, w)
        window = torch.cat([window, frame], dim=1)
        if f == frames - 1:
            break
        if window.shape[1] + m > cfg.max_len:  # window full: drop the oldest frames, re-read the rest
            window, first = window[:, slide * m :], first + slide
            if actions is not None:
                stepper.ctx = context(first)
            state = stepper.prefill(torch.cat([bos, window], dim=1))
        else:
            state = stepper.step(token, window.shape[1])


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
