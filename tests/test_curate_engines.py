"""The engines: local and Ray give the same manifest; SIGKILL at any point then rerun gives every clip exactly once."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curate_inputs import make_input_folder, shard_keys, tree_digest
from worldsmith.curate.pipeline import CurateConfig, run_curation

COMPARED = ("key", "kept", "dropped_by", "source", "start_frame", "end_frame", "bucket", "shard", "tag_camera_motion")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_input_folder(tmp_path_factory.mktemp("input"), videos=2)


def _words(text: str) -> str:
    """A reason or caption without its numbers (those are compared as scores, within float tolerance)."""
    return re.sub(r"[-+]?\d[\d.e+-]*", "#", text)


def manifest(out: Path) -> dict[str, dict]:
    return {r["key"]: r for r in pq.read_table(out / "manifest.parquet").to_pylist()}


def fast_config(**kw) -> CurateConfig:
    """The classical shot detector (TransNetV2 runs in tests/test_curate_pipeline.py): these tests run 4+ times."""
    cfg = CurateConfig(progress=False, **kw)
    cfg.split = dataclasses.replace(cfg.split, detector="adaptive")
    return cfg


@pytest.fixture(scope="module")
def local_run(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    return out, run_curation(inputs, out, fast_config(workers=2))


def assert_same_manifest(out_a: Path, out_b: Path) -> None:
    """Same clips, same decisions and buckets, same scores within float tolerance, same shard contents."""
    a, b = manifest(out_a), manifest(out_b)
    assert a.keys() == b.keys() and any(r["kept"] for r in a.values())
    for key, ra in a.items():
        rb = b[key]
        assert {c: ra.get(c) for c in COMPARED} == {c: rb.get(c) for c in COMPARED}
        assert _words(ra["reason"]) == _words(rb["reason"]) and _words(ra["caption"]) == _words(rb["caption"])
        for col in (c for c in ra if c.startswith("score_")):
            assert (ra[col] is None) == (rb[col] is None), (key, col)
            if ra[col] is not None:
                assert math.isclose(ra[col], rb[col], rel_tol=1e-5, abs_tol=1e-6), (key, col, ra[col], rb[col])
    assert shard_keys(out_a) == shard_keys(out_b)


def test_local_and_ray_give_the_same_manifest_and_ray_resumes(inputs, local_run, tmp_path, one_torch_thread):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # one local Ray for both runs below
    try:
        # 1. a whole run on Ray Data
        local_out, local = local_run
        out = tmp_path / "ray"
        ray_run = run_curation(inputs, out, fast_config(engine="ray", workers=2))
        assert local["kept"] == ray_run["kept"] and local["bad_files"] == ray_run["bad_files"]
        assert_same_manifest(local_out, out)
        # 2. as if killed: the journal keeps all sources but the last and no processed clip, plus a torn line
        journal = out / ".work" / "journal.jsonl"
        lines = journal.read_text().splitlines(keepends=True)
        kept_lines = [x for x in lines if '"kind":"source"' in x or '"kind":"bad"' in x][:-1]
        journal.write_text("".join(kept_lines) + lines[-1][: len(lines[-1]) // 2])
        (out / "manifest.parquet").unlink()
        # 3. rerun: journaled clips go straight to processing, the last source is split again
        again = run_curation(inputs, out, fast_config(engine="ray", workers=2))
        assert again["kept"] == local["kept"]
        entries = [json.loads(x) for x in journal.read_text().splitlines()]  # the torn line was cut off
        assert len(entries) == len(lines) and sum(e["kind"] == "clip" for e in entries) == sum('"kind":"clip"' in x
                                                                                              for x in lines)  # fmt: skip
        assert_same_manifest(local_out, out)
    finally:
        ray.shutdown()


def _cli(inputs: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "worldsmith.cli", "curate", str(inputs), "--out", str(out), "--workers", "1",
            "--set", "progress=false", "--set", "split.detector=adaptive"]  # fmt: skip


def _journal_lines(out: Path) -> int:
    try:
        return (out / ".work" / "journal.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _kill_when(cmd: list[str], ready, timeout: float = 300.0) -> bool:
    """Start ``cmd``, SIGKILL it as soon as ``ready()`` holds; False when it finished first."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if ready():
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.005)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_kill_and_rerun_gives_every_clip_exactly_once(inputs, local_run, tmp_path):
    out = tmp_path / "out"
    before = tree_digest(inputs)
    cmd = _cli(inputs, out)
    # 1. kill right after the first journal line, after a few more, while the first shard is being written, and
    #    once a shard is committed (before the other buckets and the manifest)
    killed = [_kill_when(cmd, lambda: _journal_lines(out) >= 1)]
    killed.append(_kill_when(cmd, lambda: _journal_lines(out) >= 5))
    killed.append(_kill_when(cmd, lambda: any(out.glob("res_*/ar_*/frames_*/.*.tmp"))))
    killed.append(_kill_when(cmd, lambda: any(out.glob("res_*/ar_*/frames_*/part-*.tar"))))
    assert killed[0] and killed[1], f"a run finished before it was killed ({killed}): the test did not test anything"
    # 2. the same command again finishes the run
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "report:" in done.stdout
    # 3. every kept clip exactly once across all shards, no temp or partial shard visible, input untouched
    rows = manifest(out)
    kept = Counter(k for k, r in rows.items() if r["kept"])
    assert kept and shard_keys(out) == kept
    assert not [p for p in out.rglob(".*.tmp")] and not [p for p in out.rglob("*.tmp")]
    assert {str(p.relative_to(out)) for p in out.rglob("*.tar")} == {r["shard"] for r in rows.values() if r["kept"]}
    # 4. and it matches an uninterrupted run
    assert set(manifest(local_run[0])) == set(rows) and local_run[1]["kept"] == len(kept)
    assert tree_digest(inputs) == before
