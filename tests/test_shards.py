"""Clip shards: round trip, WebDataset layout, atomic writer, resume, manifest, error messages."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from worldsmith.data import shard_writer
from worldsmith.data.clip import Clip
from worldsmith.data.inspect import format_stats, inspect
from worldsmith.data.manifest import list_shards, read_manifest, read_manifest_rows, rebuild_manifest
from worldsmith.data.shard_writer import ShardWriter, encode_clip
from worldsmith.data.shards import ReadStats, decode_clip, iter_samples, iter_shard, load_array
from worldsmith.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]


def gray_clip(key: str, t: int = 12, size: tuple[int, int] = (32, 32), fps: float = 10.0, views: int = 0) -> Clip:
    """Frame ``i`` is solid gray ``10 * i + 5`` (views: ``250 - 10 * i``); arrays hold the frame index."""
    level = 10 * np.arange(t) + 5
    frames = np.broadcast_to(level[:, None, None, None], (t, *size, 3)).astype(np.uint8)
    idx = np.arange(t, dtype=np.float32)
    arrays = {
        "actions": np.stack([idx[:-1], np.ones(t - 1, np.float32)], axis=1),  # (T-1, 2): [t, 1]
        "frame_id": idx[:, None],  # (T, 1)
    }
    extra = [np.ascontiguousarray(255 - 5 - frames) for _ in range(views)]
    return Clip(key=key, frames=frames, fps=fps, caption=f"clip {key}", meta={"world": "gray", "seed": t},
                arrays=arrays, views=extra)  # fmt: skip


def gray_levels(frames: np.ndarray) -> np.ndarray:
    """Frame indices encoded by ``gray_clip`` from decoded uint8 (T, H, W, 3) frames."""
    return np.round((frames.reshape(len(frames), -1).mean(1) - 5) / 10).astype(int)


def textured_clip(key: str, t: int = 10, views: int = 2, rng: np.random.Generator | None = None) -> Clip:
    """A smooth moving pattern with every standard conditioning array."""
    rng = rng or np.random.default_rng(0)
    y, x = np.mgrid[0:32, 0:32].astype(np.float32)
    frames = np.stack([np.stack([128 + 100 * np.sin((x + 2 * i) / 5), 128 + 100 * np.cos((y - i) / 6),
                                 (x + y + 4 * i) % 256], -1) for i in range(t)]).astype(np.uint8)  # fmt: skip
    c2w = np.tile(np.eye(4, dtype=np.float32), (t, 1, 1))
    c2w[:, :3, 3] = rng.normal(size=(t, 3))
    arrays = {
        "actions": rng.normal(size=(t - 1, 7)).astype(np.float32),
        "intrinsics": np.tile(np.array([[40, 0, 16], [0, 40, 16], [0, 0, 1]], np.float32), (t, 1, 1)),
        "c2w": c2w,
        "states": rng.normal(size=(t, 3, 7)).astype(np.float32),
        "contact": rng.integers(0, 2, size=(t, 3)).astype(np.uint8),
    }
    extra = [np.ascontiguousarray(np.roll(frames, 3 * (v + 1), axis=2)) for v in range(views)]
    if views > 1:
        extra[1] = np.ascontiguousarray(np.concatenate([extra[1], extra[1][:, :, :16]], axis=2))  # (T, 32, 48, 3)
    return Clip(key=key, frames=frames, fps=12.5, caption=f"a pattern {key}", meta={"world": "pattern", "seed": 3},
                arrays=arrays, views=extra)  # fmt: skip


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


def test_round_trip_with_actions_poses_states_and_views(tmp_path):
    clips = [textured_clip(f"clip-{i}", t=8 + i, rng=np.random.default_rng(i)) for i in range(3)]
    with ShardWriter(tmp_path, max_clips_per_shard=2) as writer:
        for clip in clips:
            writer.write(clip)
    assert list_shards(tmp_path) == [tmp_path / "part-000000.tar", tmp_path / "part-000001.tar"]
    decoded = [c for shard in list_shards(tmp_path) for c in iter_shard(shard)]
    assert [c.key for c in decoded] == [c.key for c in clips]
    for got, want in zip(decoded, clips, strict=True):
        assert got.frames.shape == want.frames.shape and psnr(got.frames, want.frames) > 30
        assert (got.fps, got.caption, got.meta) == (want.fps, want.caption, want.meta)
        assert sorted(got.arrays) == sorted(want.arrays)
        for name, arr in want.arrays.items():
            assert got.arrays[name].dtype == arr.dtype and np.array_equal(got.arrays[name], arr), name
        assert [v.shape for v in got.views] == [(want.num_frames, 32, 32, 3), (want.num_frames, 32, 48, 3)]
        assert all(psnr(g, w) > 30 for g, w in zip(got.views, want.views, strict=True))
    rows = read_manifest_rows(tmp_path)
    assert [(r["key"], r["shard"]) for r in rows] == [
        ("clip-0", "part-000000.tar"), ("clip-1", "part-000000.tar"), ("clip-2", "part-000001.tar")]  # fmt: skip
    row = rows[2]
    assert (row["num_frames"], row["height"], row["width"], row["num_views"], row["fps"]) == (10, 32, 32, 3, 12.5)
    assert row["duration"] == pytest.approx(10 / 12.5)
    assert row["array_names"] == ["actions", "c2w", "contact", "intrinsics", "states"]
    assert json.loads(row["arrays"])["states"] == [10, 3, 7]
    assert (row["meta_world"], row["meta_seed"]) == ("pattern", 3)
    assert row["bytes"] > 0


def test_shard_layout_is_webdataset_style(tmp_path):
    odd = gray_clip("odd", t=5, size=(33, 31))
    with ShardWriter(tmp_path) as writer:
        writer.write(textured_clip("k", t=6))
        writer.write(odd)
    with tarfile.open(tmp_path / "part-000000.tar") as tar:
        names = tar.getnames()
        header = json.loads(tar.extractfile("k.json").read())
        actions = np.load(io.BytesIO(tar.extractfile("k.actions.npy").read()), allow_pickle=False)
    assert names[:9] == ["k.json", "k.mp4", "k.actions.npy", "k.c2w.npy", "k.contact.npy", "k.intrinsics.npy",
                         "k.states.npy", "k.view1.mp4", "k.view2.mp4"]  # fmt: skip
    assert names[9:] == ["odd.json", "odd.mp4", "odd.actions.npy", "odd.frame_id.npy"]
    assert header["arrays"]["actions"] == {"shape": [5, 7], "dtype": "float32", "per": "transition"}
    assert header["arrays"]["c2w"]["per"] == "frame" and header["num_views"] == 3
    assert actions.shape == (5, 7)
    (back,) = [c for c in iter_shard(tmp_path / "part-000000.tar") if c.key == "odd"]
    assert back.frames.shape == (5, 33, 31, 3)  # the encoder's even-size padding is cut on read
    assert list(gray_levels(back.frames)) == list(range(5))


KILLED_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_shards import gray_clip
    from worldsmith.data.shard_writer import ShardWriter
    writer = ShardWriter({out!r}, max_clips_per_shard=2)
    for i in range(3):  # shard 0 is committed after 2 clips, shard 1 is open with 1 clip
        writer.write(gray_clip(f"c{{i}}"))
    print("ready", flush=True)
    sys.stdin.read()  # killed here, never closing the writer
    """
)


