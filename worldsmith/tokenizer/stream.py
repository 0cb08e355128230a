"""Encode and decode arbitrarily long videos chunk by chunk, in bounded memory, equal to whole-video coding.

The reference tokenizer tiles long videos into independent fixed 17-frame windows, which resets the causal
context at every window and shows seams. Here every causal layer keeps exactly the past it needs in a per-stream
``state`` dict (see causal_conv.py and attention.py):

* temporal convolutions: the last ``kernel - stride`` input frames;
* temporal attention: keys and values of the last ``attn_window - 1`` latent frames;
* the wavelet patcher and temporal upsamplers: whether the stream has started (the first frame is special).

So the output of a stream equals the output of encoding the whole video at once (up to float rounding, max abs
difference ~1e-6), while memory depends on the chunk size only, never on the video length.

Input chunks may have any length: frames are buffered and fed to the network in aligned pieces (first piece
``1 + k*ct`` frames, then multiples of ``ct``), at most ``chunk_frames`` at a time. A tail of fewer than ``ct``
frames is padded by repeating the last frame (``pad_tail=True``), so the decoded stream can be up to ``ct - 1``
frames longer than the input: trim it to the input length.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Iterator

import torch

from worldsmith.tokenizer.tensors import TokenizerInputError

if TYPE_CHECKING:
    from worldsmith.tokenizer.model import CausalVideoTokenizer


def _aligned(available: int, started: bool, ct: int, limit: int) -> int:
    """How many buffered frames to encode now: 1 + k*ct for the first piece, k*ct later, at most ``limit``."""
    if not started:
        return 1 + (min(available, limit) - 1) // ct * ct if available >= 1 else 0
    return min(available, limit) // ct * ct


@torch.no_grad()
def encode_stream(
    model: "CausalVideoTokenizer",
    chunks: Iterable[torch.Tensor],
    chunk_frames: int | None = None,
    pad_tail: bool = True,
) -> Iterator[torch.Tensor]:
    """Yield latents (B, C, t', H', W') or tokens (B, t', H', W') for video chunks (B, 3, t, H, W) of any length."""
    ct = model.cfg.temporal_compression
    limit = max(chunk_frames or 4 * ct, ct) + 1  # frames per network call (the first piece may hold 1 + k*ct)
    state: dict = {}
    pending: list[torch.Tensor] = []  # buffered frames, (B, 3, t, H, W) each
    count, started, frame_shape = 0, False, None
    for chunk in chunks:
        if isinstance(chunk, torch.Tensor) and chunk.ndim == 5 and chunk.shape[2] == 0:
            continue
        model.check_video(chunk[:, :, :1] if isinstance(chunk, torch.Tensor) and chunk.ndim == 5 else chunk)
        shape = (chunk.shape[0], *chunk.shape[3:])  # (B, H, W)
        if frame_shape is not None and shape != frame_shape:
            raise TokenizerInputError(
                f"a stream chunk has batch x height x width {shape}, but the stream started with {frame_shape}; "
                f"every chunk of one stream must share them."
            )
        frame_shape = shape
        pending.append(chunk)
        count += chunk.shape[2]
        while (take := _aligned(count, started, ct, limit)) > 0:
            video = torch.cat(pending, dim=2) if len(pending) > 1 else pending[0]
            yield model.encode_chunk(video[:, :, :take], state)
            started = True
            rest = video[:, :, take:]
            pending, count = ([rest] if rest.shape[2] else []), rest.shape[2]
    if count:
        if not pad_tail:
            raise TokenizerInputError(
                f"the stream ended with {count} frames that do not fill a latent frame of {ct}; pass pad_tail=True "
                f"or end the video at 1 + k*{ct} frames."
            )
        video = torch.cat(pending, dim=2)
        pad = video[:, :, -1:].expand(-1, -1, ct - count, -1, -1)
        yield model.encode_chunk(torch.cat([video, pad], dim=2), state)


@torch.no_grad()
def decode_stream(
    model: "CausalVideoTokenizer", chunks: Iterable[torch.Tensor], chunk_latents: int = 4
) -> Iterator[torch.Tensor]:
    """Yield video chunks (B, 3, t, H, W) for latent (B, C, t', H', W') or token (B, t', H', W') chunks."""
    state: dict = {}
    time_dim = 1 if model.fsq is not None else 2
    for chunk in chunks:
        model.check_latents(chunk)
        for piece in chunk.split(max(chunk_latents, 1), dim=time_dim):
            yield model.decode_chunk(piece, state)
