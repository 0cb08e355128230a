"""The curation pipeline end to end: inputs, bad files, manifest, buckets, shards, report, resume, sim input, CLI."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from curate_inputs import BAD_FILES, make_input_folder, shard_keys, tree_digest
from helpers import run_cli
from worldsmith.curate.pipeline import CurateConfig, run_curation
from worldsmith.curate.record import ClipRecord
from worldsmith.curate.shard import ShardConfig, aspect_bucket, bucket_of
from worldsmith.curate.sources import resolve_input
from worldsmith.data.shards import iter_samples, iter_shard
from worldsmith.errors import ConfigError, DataError
from worldsmith.worlds.generate import simulate

BUCKET_RE = re.compile(r"^res_\d+/ar_\d+x\d+/frames_\d+-(\d+|max)/part-\d{6}\.tar$")


def tiny_config(**kw) -> CurateConfig:
    return CurateConfig(workers=1, progress=False, **kw)


@pytest.fixture(scope="module")
def curated(tmp_path_factory, one_torch_thread):
    root = make_input_folder(tmp_path_factory.mktemp("input"))
    before = tree_digest(root)
    out = tmp_path_factory.mktemp("curated") / "out"
    summary = run_curation(root, out, tiny_config())
    return root, before, out, summary


def test_end_to_end_outputs(curated):
    root, before, out, summary = curated
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    # 1. every clip is in the manifest, kept or dropped with a reason; the short shots are counted as split drops
    assert len(rows) == summary["clips"] >= 9 and len({r["key"] for r in rows}) == len(rows)
    assert all(bool(r["reason"]) == (not r["kept"]) and bool(r["dropped_by"]) == (not r["kept"]) for r in rows)
    assert sum(r["dropped_by"] == "split" for r in rows) >= 3
    assert summary["kept"] == sum(r["kept"] for r in rows) >= 1
    # 2. kept clips sit in bucket shards named by resolution, aspect ratio and length, each exactly once
    kept = [r for r in rows if r["kept"]]
    assert all(BUCKET_RE.match(r["shard"]) and (out / r["shard"]).is_file() for r in kept)
    assert all(r["shard"].startswith(r["bucket"] + "/") and "/ar_2x1/" in r["shard"] for r in kept)
    assert shard_keys(out) == Counter({r["key"]: 1 for r in kept})
    assert all(r["shard"] == "" for r in rows if not r["kept"])
    # 3. scores and span columns are there
    assert any(c.startswith("score_") for c in rows[0]) and all(r["end_frame"] > r["start_frame"] for r in rows)
    assert summary["hours_in"] > summary["hours_out"] > 0
    # 4. the input folder is untouched
    assert tree_digest(root) == before


def test_shards_store_the_split_clips_as_they_are_and_stages_report_cpu_seconds(curated):
    root, before, out, summary = curated
    rows = {r["key"]: r for r in pq.read_table(out / "manifest.parquet").to_pylist() if r["kept"]}
    stored = {s["__key__"]: s["mp4"] for shard in sorted(out.glob("res_*/**/*.tar"))
              for s in iter_samples(shard, read=lambda ext: ext == "mp4")}  # fmt: skip
    assert set(stored) == set(rows)
    # an even-sized H.264 clip is not encoded a second time: the shard holds the split's own file, byte for byte
    same = [key for key, data in stored.items() if data == Path(rows[key]["clip_path"]).read_bytes()]
    assert same and len(same) == sum(r["width"] % 2 == 0 and r["height"] % 2 == 0 for r in rows.values())
    assert all(next(iter_shard(Path(out / rows[k]["shard"]))).num_frames >= 1 for k in same)
    cpu = summary["stage_cpu_seconds"]
    assert set(cpu) == {"split", "process", "dedup", "shards"} and cpu["split"] > 0 and cpu["process"] > 0


def test_bad_files_are_reported_with_reasons(curated):
    root, _, out, summary = curated
    assert summary["bad_files"] == len(BAD_FILES)
    page = (out / "report.html").read_text()
    for name, words in BAD_FILES.items():
        row = next(line for line in page.split("<tr>") if name in line)
        assert words in row.lower(), (name, row)
    assert "<svg" in page and "data:image/jpeg;base64," in page and "kept clips" in page


def test_rerun_skips_finished_work_and_refuses_other_settings(curated):
    root, _, out, summary = curated
    journal = (out / ".work" / "journal.jsonl").read_bytes()
    manifest = pq.read_table(out / "manifest.parquet")
    again = run_curation(root, out, tiny_config())
    assert (out / ".work" / "journal.jsonl").read_bytes() == journal  # nothing was redone
    assert pq.read_table(out / "manifest.parquet").equals(manifest)
    assert again["kept"] == summary["kept"] and shard_keys(out) == Counter(manifest.column("key").to_pylist()[i]
                                                                             for i, k in enumerate(manifest.column("kept").to_pylist()) if k)  # fmt: skip
    other = tiny_config()
    other.split = dataclasses.replace(other.split, min_clip_s=3.0)
    with pytest.raises(ConfigError, match=r"made with other settings \(split.min_clip_s was 2.0, now 3.0\)"):
        run_curation(root, out, other)


def test_input_forms(curated, tmp_path):
    root = curated[0]
    folder, bad = resolve_input(root)
    assert len(folder) == 6 and [b.path for b in bad] == [str(root / "empty.mp4")]  # 0 bytes: found without decoding
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two videos\n{root / 'video0.mp4'}\n\n{root}/sub/video2.mp4  # nested\nmissing.mp4\n")
    listed, bad = resolve_input(listing)
    assert [Path(s.path).name for s in listed] == ["video0.mp4", "video2.mp4"] and "does not exist" in bad[0].reason
    globbed, _ = resolve_input(f"{root}/**/video*.mp4")
    assert len(globbed) == 3
    again, bad = resolve_input(curated[2])  # an earlier curate output: its kept clips, with their captions
    assert len(again) == curated[3]["kept"] and not bad and all(s.shard and s.caption for s in again)
    with pytest.raises(DataError, match="does not exist"):
        resolve_input(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="inside the input folder"):
        run_curation(root, root / "out", tiny_config())


def test_buckets():
    cfg = ShardConfig()
    assert [aspect_bucket(w, h, cfg) for w, h in [(320, 240), (1920, 1080), (854, 480), (64, 64), (1000, 370)]] == [
        "4x3", "16x9", "16x9", "1x1", "100x37"]  # fmt: skip

    rec = ClipRecord("k", "s", 0, 100, 0.0, 4.0, 25.0, 320, 240)
    assert bucket_of(rec, cfg) == "res_240/ar_4x3/frames_64-128"
    rec.end_frame = 5000
    assert bucket_of(rec, cfg) == "res_240/ar_4x3/frames_2048-max"


def test_curate_sim_output_keeps_captions_and_arrays(tmp_path, one_torch_thread):
    """Clips of `worldsmith sim` are sources whose captions and per-frame arrays carry over to the curated clips."""
    sim = tmp_path / "sim"
    simulate("bounce", episodes=2, frames=30, size=64, fps=10.0, out=sim, seed=3, workers=1, progress=False)
    source = {c.key: c for tar in sorted(sim.glob("*.tar")) for c in iter_shard(tar)}
    cfg = tiny_config()
    cfg.shard = dataclasses.replace(cfg.shard, in_memory_mb=0)  # stage every clip in a memory-mapped file
    for f in dataclasses.fields(cfg.filters):  # keep every clip: this test is about what carries over
        sub = getattr(cfg.filters, f.name)
        if dataclasses.is_dataclass(sub) and hasattr(sub, "enabled"):
            setattr(cfg.filters, f.name, dataclasses.replace(sub, enabled=False))
    summary = run_curation(sim / "manifest.parquet", tmp_path / "out", cfg)
    rows = pq.read_table(tmp_path / "out" / "manifest.parquet").to_pylist()
    assert summary["sources"] == 2 and summary["bad_files"] == 0 and rows
    for r in rows:
        key = r["source"].rsplit("#", 1)[1]
        assert r["caption"] == source[key].caption and r["caption_source"] == "source"
    clips = [c for tar in (tmp_path / "out").rglob("*.tar") for c in iter_shard(tar)]
    assert clips and all(c.caption for c in clips)
    for c in clips:
        src = source[c.meta["curate"]["source_key"]]
        s = c.meta["start_frame"]
        assert set(c.arrays) == set(src.arrays) and c.frames.shape[1:] == src.frames.shape[1:]
        aligned = np.abs(c.frames.astype(int) - src.frames[s : s + c.num_frames]).mean()  # re-encoded, same frames
        shifted = np.abs(c.frames[1:].astype(int) - src.frames[s : s + c.num_frames - 1]).mean()  # one frame off
        assert aligned < min(4.0, shifted)
        for name, arr in c.arrays.items():
            n = c.num_frames - 1 if src.is_per_transition(name) else c.num_frames
            assert (arr == src.arrays[name][s : s + n]).all()



def test_cli_errors_and_dry_run(capsys, tmp_path, curated):
    code, _, err = run_cli(capsys, "curate", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert code == 1 and err.startswith("error: input") and "does not exist" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "curate", str(curated[0]), "--out", str(tmp_path / "o"), "--engine", "spark")
    assert code == 1 and "'local', 'ray'" in err
    code, _, err = run_cli(capsys, "curate", str(curated[0]), "--out", str(tmp_path / "o"), "--set", "split.nope=1")
    assert code == 1 and "unknown config key 'split.nope'" in err
    code, _, err = run_cli(capsys, "curate", str(curated[0]), "--out", str(tmp_path / "o"), "--workers", "0")
    assert code == 2 and "--workers" in err
    code, _, err = run_cli(capsys, "curate", str(curated[0]), "--out", str(tmp_path / "r"), "--ray-address", "127.0.0.1:9")
    assert code == 1 and "cannot reach the Ray cluster at 127.0.0.1:9" in err and "Traceback" not in err
    code, out, _ = run_cli(capsys, "curate", str(curated[0]), "--out", str(tmp_path / "o"), "--dry-run")
    assert code == 0 and "engine: local" in out and "6 source(s)" in out and not (tmp_path / "o").exists()
    code, out, _ = run_cli(capsys, "curate", "--help")
    assert code == 0 and "--ray-address" in out and "resume" in out