def test_killed_writer_leaves_no_complete_shard_and_resumes(tmp_path):
    script = KILLED_WRITER.format(tests=str(REPO / "tests"), out=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO)
    assert proc.stdout.readline().strip() == b"ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    names = sorted(os.listdir(tmp_path))
    assert [n for n in names if n.endswith(".tar")] == ["part-000000.tar"]
    assert any(n.startswith(".part-000001.tar.") and n.endswith(".tmp") for n in names)
    assert [r["key"] for r in read_manifest_rows(tmp_path)] == ["c0", "c1"]
    assert [c.key for c in iter_shard(tmp_path / "part-000000.tar")] == ["c0", "c1"]

    with ShardWriter(tmp_path, max_clips_per_shard=2) as writer:  # run the same job again
        done = {r["key"] for r in read_manifest_rows(tmp_path)}
        for i in range(4):
            if f"c{i}" not in done:
                writer.write(gray_clip(f"c{i}"))
    names = sorted(os.listdir(tmp_path))
    assert not [n for n in names if n.endswith(".tmp")]  # the killed writer's temp file was removed
    assert [n for n in names if n.endswith(".tar")] == ["part-000000.tar", "part-000001.tar"]
    rows = read_manifest_rows(tmp_path)
    assert [(r["key"], r["shard"]) for r in rows] == [(f"c{i}", f"part-00000{i // 2}.tar") for i in range(4)]


