"""Token sets: clip shards -> DV token grids on disk, and training batches of token windows with their captions.

A token set is a folder::

    tokens.json                    index, written last: tokenizer, vocabulary, grid, frame size, files, clips
    tokens-000000.safetensors      one file per source shard: one int32 tensor (T', H', W') per clip key;
                                   metadata: source shard, captions and fps (JSON)

Tokenizing is resumable (run it again: files already written for the same source shard are kept) and every file
is written atomically. Whole clips are encoded through the tokenizer's streaming encoder (bounded memory), after
cutting them to 1 + k * temporal_compression frames. The training set is held in memory (int32 tokens: a million
clips of 11 x 8 x 8 tokens is 2.8 GB).

Batches (``TokenBatches``) are random windows of ``frames`` latent frames, a fresh permutation and fresh window
starts per epoch drawn from (seed, epoch) only, split across DDP ranks; a ``caption_dropout`` fraction of samples
(and every sample with an empty caption) is unconditioned: its text mask is all False.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from tqdm import tqdm

from worldsmith.atomic import atomic_write_text
from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_shard
from worldsmith.errors import ConfigError, DataError
from worldsmith.io.frames import fit_frames
from worldsmith.io.video import to_tensor
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.weights import load_tensors, read_metadata, save_tensors

INDEX = "tokens.json"
FORMAT = 1


@dataclass
class ARDataConfig:
    tokens: str = ""  # token set folder (``tokenize`` writes it); empty: <run dir>/tokens
    shards: str = ""  # clip shards to tokenize into the token set first (needs ``tokenizer``); empty: use tokens as is
    size: int = 64  # frames are resized (short side) and centre-cropped to size x size before tokenizing
    frames: int = 0  # latent frames per training window; 0: model.max_frames
    caption_dropout: float = 0.2  # fraction of samples trained unconditioned (no text); 1: never load the text encoder
    actions: bool = False  # condition on the clips' actions (the token set must carry them)
    # FSQ hysteresis of the tokens in grid steps (CausalVideoTokenizer.hysteresis): a digit keeps its previous
    # frame's value until the encoder moves 0.5 + this past it; 0: plain rounding. Generation encodes the same way.
    hysteresis: float = 0.0

    def __post_init__(self) -> None:
        if self.size < 8 or self.frames < 0 or not 0.0 <= self.caption_dropout <= 1.0:
            raise ConfigError("data.size >= 8, data.frames >= 0 and data.caption_dropout in [0, 1] are required.")
        if not 0.0 <= self.hysteresis < 0.5:
            raise ConfigError(f"data.hysteresis must be in [0, 0.5) grid steps, got {self.hysteresis}.")


SETTING_DEFAULTS = {"hysteresis": 0.0}  # settings that token sets record only when not the default (older sets lack them)


def _tokenizer_settings(tokenizer, tokenizer_run: str | Path, size: int, hysteresis: float = 0.0) -> dict[str, Any]:
    cfg = tokenizer.cfg
    if tokenizer.fsq is None:
        raise ConfigError(f"the tokenizer in {tokenizer_run} is continuous ({cfg.name}); the autoregressive model "
                          f"needs a discrete one (dv4x8x8, dv8x8x8, dv8x16x16, di8x8 ...).")  # fmt: skip
    if size % cfg.spatial_compression:
        raise ConfigError(f"data.size {size} must be a multiple of the {cfg.name} tokenizer's spatial compression "
                          f"{cfg.spatial_compression}.")  # fmt: skip
    grid = size // cfg.spatial_compression
    settings = {"format": FORMAT, "tokenizer": str(Path(tokenizer_run).resolve()), "tokenizer_name": cfg.name,
                "vocab_size": tokenizer.fsq.codebook_size, "grid": [grid, grid], "size": size,
                "temporal_compression": cfg.temporal_compression}  # fmt: skip
    return settings | ({"hysteresis": hysteresis} if hysteresis else {})


@torch.no_grad()
def tokenize_shards(tokenizer_run: str | Path, shards: str, out: str | Path, *, size: int = 64,
                    device: str = "cpu", progress: bool = True, hysteresis: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """Encode every clip of ``shards`` with the DV tokenizer of ``tokenizer_run`` into the token set ``out``
    (``hysteresis``: ARDataConfig.hysteresis)."""
    tokenizer = CausalVideoTokenizer.from_pretrained(tokenizer_run, device=device)
    tokenizer.hysteresis = hysteresis
    settings = _tokenizer_settings(tokenizer, tokenizer_run, size, hysteresis)
    out = Path(out)
    index_path = out / INDEX
    if index_path.is_file():
        old = json.loads(index_path.read_text())
        new, before = SETTING_DEFAULTS | settings, SETTING_DEFAULTS | old
        differ = [k for k in new if k != "tokenizer" and before.get(k) != new[k]]
        if differ:
            raise ConfigError(f"{out} holds tokens made with other settings ({', '.join(differ)}); use another "
                              f"folder or delete it.")  # fmt: skip
    ct = tokenizer.cfg.temporal_compression
    files, clips = [], 0
    for i, shard in enumerate(tqdm(list_shards(shards), desc="tokenizing shards", disable=not progress)):
        dest = out / f"tokens-{i:06d}.safetensors"
        files.append(dest.name)
        if dest.is_file() and _read_meta(dest).get("source") == str(shard):
            clips += len(_read_meta(dest)["captions"])
            continue
        tensors, captions, fps = {}, {}, {}
        for clip in iter_shard(shard):
            frames = fit_frames(clip.frames, size, square=True)
            frames = frames[: 1 + (len(frames) - 1) // ct * ct]
            video = to_tensor(frames)[None].to(device)  # (1, 3, T, S, S)
            pieces = list(tokenizer.encode_stream([video], chunk_frames=4 * ct, pad_tail=False))
            tensors[clip.key] = torch.cat(pieces, dim=1)[0].to(torch.int32).cpu()  # (T', H', W')
            if "actions" in clip.arrays:  # the transitions between the frames kept (clip keys hold no dots)
                tensors[f"{clip.key}.actions"] = torch.from_numpy(clip.arrays["actions"][: len(frames) - 1]).float()
            captions[clip.key], fps[clip.key] = clip.caption, clip.fps
        meta = {"source": str(shard), "captions": json.dumps(captions), "fps": json.dumps(fps)}
        save_tensors(tensors, dest, metadata=meta)
        clips += len(captions)
    if not files:
        raise DataError(f"no shards found in {shards}.")
    index = {**settings, "source": str(shards), "files": files, "clips": clips}
    atomic_write_text(index_path, json.dumps(index, indent=2))
    return index


def _read_meta(path: Path) -> dict[str, Any]:
    meta = read_metadata(path)
    meta["captions"] = json.loads(meta.get("captions", "{}"))
    meta["fps"] = json.loads(meta.get("fps", "{}"))
    return meta


@dataclass
class TokenClip:
    key: str
    tokens: torch.Tensor  # int32 (T', H', W')
    caption: str
    fps: float
    actions: torch.Tensor | None = None  # float32 (T - 1, A): one per video transition, when the clip had them


def read_index(path: str | Path) -> dict[str, Any]:
    index_path = Path(path) / INDEX
    if not index_path.is_file():
        raise DataError(f"{path} is not a token set (no {INDEX}); tokenize clip shards into it first "
                        f"(`worldsmith autoregressive tokenize` or --data when training).")  # fmt: skip
    return json.loads(index_path.read_text())


def load_token_set(path: str | Path) -> tuple[dict[str, Any], list[TokenClip]]:
    """(index, clips) of a token set folder."""
    index, clips = read_index(path), []
    for name in index["files"]:
        file = Path(path) / name
        meta, tensors = _read_meta(file), load_tensors(file)
        clips += [TokenClip(k, tensors[k], meta["captions"].get(k, ""), float(meta["fps"].get(k, 10.0)),
                            tensors.get(f"{k}.actions"))
                  for k in sorted(tensors) if not k.endswith(".actions")]  # fmt: skip
    if not clips:
        raise DataError(f"the token set {path} holds no clips.")
    return index, clips


class TokenBatches:
    """``data(epoch)`` for the Trainer: batches {"tokens" (B, frames, H', W') int64, "text", "text_mask"}."""

    def __init__(self, clips: list[TokenClip], frames: int, batch_size: int, *, seed: int = 0,
                 caption_dropout: float = 0.0, text_encoder=None, rank: int = 0, world: int = 1,
                 action_chunk: int = 0) -> None:  # fmt: skip
        self.clips = [c for c in clips if c.tokens.shape[0] >= frames]
        if not self.clips:
            longest = max(c.tokens.shape[0] for c in clips)
            raise DataError(f"no clip has {frames} latent frames (the longest has {longest}); lower data.frames or "
                            f"use longer clips.")  # fmt: skip
        self.frames, self.batch_size, self.seed = frames, batch_size, seed
        self.caption_dropout, self.text_encoder = caption_dropout, text_encoder
        self.rank, self.world = rank, world  # this process's share of every batch (worldsmith.train.runtime)
        self.action_chunk = action_chunk  # > 0: batches carry the window's actions, this many per latent frame
        if action_chunk and any(c.actions is None for c in self.clips):
            raise DataError("data.actions is on but some clips of the token set carry no actions; tokenize clips "
                            "with an actions array (e.g. `worldsmith sim arm`).")  # fmt: skip

    def __call__(self, epoch: int) -> Iterator[dict[str, Any]]:
        rank, world = self.rank, self.world
        n = len(self.clips)
        batches = n // (world * self.batch_size)
        if batches == 0:
            raise DataError(f"{n} clips cannot fill one batch of {self.batch_size} on each of {world} processes; "
                            f"lower train.batch_size or add clips.")  # fmt: skip
        rng = np.random.default_rng([self.seed, epoch])  # the same draws on every rank
        order = rng.permutation(n)
        starts = [int(rng.integers(0, self.clips[i].tokens.shape[0] - self.frames + 1)) for i in order]
        dropped = rng.random(n) < self.caption_dropout
        mine = range(rank, batches * world * self.batch_size, world)  # every world-th sample of the epoch
        for b in range(batches):
            picks = list(mine[b * self.batch_size : (b + 1) * self.batch_size])
            clips = [self.clips[order[p]] for p in picks]
            tokens = torch.stack([c.tokens[starts[p] : starts[p] + self.frames] for c, p in zip(clips, picks)])
            batch: dict[str, Any] = {"tokens": tokens.long()}  # (B, frames, H', W')
            if self.action_chunk:  # the transitions leading into latent frames 1 .. frames - 1 of each window
                ct = self.action_chunk
                batch["actions"] = torch.stack([c.actions[starts[p] * ct : (starts[p] + self.frames - 1) * ct]
                                                for c, p in zip(clips, picks)])  # fmt: skip
            if self.text_encoder is not None:
                emb = self.text_encoder.encode([c.caption for c in clips])
                keep = torch.tensor([bool(c.caption) and not dropped[p] for c, p in zip(clips, picks)])
                batch["text"], batch["text_mask"] = emb.tokens, emb.mask & keep[:, None]
            yield batch
