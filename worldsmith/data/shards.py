"""WebDataset tar shards of clips: the sample format and the readers (``shard_writer.ShardWriter`` writes them).

Sample format. A clip ``key`` is a run of consecutive tar members named ``key.<ext>`` (WebDataset convention: the
key is the name up to its first dot, so keys have no dots):

  ``key.json``          header: ``format`` (``worldsmith.clip/1``), ``key``, ``caption``, ``fps``, ``num_frames``,
                        ``height``, ``width``, ``meta``, ``arrays`` (``{name: {shape, dtype, per}}`` where ``per``
                        is ``"frame"`` or ``"transition"``, see ``worldsmith.data.clip``), ``num_views`` (all views,
                        the main view included) and ``views`` (``[{height, width}]`` of the extra views);
  ``key.mp4``           the main view (view 0), H.264;
  ``key.<name>.npy``    one per array, ``np.save`` format (read with ``allow_pickle=False``);
  ``key.view<i>.mp4``   extra synchronized view ``i`` = 1 .. num_views - 1.

The JSON comes first so a reader knows what to expect before it meets the (large) videos. Other members are
ignored on read, so tools may add their own (``key.txt``...).

Reading. ``iter_samples`` is the lazy reader (raw member bytes; only the members asked for are read),
``decode_clip`` turns a sample into a ``Clip`` and ``iter_shard`` does both. A sample lacking its JSON or mp4,
with an unreadable header or missing an announced member is bad; a tar that cannot be read further is corrupt.
With ``strict=True`` both raise ``DataError``; otherwise they are logged, counted in ``ReadStats`` and skipped.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldsmith.data.clip import Clip
from worldsmith.errors import DataError, VideoError
from worldsmith.io import video

logger = logging.getLogger(__name__)

FORMAT = "worldsmith.clip/1"

Sample = dict[str, Any]  # "__key__", "__url__", "__header__" (parsed JSON), "__size__", then "<ext>": bytes


# -- sample format ---------------------------------------------------------------------------------------------
def parse_header(data: bytes, where: str) -> dict[str, Any]:
    """Parse and check a ``key.json`` header; ``where`` names the sample in error messages."""
    try:
        header = json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{where}: the JSON header is unreadable ({e}).") from e
    if not isinstance(header, dict) or not str(header.get("format", "")).startswith("worldsmith.clip/"):
        raise DataError(f"{where}: the JSON header is not a worldsmith clip header.")
    try:
        ok = (
            header["fps"] > 0
            and header["num_frames"] >= 1
            and header["height"] >= 1
            and header["width"] >= 1
            and isinstance(header["arrays"], dict)
            and isinstance(header["key"], str)
            and len(header.get("views", [])) == header["num_views"] - 1
            and all(isinstance(a["shape"], list) and len(a["shape"]) >= 1 for a in header["arrays"].values())
        )
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise DataError(f"{where}: the JSON header lacks or has invalid key/fps/num_frames/size/arrays/views.")
    header.setdefault("caption", "")
    header.setdefault("meta", {})
    header.setdefault("views", [])
    return header


def load_array(sample: Sample, name: str) -> np.ndarray:
    """Array ``name`` of a raw sample, checked against the header (never unpickles)."""
    key, spec = sample["__key__"], sample["__header__"]["arrays"].get(name)
    data = sample.get(f"{name}.npy")
    if spec is None or data is None:
        have = sorted(sample["__header__"]["arrays"])
        raise DataError(f"sample {key} in {sample['__url__']} has no array {name!r} (it has {have}).")
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise DataError(f"sample {key}: {name}.npy is not a readable .npy array ({e}).") from e
    if list(arr.shape) != spec["shape"]:
        raise DataError(f"sample {key}: {name}.npy has shape {list(arr.shape)}, the header says {spec['shape']}.")
    return arr


def decode_video_member(
    sample: Sample, ext: str, height: int, width: int, *, start: int = 0, end: int | None = None, size: Any = None
) -> np.ndarray:
    """Frames ``[start, end)`` of member ``ext`` (``mp4`` or ``view<i>.mp4``) as uint8 (T, H, W, 3).

    ``size`` is passed to ``video.decode``; without it, the row / column the encoder pads odd sizes with is cut.
    """
    key, total = sample["__key__"], sample["__header__"]["num_frames"]
    if ext not in sample:
        raise DataError(f"sample {key} in {sample['__url__']} has no {ext} member.")
    try:
        frames = video.decode(sample[ext], start=start, end=end, size=size)
    except VideoError as e:
        raise DataError(f"sample {key} in {sample['__url__']}: {ext} does not decode ({e}).") from e
    expected = min(total if end is None else end, total) - start
    if frames.shape[0] < expected:
        raise DataError(f"sample {key} in {sample['__url__']}: {ext} decodes to {start + frames.shape[0]} frames, "
                        f"the header says {total}.")  # fmt: skip
    return frames[:expected] if size is not None else frames[:expected, :height, :width]


def decode_clip(sample: Sample, *, views: bool = True, arrays: list[str] | None = None) -> Clip:
    """Fully decode a raw sample (from ``iter_samples``) into a ``Clip``."""
    h = sample["__header__"]
    frames = decode_video_member(sample, "mp4", h["height"], h["width"])
    names = sorted(h["arrays"]) if arrays is None else arrays
    extra = []
    if views:
        extra = [decode_video_member(sample, f"view{i}.mp4", v["height"], v["width"])
                 for i, v in enumerate(h["views"], 1)]  # fmt: skip
    return Clip(key=h["key"], frames=frames, fps=h["fps"], caption=h["caption"], meta=h["meta"],
                arrays={n: load_array(sample, n) for n in names}, views=extra)  # fmt: skip


# -- reading ---------------------------------------------------------------------------------------------------
@dataclass
class ReadStats:
    samples: int = 0  # good samples met (also those a ``keep`` filter passed over)
    skipped: int = 0  # bad samples and unreadable shard tails skipped (non-strict reads)

    def report(self, message: str, strict: bool) -> None:
        if strict:
            raise DataError(message)
        self.skipped += 1
        logger.warning("%s; skipped", message)


@dataclass
class _Group:
    key: str
    keep: bool
    duplicate: bool
    exts: list[str]
    data: dict[str, bytes]
    size: int = 0


def _split_name(name: str) -> tuple[str, str]:
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext


def _check_group(g: _Group, url: str) -> tuple[Sample | None, str]:
    """The sample of a complete member group, or ``(None, why it is bad)``."""
    where = f"sample {g.key} in {url}"
    if g.duplicate or len(set(g.exts)) != len(g.exts):
        return None, f"{where} repeats a key or member name"
    if "" in g.exts or "json" not in g.exts or "mp4" not in g.exts:
        return None, f"{where} lacks its .json or .mp4 member (members: {sorted(g.exts)})"
    try:
        header = parse_header(g.data["json"], where)
    except DataError as e:
        return None, str(e).rstrip(".")
    wanted = [f"{n}.npy" for n in header["arrays"]] + [f"view{i}.mp4" for i in range(1, header["num_views"])]
    lost = [e for e in wanted if e not in g.exts]
    if header["key"] != g.key.rpartition("/")[2] or lost:
        return None, f"{where} does not match its header (key {header['key']!r}, missing members {lost})"
    return {"__key__": header["key"], "__url__": url, "__header__": header, "__size__": g.size, **g.data}, ""


def _has_end_marker(tar: tarfile.TarFile) -> bool:
    """Whether the archive ends with the two zero blocks every tar writer adds on close."""
    tar.fileobj.seek(tar.offset)  # type: ignore[union-attr]
    block = tar.fileobj.read(2 * tarfile.BLOCKSIZE)  # type: ignore[union-attr]
    return len(block) == 2 * tarfile.BLOCKSIZE and not any(block)


def iter_samples(
    path: str | os.PathLike,
    *,
    strict: bool = False,
    read: Callable[[str], bool] | None = None,
    keep: Callable[[int], bool] | None = None,
    stats: ReadStats | None = None,
) -> Iterator[Sample]:
    """Yield the raw samples of one shard, lazily.

    ``read(ext)`` says which members to load (default all; the JSON is always read). ``keep(i)`` is asked, before
    sample ``i`` (counting good samples of this shard from 0) is read, whether to yield it; samples passed over
    are still checked, so every reader of a shard counts the same samples.
    """
    path, stats = Path(path), (ReadStats() if stats is None else stats)
    if not path.is_file():
        raise DataError(f"shard {path} does not exist.")
    url, index, group, seen = str(path), 0, None, set()

    def finish(g: _Group) -> Sample | None:
        nonlocal index
        sample, why = _check_group(g, url)
        if sample is None:
            if g.keep:
                stats.report(why, strict)
            return None
        index, stats.samples = index + 1, stats.samples + 1
        return sample if g.keep else None

    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, ext = _split_name(member.name)
                if group is None or key != group.key:
                    if group is not None and (sample := finish(group)) is not None:
                        yield sample
                    group = _Group(key, keep is None or keep(index), key in seen, [], {})
                    seen.add(key)
                group.exts.append(ext)
                group.size += member.size
                if ext == "json" or (group.keep and (read is None or read(ext))):
                    group.data[ext] = tar.extractfile(member).read()  # type: ignore[union-attr]
            if not _has_end_marker(tar):  # tarfile stops silently at a header cut short
                raise tarfile.ReadError("it ends without the end-of-archive blocks: truncated")
            if group is not None and (sample := finish(group)) is not None:
                yield sample
    except (tarfile.TarError, OSError, EOFError) as e:
        stats.report(f"shard {path} is corrupt after {index} samples ({e}); re-create it", strict)


def iter_shard(path: str | os.PathLike, *, strict: bool = True, stats: ReadStats | None = None) -> Iterator[Clip]:
    """Yield every clip of a shard, fully decoded (all arrays and views)."""
    stats = ReadStats() if stats is None else stats
    for sample in iter_samples(path, strict=strict, stats=stats):
        try:
            clip = decode_clip(sample)
        except DataError as e:
            stats.report(str(e).rstrip("."), strict)
            continue
        yield clip
