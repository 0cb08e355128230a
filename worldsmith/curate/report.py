"""The curation report: ``OUT/report.html``, one self-contained page a newcomer can read.

What it shows, top to bottom: a summary sentence; where the outputs are; counts per stage (sources, bad files,
shots, clips, drops per filter, duplicates, kept, hours in and out); the files that could not be read, each with
its reason; one histogram per score (kept and dropped clips in two colours); thumbnail strips of kept clips and of
dropped clips, one row per clip (frames fitted into ``THUMB_BOX`` at the clip's own aspect ratio, next to its
source file, span, tags and whole caption or drop reason); a table of dropped clips with their source files; the
config. Charts are inline SVG and thumbnails inline JPEG (base64), so the page opens anywhere on its own and moves
with the folder. House style: ``demo_report.py``.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from worldsmith.atomic import atomic_write_text
from worldsmith.config import dump_yaml
from worldsmith.curate.record import ClipRecord
from worldsmith.errors import VideoError
from worldsmith.io.contact_sheet import contact_sheet
from worldsmith.io.video import decode

KEPT_COLOR, DROPPED_COLOR = "#2ca02c", "#d62728"
THUMB_BOX = (72, 128)  # (H, W): each thumbnail frame fits in this box, its aspect ratio kept
THUMB_FRAMES = 6
STAGE_WORDS = {"split": "too short (split)", "dedup": "duplicates (dedup)", "process": "unreadable clips"}


def svg_histogram(kept: list[float], dropped: list[float], *, title: str, bins: int = 20, width: int = 300,
                  height: int = 150) -> str:  # fmt: skip
    """Stacked histogram of one score: kept clips green, dropped clips red."""
    values = [v for v in kept + dropped if v is not None and math.isfinite(v)]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    hi = hi if hi > lo else lo + 1e-9
    edges = np.linspace(lo, hi, bins + 1)
    hk = np.histogram([v for v in kept if v is not None and math.isfinite(v)], edges)[0]
    hd = np.histogram([v for v in dropped if v is not None and math.isfinite(v)], edges)[0]
    top = max(1, int((hk + hd).max()))
    pad_l, pad_b, pad_t = 30, 26, 20
    bw = (width - pad_l - 6) / bins
    plot_h = height - pad_t - pad_b
    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" font-size="10">',
             f'<text x="{pad_l}" y="13" font-weight="bold">{html.escape(title)}</text>',
             f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - 6}" y2="{height - pad_b}" stroke="#888"/>',
             f'<text x="2" y="{pad_t + 8}">{top}</text>',
             f'<text x="{pad_l}" y="{height - pad_b + 12}">{lo:.3g}</text>',
             f'<text x="{width - 6}" y="{height - pad_b + 12}" text-anchor="end">{hi:.3g}</text>']  # fmt: skip
    for i in range(bins):
        x, y0 = pad_l + i * bw, height - pad_b
        for count, color in ((hk[i], KEPT_COLOR), (hd[i], DROPPED_COLOR)):
            if count:
                h = plot_h * count / top
                y0 -= h
                parts.append(f'<rect x="{x:.1f}" y="{y0:.1f}" width="{max(bw - 1, 1):.1f}" height="{h:.1f}" '
                             f'fill="{color}"><title>{count}</title></rect>')  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _jpeg_data_uri(image: np.ndarray) -> str:
    """An inline JPEG (video frames compress ~10x better than as PNG, which keeps the page light)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def thumb_size(height: int, width: int) -> tuple[int, int]:
    """(h, w) of a thumbnail frame: the clip's aspect ratio, fitted into ``THUMB_BOX`` (never enlarged)."""
    scale = min(THUMB_BOX[0] / max(height, 1), THUMB_BOX[1] / max(width, 1), 1.0)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _sample_frames(rec: ClipRecord, n: int = THUMB_FRAMES) -> np.ndarray | None:
    """``n`` frames spread over the clip, small, as uint8 (n, h, w, 3); None when the clip cannot be read."""
    if not rec.path or not Path(rec.path).is_file():
        return None
    t = max(1, rec.num_frames)
    picks = sorted({min(t - 1, round(i * (t - 1) / max(n - 1, 1))) for i in range(n)})
    try:
        frames = [decode(rec.path, start=i, end=i + 1, size=thumb_size(rec.height, rec.width)) for i in picks]
    except VideoError:
        return None
    frames = [f for f in frames if len(f)]
    return np.concatenate(frames) if frames else None


