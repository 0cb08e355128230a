"""``worldsmith data inspect PATH``: statistics of a shard set and a contact sheet of a few clips.

The statistics come from the JSON headers of every sample (videos are not decoded, so this is fast even for
large sets) and are compared with the manifest when ``PATH`` is a shard directory or a manifest (the output folder
of ``worldsmith curate`` or its manifest: its kept clips). The contact sheet decodes up to ``sheet_clips`` clips
spread evenly over the set and writes one PNG row per clip (written atomically by
``worldsmith.io.video.contact_sheet``); by default it goes in the directory given (next to the manifest, or the
first shard, otherwise) as ``contact_sheet.png``.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from worldsmith.data.manifest import MANIFEST_NAME, list_shards, manifest_row, read_manifest_rows
from worldsmith.data.shards import ReadStats, decode_video_member, iter_samples
from worldsmith.io import video

SHEET_SHORT_SIDE = 96  # clips are shown at this short side (never upscaled)
MAX_DISTINCT = 20  # string meta fields with at most this many values get a histogram


def _length_bin(frames: int) -> str:
    low = 1 << (max(frames, 1).bit_length() - 1)  # power-of-two bins: 1, 2-3, 4-7, 8-15 ...
    return f"{low}-{2 * low - 1}"


def _summary(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"min": float(arr.min()), "mean": float(arr.mean()), "max": float(arr.max())} if arr.size else {}


def _manifest_status(path: Path, rows: list[dict[str, Any]]) -> str:
    file = path / MANIFEST_NAME if path.is_dir() else path if path.suffix == ".parquet" else None
    if file is None:
        return "not checked (give a directory or a manifest)"
    if not file.is_file():
        return "missing"
    listed = {(r["shard"], r["key"]) for r in read_manifest_rows(file)}
    found = {(r["shard"], r["key"]) for r in rows}
    if listed == found:
        return "ok"
    return f"out of date: {len(found - listed)} clips not listed, {len(listed - found)} listed but absent"


def _rows(shards: list[Path], root: Path, stats: ReadStats) -> list[dict[str, Any]]:
    rows = []
    for shard in shards:
        rel = os.path.relpath(shard, root).replace(os.sep, "/")
        for i, s in enumerate(iter_samples(shard, read=lambda ext: False, stats=stats)):
            rows.append({**manifest_row(s["__header__"], rel, s["__size__"]), "_path": shard, "_index": i})
    return rows


def _sheet(rows: list[dict[str, Any]], dest: Path, count: int) -> Path | None:
    """Decode ``count`` clips spread over ``rows`` and write their contact sheet."""
    picked = [rows[round(i)] for i in np.linspace(0, len(rows) - 1, min(count, len(rows)))] if rows else []
    videos, labels = [], []
    for shard in dict.fromkeys(r["_path"] for r in picked):
        wanted = {r["_index"] for r in picked if r["_path"] == shard}
        for s in iter_samples(shard, read=lambda ext: ext == "mp4", keep=lambda i, w=wanted: i in w):
            h = s["__header__"]
            short = min(h["height"], h["width"], SHEET_SHORT_SIDE)  # aspect kept
            videos.append(decode_video_member(s, "mp4", h["height"], h["width"], size=short))
            labels.append(h["key"][:24])
    if not videos:
        return None
    video.contact_sheet(videos, dest, cols=8, max_frames=8, labels=labels)
    return dest


def inspect(
    path: str | os.PathLike, out_png: str | os.PathLike | None = None, *, sheet_clips: int = 8
) -> dict[str, Any]:
    """Statistics of the shards at ``path`` (directory, glob, .tar or manifest) plus a contact sheet PNG."""
    shards = list_shards(path)
    given = Path(path)
    root = given if given.is_dir() else given.parent if given.suffix == ".parquet" else shards[0].parent
    stats = ReadStats()
    rows = _rows(shards, root, stats)
    arrays: dict[str, dict[str, Any]] = {}
    for r in rows:
        for name, shape in json.loads(r["arrays"]).items():
            arrays.setdefault(name, {"clips": 0, "shape": shape})["clips"] += 1
    meta: dict[str, Any] = {}
    for field in sorted({f for r in rows for f in r if f.startswith("meta_")}):
        values = Counter(r[field] for r in rows if field in r)
        meta[field[5:]] = dict(values.most_common()) if len(values) <= MAX_DISTINCT else f"{len(values)} distinct"
    captions = [r for r in rows if r["caption"]]
    lengths = Counter(_length_bin(r["num_frames"]) for r in rows)
    dest = Path(out_png) if out_png is not None else root / "contact_sheet.png"
    sheet = _sheet(rows, dest, sheet_clips) if sheet_clips > 0 else None
    return {
        "path": str(path),
        "shards": len(shards),
        "clips": len(rows),
        "bad_samples": stats.skipped,
        "manifest": _manifest_status(Path(path), rows),
        "total_frames": int(sum(r["num_frames"] for r in rows)),
        "total_duration_s": float(sum(r["duration"] for r in rows)),
        "total_bytes": int(sum(r["bytes"] for r in rows)),
        "frames": _summary([r["num_frames"] for r in rows]),
        "duration_s": _summary([r["duration"] for r in rows]),
        "resolution": dict(Counter(f"{r['height']}x{r['width']}" for r in rows).most_common()),
        "fps": dict(Counter(round(r["fps"], 3) for r in rows).most_common()),
        "length": dict(sorted(lengths.items(), key=lambda kv: int(kv[0].split("-")[0]))),
        "views": dict(Counter(r["num_views"] for r in rows).most_common()),
        "arrays": arrays,
        "meta": meta,
        "captions": {r["key"]: r["caption"] for r in captions[:: max(1, len(captions) // 5)][:5]},
        "contact_sheet": str(sheet) if sheet is not None else None,
    }


def _human_bytes(n: int) -> str:
    size, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"


def format_stats(stats: dict[str, Any]) -> str:
    """Human-readable lines for the CLI."""

    def hist(d: dict) -> str:
        return ", ".join(f"{k}: {v}" for k, v in d.items()) or "-"

    def span(d: dict, unit: str = "") -> str:
        return f"{d['min']:.4g} / {d['mean']:.4g} / {d['max']:.4g}{unit}" if d else "-"

    arrays = stats["arrays"].items()
    lines = [
        f"{stats['path']}: {stats['clips']} clips in {stats['shards']} shards ({_human_bytes(stats['total_bytes'])})",
        f"  manifest        {stats['manifest']}",
        f"  bad samples     {stats['bad_samples']}",
        f"  total           {stats['total_frames']} frames, {stats['total_duration_s']:.1f} s",
        f"  frames min/mean/max    {span(stats['frames'])}",
        f"  duration min/mean/max  {span(stats['duration_s'], ' s')}",
        f"  resolution      {hist(stats['resolution'])}",
        f"  fps             {hist(stats['fps'])}",
        f"  length (frames) {hist(stats['length'])}",
        f"  views           {hist(stats['views'])}",
        "  arrays          " + (", ".join(f"{n} {tuple(a['shape'])} in {a['clips']} clips" for n, a in arrays) or "-"),
    ]
    lines += [f"  meta {name:<10} {hist(v) if isinstance(v, dict) else v}" for name, v in stats["meta"].items()]
    shown = {k: textwrap.shorten(c, 100, placeholder=" …") for k, c in stats["captions"].items()}  # whole words
    lines += ["  captions"] + [f"    {k}: {c}" for k, c in shown.items()]
    lines.append(f"  contact sheet   {stats['contact_sheet'] or '-'}")
    return "\n".join(lines)
