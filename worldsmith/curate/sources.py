"""Resolving the curation INPUT into the list of source videos, and listing the files that cannot be sources.

INPUT is one of:

* a folder: every file under it, recursively (hidden files and folders skipped), sorted by path;
* a glob (``raw/**/*.mp4``): the files it matches;
* a list file (``.txt``): one path per line, ``#`` starts a comment, relative paths are relative to the list file;
* a worldsmith shard directory (a folder holding ``manifest.parquet`` or ``*.tar`` shards, e.g. the output of
  ``worldsmith sim``), a ``manifest.parquet`` or a single ``.tar`` shard: every clip in the shards is a source,
  and its caption and arrays are carried over to the clips cut from it;
* the output folder of an earlier ``worldsmith curate`` (its bucketed shards: re-curate with other settings);
* a single video file.

A source has a stable ``id`` (the absolute path, or ``<shard path>#<clip key>`` for a clip inside a shard) that the
journal and the clip keys use, so a rerun finds the same work. Problems found while resolving (a listed path that
does not exist, a dangling symbolic link, a pipe or device, a zero-length file) come back as ``BadFile``s with a
one-sentence reason, so every input that cannot be read is counted and listed in the report; files that only fail
when decoded are found by the split stage. Nothing here writes anywhere: the input is never modified.
"""

from __future__ import annotations

import glob as globlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import ReadStats, iter_samples
from worldsmith.errors import DataError

LIST_SUFFIXES = (".txt", ".list")


@dataclass
class Source:
    id: str  # stable identity: absolute path, or "<shard path>#<clip key>"
    path: str = ""  # the video file to split ("" for a clip inside a shard: extracted by the split task)
    shard: str = ""  # shard input: the tar holding the clip
    key: str = ""  # shard input: the clip's key in that tar
    caption: str = ""  # shard input: the clip's caption (kept on every clip cut from it)
    meta: dict[str, Any] = field(default_factory=dict)  # shard input: the clip's meta

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Source":
        return cls(**d)


@dataclass
class BadFile:
    path: str
    reason: str  # one sentence


def _has_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _listed(path: Path) -> bool:
    """Whether a folder walk or a glob lists ``path`` as an input: anything but a directory, so that dangling
    symbolic links and special files are reported as bad files instead of vanishing."""
    return path.is_symlink() or not path.is_dir()


def _file_sources(paths: list[Path]) -> tuple[list[Source], list[BadFile]]:
    """Sources for plain files; missing, dangling, special and zero-length files become bad files right away."""
    sources, bad = [], []
    for p in paths:
        ap = os.path.abspath(p)
        if p.is_symlink() and not p.exists():
            why = f"it is a symbolic link to {os.readlink(p)}, which does not exist (or loops); fix or remove the link."
            bad.append(BadFile(ap, why))
        elif not p.exists():
            bad.append(BadFile(ap, "the file does not exist."))
        elif p.is_dir():
            bad.append(BadFile(ap, "it is a directory, not a video file."))
        elif not p.is_file():
            bad.append(BadFile(ap, "it is not a regular file (a pipe, socket or device); pass video files."))
        elif p.stat().st_size == 0:
            bad.append(BadFile(ap, "the file is empty (0 bytes)."))
        else:
            sources.append(Source(id=ap, path=ap))
    return sources, bad


def _shard_sources(shards: list[Path]) -> tuple[list[Source], list[BadFile]]:
    """One source per clip of the shards (headers only are read); unreadable samples become bad files."""
    sources, bad = [], []
    for shard in shards:
        stats = ReadStats()
        ap = os.path.abspath(shard)
        for sample in iter_samples(shard, strict=False, read=lambda ext: False, stats=stats):
            h = sample["__header__"]
            sources.append(Source(id=f"{ap}#{h['key']}", shard=ap, key=h["key"], caption=h.get("caption", ""),
                                  meta=dict(h.get("meta", {}))))  # fmt: skip
        if stats.skipped:
            bad.append(BadFile(ap, f"{stats.skipped} sample(s) or a tail of this shard are unreadable and were skipped."))
    return sources, bad


def _is_shard_dir(path: Path) -> bool:
    return (path / "manifest.parquet").is_file() or any(
        p.suffix == ".tar" and not p.name.startswith(".") for p in path.iterdir()
    )


def _read_list(path: Path) -> list[Path]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            p = Path(line).expanduser()
            out.append(p if p.is_absolute() else path.parent / p)
    return out


def resolve_input(spec: str | os.PathLike) -> tuple[list[Source], list[BadFile]]:
    """The sources of INPUT (sorted, duplicates removed) and the bad files found while resolving it."""
    text = os.fspath(spec)
    if _has_glob(text):
        paths = sorted(Path(p) for p in globlib.glob(text, recursive=True) if _listed(Path(p)))
        if not paths:
            raise DataError(f"no files match {text!r}; check the pattern (quote it so the shell does not expand it).")
        if all(p.suffix == ".tar" for p in paths):
            sources, bad = _shard_sources([p for p in paths if p.is_file()])
            return sources, bad + _file_sources([p for p in paths if not p.is_file()])[1]
        return _file_sources(paths)
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(f"input {text} does not exist; pass a folder, a glob, a list file or a manifest of videos.")
    if path.is_dir():
        bucketed = sorted(p for p in path.glob("res_*/ar_*/frames_*/*.tar") if not p.name.startswith("."))
        if bucketed:  # the OUT of an earlier `worldsmith curate`: curate its kept clips again
            return _shard_sources(bucketed)
        if _is_shard_dir(path):
            return _shard_sources(list_shards(path))
        files = sorted(p for p in path.rglob("*") if _listed(p) and not _is_hidden(p, path))
        if not files:
            raise DataError(f"input folder {path} holds no files; put videos in it or point elsewhere.")
        return _file_sources(files)
    if path.suffix in (".parquet", ".tar"):
        return _shard_sources(list_shards(path))
    if path.suffix in LIST_SUFFIXES:
        listed = _read_list(path)
        if not listed:
            raise DataError(f"list file {path} names no files; write one video path per line.")
        sources, bad = _file_sources(listed)
        seen, unique = set(), []
        for s in sources:
            if s.id not in seen:
                seen.add(s.id)
                unique.append(s)
        return unique, bad
    return _file_sources([path])


def input_folder(spec: str | os.PathLike) -> Path | None:
    """The folder INPUT scans recursively (OUT must not be inside it), or None when INPUT is not a folder."""
    text = os.fspath(spec)
    path = Path(text).expanduser()
    return None if _has_glob(text) or not path.is_dir() else path.resolve()