def where(rec: ClipRecord) -> str:
    """The clip's source file and span, e.g. ``/data/a.mp4 12.0-15.5 s``."""
    return f"{rec.source} {rec.start_s:.1f}-{rec.end_s:.1f} s"


def thumbnails(records: list[ClipRecord], describe, limit: int = 12) -> str:
    """A table with one row per clip: a strip of its frames (sized to that clip alone) and ``describe(rec)``."""
    rows = []
    for rec in records[:limit]:
        frames = _sample_frames(rec)
        if frames is not None:
            strip = contact_sheet(frames, None, cols=THUMB_FRAMES, max_frames=THUMB_FRAMES)
            rows.append(f'<tr><td><img src="{_jpeg_data_uri(strip)}" alt="frames of {rec.key}"></td>'
                        f"<td>{html.escape(describe(rec))}</td></tr>")  # fmt: skip
    if not rows:
        return "<p><i>no thumbnails (clip files not available)</i></p>"
    return f'<table class="thumbs">{"".join(rows)}</table>'


def _spread(records: list[ClipRecord], limit: int) -> list[ClipRecord]:
    """Up to ``limit`` records, taking turns across the stages that dropped them (so every reason shows)."""
    groups: dict[str, list[ClipRecord]] = {}
    for r in records:
        groups.setdefault(r.dropped_by, []).append(r)
    out, i = [], 0
    while len(out) < limit and any(i < len(g) for g in groups.values()):
        out += [g[i] for g in groups.values() if i < len(g)]
        i += 1
    return out[:limit]


def _without(reason: str, path: str) -> str:
    """A reason without the path it starts with (the table shows the path next to it)."""
    return reason[len(path):].strip() if reason.startswith(path) else reason


def _hours(h: float) -> str:
    return f"{h * 60:.1f} min" if h < 1 else f"{h:.2f} h"


