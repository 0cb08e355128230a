"""WebDataset tar shards of clips: the sample format, the atomic writer and the readers.

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

Writing. ``ShardWriter`` fills ``{prefix}-000000.tar``, ``{prefix}-000001.tar``... (a shard is closed when it
holds ``max_clips_per_shard`` clips or the next clip would take it past ``max_bytes``). A shard is written to a
hidden temporary file and renamed into place only when complete, and ``manifest.parquet`` is rewritten
atomically after each shard is committed, so at any moment the directory holds complete shards, a manifest that
lists exactly their clips, and possibly hidden ``.tmp`` files of a killed writer.

Resuming. Opening a writer on a directory that already holds shards removes stale temporary files, adds to the
manifest any complete shard it does not list yet (indexed from the JSON headers), continues numbering after the
highest existing index of its prefix and appends to the manifest. Keys are unique per directory: writing a key
that any shard of the directory already holds raises ``DataError`` (a resumed job should skip the keys listed
in the manifest). One writer per directory at a time (enforced with a lock file where the OS supports it).

Leaving a ``with ShardWriter(...)`` block on an exception commits the clips written so far, unless the exception
interrupted a ``write`` half way, in which case the open shard is discarded (its clips are not in the manifest).

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
import re
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from worldsmith.atomic import atomic_open
from worldsmith.data.clip import KEY_RE, Clip
from worldsmith.data.manifest import (
    MANIFEST_NAME,
    index_shard,
    lock_directory,
    manifest_row,
    read_manifest_rows,
    unique_keys,
    write_manifest,
)  # fmt: skip
from worldsmith.errors import ConfigError, DataError, VideoError
from worldsmith.io import video

logger = logging.getLogger(__name__)

FORMAT = "worldsmith.clip/1"
_SHARD_RE = re.compile(r"^(?P<prefix>[A-Za-z0-9_\-]+)-(?P<index>\d{6,})\.tar$")
_STALE_RE = re.compile(r"^\..+\.(tar|parquet)\..*\.tmp$")  # temp names made by atomic_open

Sample = dict[str, Any]  # "__key__", "__url__", "__header__" (parsed JSON), "__size__", then "<ext>": bytes


# -- sample format ---------------------------------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def clip_header(clip: Clip) -> dict[str, Any]:
    """The ``key.json`` header of ``clip``."""
    arrays = {}
    for name, arr in sorted(clip.arrays.items()):
        if arr.dtype.hasobject:
            raise DataError(f"clip {clip.key}: array {name!r} has dtype object; store numeric arrays only.")
        per = "transition" if arr.shape[0] == clip.num_frames - 1 else "frame"  # the rule of worldsmith.data.clip
        arrays[name] = {"shape": list(arr.shape), "dtype": arr.dtype.name, "per": per}
    return {
        "format": FORMAT, "key": clip.key, "caption": clip.caption, "fps": float(clip.fps),
        "num_frames": clip.num_frames, "height": clip.height, "width": clip.width, "meta": clip.meta,
        "arrays": arrays, "num_views": 1 + len(clip.views),
        "views": [{"height": int(v.shape[1]), "width": int(v.shape[2])} for v in clip.views],
    }  # fmt: skip


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def encode_clip(clip: Clip, *, crf: int = 18) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """The header and the ``(member name, bytes)`` list of ``clip``, in shard order (JSON first)."""
    header = clip_header(clip)
    try:
        text = json.dumps(header, default=_json_default, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise DataError(f"clip {clip.key}: meta is not JSON-serialisable ({e}); store plain values.") from e
    k = clip.key
    members = [(f"{k}.json", text.encode()), (f"{k}.mp4", video.encode_mp4_bytes(clip.frames, clip.fps, crf=crf))]
    members += [(f"{k}.{name}.npy", _npy_bytes(arr)) for name, arr in sorted(clip.arrays.items())]
    members += [(f"{k}.view{i}.mp4", video.encode_mp4_bytes(v, clip.fps, crf=crf)) for i, v in enumerate(clip.views, 1)]
    return json.loads(text), members


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


# -- writing ---------------------------------------------------------------------------------------------------
class _OpenShard:
    """A shard being written: a tar inside an ``atomic_open`` temp file, renamed into place by ``commit``."""

    def __init__(self, path: Path) -> None:
        self.path, self.rows, self.bytes = path, [], 0
        self._file_cm = atomic_open(path, "wb")
        self._tar = tarfile.open(fileobj=self._file_cm.__enter__(), mode="w", format=tarfile.PAX_FORMAT)

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
        self._tar.addfile(info, io.BytesIO(data))

    def commit(self) -> None:
        self._tar.close()  # end-of-archive blocks; the file itself is fsynced and renamed by atomic_open
        self._file_cm.__exit__(None, None, None)

    def discard(self) -> None:
        self._file_cm.__exit__(DataError, DataError("discarded"), None)  # atomic_open removes the temp file


class ShardWriter:
    """Write clips into atomic, size-bounded tar shards plus a Parquet manifest (see the module docstring)."""

    def __init__(
        self,
        out_dir: str | os.PathLike,
        *,
        prefix: str = "part",
        max_clips_per_shard: int = 1000,
        max_bytes: int = 1 << 30,
        crf: int = 18,
    ) -> None:
        if not KEY_RE.match(prefix):
            raise ConfigError(f"shard prefix {prefix!r} is invalid: use letters, digits, '_' and '-' only.")
        if max_clips_per_shard < 1 or max_bytes < 1:
            raise ConfigError("max_clips_per_shard and max_bytes must be positive.")
        self.out_dir, self.prefix, self.crf = Path(out_dir), prefix, crf
        self.max_clips_per_shard, self.max_bytes = max_clips_per_shard, max_bytes
        self.shards: list[Path] = []  # shards committed by this writer
        self._shard: _OpenShard | None = None
        self._in_write = False
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._lock: IO | None = lock_directory(self.out_dir)
        try:
            self._resume()
        except BaseException:
            self._release()
            raise

    def _resume(self) -> None:
        for stale in self.out_dir.iterdir():
            if _STALE_RE.match(stale.name):
                logger.info("removing %s left by an interrupted writer", stale)
                stale.unlink()
        manifest = self.out_dir / MANIFEST_NAME
        self._rows = read_manifest_rows(manifest) if manifest.exists() else []
        on_disk = sorted(p.name for p in self.out_dir.glob("*.tar") if not p.name.startswith("."))
        listed = {r["shard"] for r in self._rows}
        missing = sorted(listed - set(on_disk))
        if missing:
            raise DataError(f"{manifest} lists shards missing from the directory ({missing[:3]}); restore them, "
                            f"or call rebuild_manifest on {self.out_dir}.")  # fmt: skip
        unlisted = [name for name in on_disk if name not in listed]
        for name in unlisted:
            logger.info("adding %s, missing from the manifest, to the manifest", name)
            self._rows += index_shard(self.out_dir / name, self.out_dir)
        self._keys = unique_keys(self._rows, self.out_dir)
        if unlisted:
            write_manifest(manifest, self._rows)
        indices = [int(m["index"]) for m in map(_SHARD_RE.match, on_disk) if m and m["prefix"] == self.prefix]
        self._next_index = max(indices, default=-1) + 1

    def write(self, clip: Clip) -> None:
        """Append ``clip`` to the open shard, starting a new shard when the current one is full."""
        if self._lock is None:
            raise DataError("this ShardWriter is closed; open a new one to write more clips.")
        if not isinstance(clip, Clip):
            raise DataError(f"ShardWriter.write expects a Clip, got {type(clip).__name__}.")
        if clip.key in self._keys:
            raise DataError(f"clip key {clip.key!r} is already in {self.out_dir}; keys must be unique per directory.")
        header, members = encode_clip(clip, crf=self.crf)
        size = sum(len(data) for _, data in members)
        tar_size = sum(512 + -(-len(data) // 512) * 512 for _, data in members)
        shard = self._shard
        full = shard is not None and len(shard.rows) >= self.max_clips_per_shard
        if full or (shard is not None and shard.bytes + tar_size > self.max_bytes):
            self._commit()  # a clip larger than max_bytes still gets a shard of its own
        if self._shard is None:
            name = f"{self.prefix}-{self._next_index:06d}.tar"
            self._shard, self._next_index = _OpenShard(self.out_dir / name), self._next_index + 1
        self._in_write = True
        for name, data in members:
            self._shard.add(name, data)
        self._in_write = False
        self._shard.bytes += tar_size
        self._shard.rows.append(manifest_row(header, self._shard.path.name, size))
        self._keys.add(clip.key)

    def _commit(self) -> None:
        shard, self._shard = self._shard, None
        if shard is None:
            return
        if not shard.rows:
            shard.discard()
            return
        shard.commit()
        self.shards.append(shard.path)
        self._rows += shard.rows
        write_manifest(self.out_dir / MANIFEST_NAME, self._rows)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def close(self) -> None:
        """Commit the open shard and the manifest; a no-op when already closed."""
        if self._lock is None:
            return
        try:
            self._commit()
            if not (self.out_dir / MANIFEST_NAME).exists():
                write_manifest(self.out_dir / MANIFEST_NAME, self._rows)
        finally:
            self._release()

    def abort(self) -> None:
        """Discard the open shard (its clips never reach the manifest) and release the directory."""
        if self._shard is not None:
            self._shard.discard()
            self._shard = None
        self._release()

    @property
    def num_clips(self) -> int:
        """Clips in the directory's manifest plus those in the open shard."""
        return len(self._rows) + (len(self._shard.rows) if self._shard else 0)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self._in_write:
            self.abort()
        else:
            self.close()
