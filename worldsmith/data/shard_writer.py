"""``ShardWriter``: write clips into atomic, size-bounded WebDataset tar shards plus a Parquet manifest.

The sample format is described in ``worldsmith.data.shards`` (the readers); ``encode_clip`` produces it.

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
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tarfile
import time
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
from worldsmith.data.shards import FORMAT
from worldsmith.errors import ConfigError, DataError
from worldsmith.io import video

logger = logging.getLogger(__name__)

_SHARD_RE = re.compile(r"^(?P<prefix>[A-Za-z0-9_\-]+)-(?P<index>\d{6,})\.tar$")
_STALE_RE = re.compile(r"^\..+\.(tar|parquet)\..*\.tmp$")  # temp names made by atomic_open


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


def encode_clip(clip: Clip, *, crf: int = 18, mp4: bytes | None = None) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """The header and the ``(member name, bytes)`` list of ``clip``, in shard order (JSON first). ``mp4``: the main
    view already encoded as H.264 mp4 bytes that decode to exactly ``clip.frames`` (the caller checks): stored as
    they are instead of encoding the frames again."""
    header = clip_header(clip)
    try:
        text = json.dumps(header, default=_json_default, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise DataError(f"clip {clip.key}: meta is not JSON-serialisable ({e}); store plain values.") from e
    k = clip.key
    members = [(f"{k}.json", text.encode()), (f"{k}.mp4", video.encode_mp4_bytes(clip.frames, clip.fps, crf=crf) if mp4 is None else mp4)]
    members += [(f"{k}.{name}.npy", _npy_bytes(arr)) for name, arr in sorted(clip.arrays.items())]
    members += [(f"{k}.view{i}.mp4", video.encode_mp4_bytes(v, clip.fps, crf=crf)) for i, v in enumerate(clip.views, 1)]
    return json.loads(text), members



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

    def write(self, clip: Clip, *, mp4: bytes | None = None) -> None:
        """Append ``clip`` to the open shard, starting a new shard when the current one is full (``mp4``: its main
        view already encoded, see ``encode_clip``)."""
        if self._lock is None:
            raise DataError("this ShardWriter is closed; open a new one to write more clips.")
        if not isinstance(clip, Clip):
            raise DataError(f"ShardWriter.write expects a Clip, got {type(clip).__name__}.")
        if clip.key in self._keys:
            raise DataError(f"clip key {clip.key!r} is already in {self.out_dir}; keys must be unique per directory.")
        header, members = encode_clip(clip, crf=self.crf, mp4=mp4)
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