def test_resume_numbering_duplicates_and_manifest_repair(tmp_path):
    with ShardWriter(tmp_path, max_clips_per_shard=1) as writer:
        writer.write(gray_clip("a", t=4))
        writer.write(gray_clip("b", t=4))
        with pytest.raises(DataError, match="'b' is already in"):
            writer.write(gray_clip("b", t=4))  # duplicate inside the session
    with ShardWriter(tmp_path, max_clips_per_shard=1) as writer:
        with pytest.raises(DataError, match="'a' is already in"):
            writer.write(gray_clip("a", t=4))  # duplicate of an earlier session's shard
        writer.write(gray_clip("c", t=4))
    with ShardWriter(tmp_path, prefix="extra") as writer:
        writer.write(gray_clip("d", t=4))
    assert [p.name for p in list_shards(tmp_path)] == ["extra-000000.tar"] + [f"part-00000{i}.tar" for i in range(3)]
    assert [r["key"] for r in read_manifest_rows(tmp_path)] == ["a", "b", "c", "d"]
    written = read_manifest(tmp_path)

    (tmp_path / "manifest.parquet").unlink()  # a lost manifest is rebuilt from the shards' headers
    rebuild_manifest(tmp_path)
    rebuilt = read_manifest(tmp_path)
    assert sorted(rebuilt.to_pylist(), key=lambda r: r["key"]) == sorted(written.to_pylist(), key=lambda r: r["key"])
    (tmp_path / "manifest.parquet").unlink()
    with ShardWriter(tmp_path) as writer:  # a writer also indexes shards missing from the manifest
        assert writer.num_clips == 4
    assert sorted(r["key"] for r in read_manifest_rows(tmp_path)) == ["a", "b", "c", "d"]
    (tmp_path / "part-000001.tar").unlink()
    with pytest.raises(DataError, match="lists shards missing"):
        ShardWriter(tmp_path)


def test_exceptions_inside_the_writer(tmp_path, monkeypatch):
    with pytest.raises(RuntimeError):  # an error between writes keeps what was written
        with ShardWriter(tmp_path / "kept") as writer:
            writer.write(gray_clip("a", t=4))
            raise RuntimeError("caller failed")
    assert [r["key"] for r in read_manifest_rows(tmp_path / "kept")] == ["a"]


    real_add = shard_writer._OpenShard.add

    def failing_add(self, name, data):
        if name == "b.actions.npy":
            raise KeyboardInterrupt
        real_add(self, name, data)

    monkeypatch.setattr(shard_writer._OpenShard, "add", failing_add)
    with pytest.raises(KeyboardInterrupt):  # interrupted half way through a clip: the open shard is discarded
        with ShardWriter(tmp_path / "torn") as writer:
            writer.write(gray_clip("a", t=4))
            writer.write(gray_clip("b", t=4))
    assert os.listdir(tmp_path / "torn") == [".shardwriter.lock"]


def test_one_writer_per_directory(tmp_path):
    with ShardWriter(tmp_path):
        with pytest.raises(DataError, match="another ShardWriter"):
            ShardWriter(tmp_path)
    with ShardWriter(tmp_path):  # released on close
        pass
    writer = ShardWriter(tmp_path)
    writer.close()
    with pytest.raises(DataError, match="closed"):
        writer.write(gray_clip("a", t=3))