def write_report(out: Path, records: list[ClipRecord], bad: list[Any], summary: dict[str, Any], cfg: Any) -> Path:
    """Write ``out/report.html`` (see the module docstring) and return its path."""
    s = summary
    kept = [r for r in records if r.kept]
    dropped = [r for r in records if not r.kept]
    # 1. the summary sentence and the counts per stage
    sentence = (f"worldsmith read {s['sources']} input file(s) holding {_hours(s['hours_in'])} of video, cut "
                f"{s['shots']} shot(s) into {s['clips']} candidate clip(s), dropped {len(dropped)} of them and kept "
                f"{s['kept']} ({_hours(s['hours_out'])}) in {s['shards']} shard(s); {s['bad_files']} file(s) "
                f"could not be read.")  # fmt: skip
    rows = [("input files", s["sources"]), ("unreadable files (skipped)", s["bad_files"]),
            ("shots found", s["shots"]), ("candidate clips", s["clips"])]  # fmt: skip
    rows += [(f"dropped: {STAGE_WORDS.get(k, f'{k} filter')}", v) for k, v in s["dropped"].items()]
    rows += [("kept clips", s["kept"]), ("video in", _hours(s["hours_in"])), ("video out", _hours(s["hours_out"])),
             ("run time", f"{s['seconds']:.1f} s"),
             ("seconds per stage (summed over workers)",
              ", ".join(f"{k} {v:.1f}" for k, v in s.get("stage_seconds", {}).items()) or "-"),
             ("CPU seconds per stage (summed over workers)",
              ", ".join(f"{k} {v:.1f}" for k, v in s.get("stage_cpu_seconds", {}).items()) or "-")]  # fmt: skip
    counts = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    # 2. bad files, with reasons
    bad_rows = "".join(f"<tr><td><code>{html.escape(b.path)}</code></td><td>{html.escape(_without(b.reason, b.path))}"
                       "</td></tr>" for b in bad) or '<tr><td colspan="2">none</td></tr>'  # fmt: skip
    # 3. score histograms
    names = sorted({k for r in records for k in r.scores})
    charts = "".join(
        svg_histogram([r.scores.get(n) for r in kept], [r.scores.get(n) for r in dropped if n in r.scores], title=n)
        for n in names
    )
    tags = Counter(str(r.tags.get("camera_motion")) for r in kept if "camera_motion" in r.tags)
    tag_line = ", ".join(f"{k}: {v}" for k, v in tags.most_common()) or "none"
    # 4. thumbnails of kept and dropped clips
    kept_html = thumbnails(kept, lambda r: f"{r.key} · {where(r)} · {r.tags.get('camera_motion', '')} "
                                           f"{r.tags.get('video_type', '')} · {r.caption}")  # fmt: skip
    drop_html = thumbnails(_spread([r for r in dropped if r.path], 12),
                           lambda r: f"{r.key} · {where(r)} · [{r.dropped_by}] {r.reason}")  # fmt: skip
    reasons = "".join(f"<tr><td><code>{r.key}</code></td><td><code>{html.escape(where(r))}</code></td>"
                      f"<td>{html.escape(r.dropped_by)}</td><td>{html.escape(r.reason)}</td></tr>"
                      for r in _spread(dropped, 40))  # fmt: skip
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>worldsmith curation report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
img{{image-rendering:pixelated;max-width:100%}} table{{border-collapse:collapse;margin-bottom:1em}}
td,th{{border:1px solid #ccc;padding:3px 9px;text-align:left;vertical-align:top}}
pre{{background:#f6f6f6;padding:8px;overflow:auto}} svg{{margin:4px}} table.thumbs td{{border:none}}</style>
</head><body>
<h1>worldsmith curation report</h1>
<p>{html.escape(sentence)}</p>
<p>Outputs: training shards <code>{html.escape(str(out))}/res_&lt;H&gt;/ar_&lt;w&gt;x&lt;h&gt;/frames_&lt;lo&gt;-&lt;hi&gt;/part-*.tar</code>
(WebDataset; read them with <code>worldsmith data inspect</code>), and <code>manifest.parquet</code>: one row per
candidate clip, kept or dropped, with its scores, tags, caption, source span, shard and the reason it was dropped.</p>
<h2>Counts per stage</h2><p>The pipeline: split each file into shots and clips, run the filters on each clip (the
first failing filter drops it), caption the rest, remove near-duplicates, write shards.</p>
<table>{counts}</table>
<h2>Files that could not be read</h2><table><tr><th>file</th><th>reason</th></tr>{bad_rows}</table>
<h2>Scores</h2><p>One histogram per score the filters measured; <span style="color:{KEPT_COLOR}">green: kept clips</span>,
<span style="color:{DROPPED_COLOR}">red: dropped clips</span> (hover a bar for its count). Camera motion of kept
clips: {html.escape(tag_line)}.</p><div>{charts or '<i>no scores</i>'}</div>
<h2>Kept clips</h2><p>Frames spread over each clip, with its key, source file and span, tags and caption.</p>
{kept_html}
<h2>Dropped clips</h2><p>Each strip with its source file and span, the stage that dropped the clip and why.</p>
{drop_html}
<table><tr><th>clip</th><th>source (span)</th><th>dropped by</th><th>reason</th></tr>
{reasons or '<tr><td colspan="4">none</td></tr>'}</table>
<h2>Config</h2><p>Re-run with the same settings to resume; change them with <code>--set key=value</code>.</p>
<pre>{html.escape(dump_yaml(cfg))}</pre>
</body></html>"""
    path = out / "report.html"
    atomic_write_text(path, page)
    return path
