"""Tiny curation inputs shared by the pipeline and engine tests: multi-shot videos plus every kind of bad file."""

from __future__ import annotations

import hashlib
import tarfile
from collections import Counter
from pathlib import Path

from helpers import write_audio_only
from worldsmith.curate.synth import ShotSpec, make_multishot

# file name -> the words its reason in the report must contain
BAD_FILES = {"empty.mp4": "empty", "notes.mp4": "not a video", "truncated.mp4": "truncated", "voice.m4a": "video"}


def make_input_folder(root: Path, videos: int = 3, size: tuple[int, int] = (128, 64), fps: float = 12.0) -> Path:
    """``videos`` multi-shot videos (one in a sub-folder) and the four kinds of bad file.

    The engine test compares two runs score by score; that holds at any width because worldsmith's encoder turns
    x264's mb-tree off (with it, widths such as 160 or 320 gave different bytes run to run).
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "sub").mkdir(exist_ok=True)
    kinds = [("moving", "pan", "static"), ("pan", "zoom", "moving"), ("zoom", "moving", "shaky")]
    for i in range(videos):
        plan = [ShotSpec(kind, int(fps * (2.6 + 0.4 * j))) for j, kind in enumerate(kinds[i % len(kinds)])]
        plan.insert(1, ShotSpec("moving", int(fps * 0.8)))  # a shot shorter than min_clip_s
        where = root / "sub" if i == videos - 1 else root
        make_multishot(where / f"video{i}.mp4", plan, size, fps, seed=i)
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.mp4").write_text("meeting notes, not a video\n")
    data = (root / "video0.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 3])
    write_audio_only(root / "voice.m4a")
    return root


def tree_digest(root: Path) -> str:
    """A hash of every path, size, mtime and content under ``root`` (to prove the input was not modified)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        st = p.stat()
        h.update(f"{p.relative_to(root)}|{p.is_dir()}|{st.st_mtime_ns}|{st.st_mode}".encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def shard_keys(out: Path) -> Counter:
    """How often each clip key appears across every shard under ``out``."""
    keys: Counter = Counter()
    for tar in out.rglob("*.tar"):
        with tarfile.open(tar) as t:
            keys.update(m.name.split(".", 1)[0] for m in t.getmembers() if m.name.endswith(".json"))
    return keys