def _write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_bad_samples_and_corrupt_shards(tmp_path, caplog):
    with ShardWriter(tmp_path / "good") as writer:
        for key in ("a", "b", "c"):
            writer.write(gray_clip(key, t=4))
    with tarfile.open(tmp_path / "good" / "part-000000.tar") as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar]
    no_mp4 = [(n, d) for n, d in members if n != "b.mp4"]
    _write_tar(tmp_path / "no_mp4.tar", no_mp4)
    with pytest.raises(DataError, match="sample b in .* lacks its .json or .mp4"):
        list(iter_shard(tmp_path / "no_mp4.tar"))
    stats = ReadStats()
    assert [c.key for c in iter_shard(tmp_path / "no_mp4.tar", strict=False, stats=stats)] == ["a", "c"]
    assert stats.skipped == 1 and "lacks its .json or .mp4" in caplog.text

    bad_video = [(n, b"not a video" if n == "a.mp4" else d) for n, d in members]
    _write_tar(tmp_path / "bad_video.tar", bad_video)
    with pytest.raises(DataError, match="a.mp4|mp4 does not decode"):
        list(iter_shard(tmp_path / "bad_video.tar"))
    assert [c.key for c in iter_shard(tmp_path / "bad_video.tar", strict=False)] == ["b", "c"]

    raw = (tmp_path / "good" / "part-000000.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(raw[: len(raw) // 2])
    stats = ReadStats()
    kept = [c.key for c in iter_shard(tmp_path / "cut.tar", strict=False, stats=stats)]
    assert kept and kept == ["a", "b", "c"][: len(kept)] and stats.skipped == 1
    with pytest.raises(DataError, match="cut.tar is corrupt"):
        list(iter_shard(tmp_path / "cut.tar"))
    with tarfile.open(tmp_path / "good" / "part-000000.tar") as tar:
        end = (tar.getmembers(), tar.offset)[1]  # where the end-of-archive blocks start
    for cut in range(0, end + 2 * 512, 256):  # a shard cut anywhere is reported, never passes for complete
        (tmp_path / "cut.tar").write_bytes(raw[:cut])
        stats = ReadStats()
        keys = [s["__key__"] for s in iter_samples(tmp_path / "cut.tar", stats=stats)]
        assert keys == ["a", "b", "c"][: len(keys)] and len(keys) < 3 and stats.skipped == 1, cut
    (tmp_path / "junk.tar").write_bytes(b"junk" * 300)
    with pytest.raises(DataError, match="junk.tar is corrupt"):
        list(iter_samples(tmp_path / "junk.tar", strict=True))

    pickled = io.BytesIO()
    np.save(pickled, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    evil = [(n, pickled.getvalue() if n == "a.frame_id.npy" else d) for n, d in members]
    _write_tar(tmp_path / "evil.tar", evil)
    sample = next(iter_samples(tmp_path / "evil.tar"))
    with pytest.raises(DataError, match="frame_id.npy is not a readable"):
        load_array(sample, "frame_id")
    with pytest.raises(DataError, match="has no array 'speed'"):
        load_array(sample, "speed")
    assert decode_clip(sample, arrays=["actions"]).arrays["actions"].shape == (3, 2)


def test_user_errors_are_clear(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        list_shards(tmp_path / "nowhere")
    with pytest.raises(DataError, match="holds no .tar shards"):
        list_shards(tmp_path)
    with pytest.raises(DataError, match="no .tar shards match"):
        list_shards(str(tmp_path / "*.tar"))
    with pytest.raises(DataError, match="no manifest at"):
        read_manifest(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        list(iter_shard(tmp_path / "missing.tar"))
    with pytest.raises(ConfigError, match="prefix"):
        ShardWriter(tmp_path, prefix="a.b")
    bad = gray_clip("x", t=3)
    bad.arrays["tags"] = np.array(["a", None, "c"], dtype=object)
    with ShardWriter(tmp_path) as writer, pytest.raises(DataError, match="dtype object"):
        writer.write(bad)
    bad = gray_clip("y", t=3)
    bad.meta["thing"] = object()
    with ShardWriter(tmp_path) as writer, pytest.raises(DataError, match="not JSON-serialisable"):
        writer.write(bad)
    with ShardWriter(tmp_path) as writer, pytest.raises(DataError, match="expects a Clip"):
        writer.write({"key": "z"})


def test_list_shards_forms(tmp_path):
    with ShardWriter(tmp_path / "set", max_clips_per_shard=1) as writer:
        for key in "abc":
            writer.write(gray_clip(key, t=3))
    expected = [tmp_path / "set" / f"part-00000{i}.tar" for i in range(3)]
    assert list_shards(tmp_path / "set") == expected
    assert list_shards(str(tmp_path / "set" / "part-*.tar")) == expected
    assert list_shards(tmp_path / "set" / "manifest.parquet") == expected
    assert list_shards(expected[1]) == [expected[1]]


def test_inspect_statistics_and_contact_sheet(tmp_path):
    with ShardWriter(tmp_path / "set", max_clips_per_shard=2) as writer:
        for i in range(3):
            writer.write(textured_clip(f"k{i}", t=6 + i))
        writer.write(gray_clip("g0", t=20, size=(32, 48)))
    stats = inspect(tmp_path / "set", tmp_path / "sheet.png")
    assert (stats["shards"], stats["clips"], stats["bad_samples"], stats["manifest"]) == (2, 4, 0, "ok")
    assert stats["total_frames"] == 6 + 7 + 8 + 20
    assert stats["total_duration_s"] == pytest.approx(21 / 12.5 + 2.0)
    assert stats["resolution"] == {"32x32": 3, "32x48": 1} and stats["fps"] == {12.5: 3, 10.0: 1}
    assert stats["length"] == {"4-7": 2, "8-15": 1, "16-31": 1} and stats["views"] == {3: 3, 1: 1}
    assert stats["arrays"]["actions"]["clips"] == 4 and stats["arrays"]["c2w"] == {"clips": 3, "shape": [6, 4, 4]}
    assert stats["meta"]["world"] == {"pattern": 3, "gray": 1}
    assert stats["captions"]["k0"] == "a pattern k0"
    assert stats["contact_sheet"] == str(tmp_path / "sheet.png")

    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.width > 6 * 32 and sheet.height > 4 * 32  # one row of frames per clip
    text = format_stats(stats)
    assert "4 clips in 2 shards" in text and "32x48: 1" in text and "manifest        ok" in text

    (tmp_path / "set" / "part-000001.tar").unlink()
    stats = inspect(str(tmp_path / "set" / "*.tar"), sheet_clips=0)
    assert stats["clips"] == 2 and stats["contact_sheet"] is None
    assert inspect(tmp_path / "set", sheet_clips=0)["manifest"].startswith("out of date: 0 clips not listed, 2 listed")


def test_shards_roll_over_by_size(tmp_path):
    _, members = encode_clip(gray_clip("x", t=6))
    one_clip = sum(512 + -(-len(data) // 512) * 512 for _, data in members)  # tar: header + data in 512-byte blocks
    with ShardWriter(tmp_path, max_bytes=int(2.5 * one_clip)) as writer:  # two clips fit, a third does not
        for key in "abcde":
            writer.write(gray_clip(key, t=6))
    shards = {r["key"]: r["shard"] for r in read_manifest_rows(tmp_path)}
    assert shards == {"a": "part-000000.tar", "b": "part-000000.tar", "c": "part-000001.tar",
                      "d": "part-000001.tar", "e": "part-000002.tar"}  # fmt: skip
    with ShardWriter(tmp_path / "tiny", max_bytes=1) as writer:  # a clip larger than max_bytes gets its own shard
        for key in "ab":
            writer.write(gray_clip(key, t=3))
    assert len(list_shards(tmp_path / "tiny")) == 2
