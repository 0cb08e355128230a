"""One long source split across workers (curate/segments.py): the same detector outputs, shots and clips as one task."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from curate_clips import cut_with_index
from test_curate_engines import assert_same_manifest, fast_config, manifest

from worldsmith.curate.pipeline import run_curation
from worldsmith.curate.segments import plan_segments
from worldsmith.curate.sources import Source
from worldsmith.curate.split import (
    SplitConfig,
    _detect,
    _small_frames,
    detector_signals,
    detector_size,
    split_source,
)
from worldsmith.curate.synth import ShotSpec, make_multishot
from worldsmith.curate.tasks import detect_task, plan_split, split_task
from worldsmith.io.encode import encode_mp4
from worldsmith.io import video as video_module
from worldsmith.io.video import decode, iter_frames, probe


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """760 frames at 25 fps: a cut exactly at the first segment edge (250) and a dissolve across the second (500)."""
    plan = [ShotSpec("moving", 250), ShotSpec("pan", 235, transition="dissolve", transition_frames=20),
            ShotSpec("static", 255)]  # fmt: skip
    return make_multishot(tmp_path_factory.mktemp("seg") / "long.mp4", plan, size=(96, 54), fps=25.0, seed=3)


@pytest.fixture(scope="module")
def slow_video(tmp_path_factory):
    """160 frames at 10 fps (TransNetV2 sees every frame twice): a cut at the segment edge 50 (windows of 100)."""
    plan = [ShotSpec("moving", 50), ShotSpec("zoom", 110)]
    return make_multishot(tmp_path_factory.mktemp("seg") / "slow.mp4", plan, size=(96, 54), fps=10.0, seed=4)


def _segmented(src: Source, cfg: SplitConfig, work: Path, segment_s: float) -> dict:
    """What the local engine does with a segmented source, in this process and in task order."""
    state = plan_split(src, cfg, str(work), segment_s)
    assert state is not None, "the source should be split in segments"
    result, queue = None, list(state.next_tasks())
    while queue:
        kind, index, fn, args = queue.pop(0)
        result = state.done(kind, index, fn(*args)) or result
        queue += state.next_tasks()
    return result


def _whole_signals(path: str, cfg: SplitConfig) -> dict[str, np.ndarray]:
    info = probe(path)
    return detector_signals(iter_frames(path, size=detector_size(cfg, info)), cfg, info.fps)


def test_plan_segments_cover_the_video_at_window_steps():
    cfg = SplitConfig()
    assert plan_segments(760, 25.0, cfg, 10.0) == [(0, 250), (250, 500), (500, 760)]
    assert plan_segments(499, 25.0, cfg, 10.0) == [(0, 499)]  # under two segments: one task
    assert plan_segments(90000, 25.0, cfg, 60.0)[:2] == [(0, 1500), (1500, 3000)]
    assert plan_segments(760, 25.0, cfg, 0.0) == [(0, 760)]
    adaptive = dataclasses.replace(cfg, detector="adaptive")
    assert plan_segments(100, 10.0, adaptive, 3.0) == [(0, 30), (30, 60), (60, 100)]


@pytest.mark.parametrize("video", ["long_video", "slow_video"])
def test_transnet_segments_give_the_whole_videos_predictions_bit_for_bit(video, request, one_torch_thread):
    truth = request.getfixturevalue(video)
    info = probe(truth["path"])
    cfg = SplitConfig() if info.fps == 25 else SplitConfig(transnet_window=100)
    segments = plan_segments(info.num_frames, info.fps, cfg, 10.0 if info.fps == 25 else 5.0)
    assert len(segments) >= 3
    parts = [detect_task(Source(truth["path"], truth["path"]), cfg, a, b, info.num_frames)["signals"]
             for a, b in segments]  # fmt: skip
    whole = _whole_signals(truth["path"], cfg)
    for key in ("single", "many"):
        np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), whole[key])


def test_adaptive_segments_give_the_whole_videos_statistics(long_video):
    cfg, n = SplitConfig(detector="adaptive"), probe(long_video["path"]).num_frames
    parts = [detect_task(Source(long_video["path"], long_video["path"]), cfg, a, b, n)["signals"]
             for a, b in [(0, 100), (100, 480), (480, n)]]  # fmt: skip
    whole = _whole_signals(long_video["path"], cfg)
    for key in ("score", "back", "fwd", "value"):
        np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), whole[key])


@pytest.mark.parametrize("detector", ["transnetv2", "adaptive"])
def test_a_segmented_split_equals_one_task(detector, long_video, tmp_path, one_torch_thread):
    cfg = SplitConfig(detector=detector, min_clip_s=1.0, max_clip_s=6.0)
    src = Source(long_video["path"], long_video["path"])
    one = split_task(src, cfg, str(tmp_path / "one"))
    seg = _segmented(src, cfg, tmp_path / "seg", 10.0 if detector == "transnetv2" else 7.0)
    assert not one["bad"] and not seg["bad"] and seg["info"] == one["info"]

    def rows(result):
        return [(r.key, r.start_frame, r.end_frame, r.shot, r.kept, r.dropped_by) for r in result["records"]]

    assert rows(seg) == rows(one) and sum(r.kept for r in one["records"]) >= 4
    assert any(r.start_frame < 250 < r.end_frame for r in one["records"]) is False  # the cut at the segment edge
    for a, b in zip(one["records"], seg["records"]):
        if a.kept:
            np.testing.assert_array_equal(decode(a.path), decode(b.path))
    assert seg["cpu_seconds"] > 0 and seg["seconds"] > 0


def test_a_damaged_long_file_falls_back_to_one_task_and_is_reported(long_video, tmp_path, one_torch_thread):
    cut = cut_with_index(long_video["path"], tmp_path / "cut.mp4", 2 / 3)  # the index lists every frame
    src, cfg = Source(str(cut), str(cut)), SplitConfig(detector="adaptive")
    result = _segmented(src, cfg, tmp_path / "seg", 7.0)
    assert result["records"] == [] and "truncated or corrupt" in result["bad"]
    assert result["bad"] == split_task(src, cfg, str(tmp_path / "one"))["bad"]


def test_iter_frames_from_a_start_frame_equals_decoding_from_zero(long_video, tmp_path):
    frames = decode(long_video["path"])
    for start in (0, 1, 249, 250, 600, len(frames) - 1):
        got = np.stack(list(iter_frames(long_video["path"], start=start)))
        np.testing.assert_array_equal(got, frames[start:])
    mkv = tmp_path / "b.mkv"  # no sample table; B-frames from libx264's default
    encode_mp4(iter(frames[:120]), mkv, 25.0, preset="medium")
    np.testing.assert_array_equal(np.stack(list(iter_frames(mkv, start=70))), decode(mkv)[70:])
    assert list(iter_frames(long_video["path"], start=10_000)) == []


@pytest.mark.parametrize("fail_after", [0, 5])
def test_iter_frames_falls_back_to_decoding_from_zero_when_a_seek_goes_wrong(long_video, monkeypatch, fail_after):
    frames = decode(long_video["path"])
    real = video_module._wanted_frames

    def broken(src, rank, wanted):  # a frame that "does not come out after the seek", before or after some did
        for i, frame in enumerate(real(src, rank, wanted)):
            if i == fail_after:
                raise LookupError("frame missing after the seek")
            yield frame

    monkeypatch.setattr(video_module, "_wanted_frames", broken)
    np.testing.assert_array_equal(np.stack(list(iter_frames(long_video["path"], start=300))), frames[300:])


def test_curate_splits_a_long_source_across_workers_with_the_same_outputs(long_video, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "long.mp4").write_bytes(Path(long_video["path"]).read_bytes())
    runs = {}
    for segment_s in (0.0, 7.0):
        out = tmp_path / f"out{segment_s:g}"
        cfg = fast_config(workers=2, segment_s=segment_s)
        runs[segment_s] = out, run_curation(folder, out, cfg)
    assert_same_manifest(runs[0.0][0], runs[7.0][0])
    assert runs[7.0][1]["kept"] == runs[0.0][1]["kept"] >= 2 and len(manifest(runs[7.0][0])) >= 2
    src = Source(str(folder / "long.mp4"), str(folder / "long.mp4"))
    assert len(plan_split(src, fast_config().split, str(tmp_path), 7.0).segments) == 4  # it was split in segments
    with pytest.raises(Exception, match="segment_s must be >= 0"):
        fast_config(segment_s=-1)


def test_split_source_cuts_only_the_clips_that_start_in_its_segment(long_video, tmp_path):
    cfg = SplitConfig(detector="adaptive", min_clip_s=1.0, max_clip_s=6.0)
    info = probe(long_video["path"])
    shots = _detect(_small_frames(long_video["path"], cfg, info), cfg, info.fps)
    part = split_source(long_video["path"], cfg, tmp_path, shots=shots, own=(250, 500))
    assert part and all(250 <= r.start_frame < 500 for r in part)
    whole = split_source(long_video["path"], cfg, tmp_path / "all")
    assert [r.key for r in part] == [r.key for r in whole if 250 <= r.start_frame < 500]
