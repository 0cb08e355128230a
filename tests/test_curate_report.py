"""The curation report and `data inspect` text: source files of dropped clips, whole captions, thumbnails sized
to each clip."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

from worldsmith.curate.pipeline import CurateConfig
from worldsmith.curate.record import ClipRecord
from worldsmith.curate.report import THUMB_BOX, THUMB_FRAMES, thumb_size, write_report
from worldsmith.data.inspect import format_stats
from worldsmith.io.video import encode_mp4

CAPTION = ("A 4.0-second clip of natural-looking footage, with the camera panning left across a harbour where "
           "fishing boats rock at their moorings under a grey sky.")  # fmt: skip


def _clip(path, height: int, width: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    encode_mp4(rng.integers(0, 255, (8, height, width, 3), dtype=np.uint8), path, fps=8.0)
    return str(path)


def _record(key: str, source: str, path: str, height: int, width: int, **kw) -> ClipRecord:
    return ClipRecord(key, source, 24, 32, 3.0, 4.0, 8.0, width, height, path=path, caption=CAPTION, **kw)


def _images(page: str) -> dict[str, tuple[int, int]]:
    """{alt text: (width, height)} of every inline image."""
    found = re.findall(r'<img src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)"', page)
    return {alt: Image.open(io.BytesIO(base64.b64decode(data))).size for data, alt in found}


def test_report_shows_sources_whole_captions_and_per_clip_thumbnails(tmp_path):
    square = _record("csquare", "/videos/square.mp4", _clip(tmp_path / "a.mp4", 64, 64, 0), 64, 64)
    wide = _record("cwide", "/videos/panorama.mp4", _clip(tmp_path / "b.mp4", 48, 256, 1), 48, 256)
    dropped = _record("cdark", "/videos/night shot.mp4", _clip(tmp_path / "c.mp4", 64, 64, 2), 64, 64)
    dropped.drop("quality", "too dark: brightness 0.05 is below min_brightness=0.1.")
    gone = _record("cgone", "/videos/missing_clip.mp4", "", 64, 64).drop("split", "shot is 0.8 s, too short.")
    summary = {"sources": 3, "hours_in": 0.01, "shots": 4, "clips": 4, "kept": 2, "hours_out": 0.002, "shards": 1,
               "bad_files": 0, "dropped": {"quality": 1, "split": 1}, "seconds": 1.0, "stage_seconds": {}}
    page = write_report(tmp_path, [square, wide, dropped, gone], [], summary, CurateConfig()).read_text()
    # 1. the dropped-clips table names each clip's source file and span
    table = page[page.index("<th>source (span)</th>"):]
    for rec in (dropped, gone):
        row = next(r for r in table.split("<tr>") if rec.key in r)
        assert rec.source in row and "3.0-4.0 s" in row and rec.reason in row
    # 2. captions are shown whole (in the page text, not cut into a label)
    assert page.count(CAPTION) == 2
    # 3. one strip per clip, each sized to its own clip: the square clip's frames are not padded to the panorama's
    sizes = _images(page)
    assert set(sizes) == {"frames of csquare", "frames of cwide", "frames of cdark"}
    (h_sq, w_sq), (h_wide, w_wide) = thumb_size(64, 64), thumb_size(48, 256)
    assert w_wide == THUMB_BOX[1] and h_sq <= THUMB_BOX[0]  # fitted into the box, aspect kept
    for alt, (h, w) in (("frames of csquare", (h_sq, w_sq)), ("frames of cwide", (h_wide, w_wide))):
        width, height = sizes[alt]
        assert THUMB_FRAMES * w <= width <= THUMB_FRAMES * (w + 4) and h <= height <= h + 4


def test_inspect_cuts_long_captions_at_a_word():
    stats = {"path": "x", "clips": 1, "shards": 1, "total_bytes": 10, "manifest": "ok", "bad_samples": 0,
             "total_frames": 8, "total_duration_s": 1.0, "frames": {}, "duration_s": {}, "resolution": {}, "fps": {},
             "length": {}, "views": {}, "arrays": {}, "meta": {}, "captions": {"k": CAPTION}, "contact_sheet": None}
    line = next(line for line in format_stats(stats).splitlines() if line.strip().startswith("k:"))
    shown = line.split("k: ", 1)[1]
    assert shown.endswith(" …") and len(shown) <= 100 and CAPTION.startswith(shown[:-2])
    assert CAPTION[len(shown) - 2] == " "  # the cut falls between words
