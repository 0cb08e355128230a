"""Per-clip filters: each drops the clips made to fail it and keeps the rest; process_clip end to end."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from curate_clips import camera_clip, cartoon, screen, with_text, write, write_mjpeg
from worldsmith import config
from worldsmith.curate.dedup import DedupConfig
from worldsmith.curate.motion import MotionConfig, clip_motion, flow_track, motion_scores, motion_verdict, scan_native
from worldsmith.curate.process import AnnotateConfig, FilterConfig, decode_working, process_clip
from worldsmith.curate.quality import QualityConfig, quality_scores, quality_verdict
from worldsmith.curate.record import ClipRecord, clip_key
from worldsmith.curate.synth import render_shot
from worldsmith.curate.text_overlay import TextOverlayConfig, det_model_path, detector, text_scores, text_verdict
from worldsmith.curate.video_type import ImageNetTypeClassifier, VideoTypeConfig, default_classifier, video_type_verdict
from worldsmith.errors import ConfigError, VideoError
from worldsmith.io.video import encode_mp4

FPS = 12


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """name -> path of small 160x120 clips, 3 s at 12 fps, each made to pass or fail one filter."""
    d = tmp_path_factory.mktemp("clips")
    pan = camera_clip("pan_right", frames=36)
    rng = np.random.default_rng(5)
    made = {
        "pan": (pan, 20), "static": (camera_clip("static", frames=36), 20),
        "shaky": (camera_clip("shaky", frames=36, speed=3.0), 20), "tilt": (camera_clip("tilt_up", frames=36), 20),
        "blurry": (np.stack([cv2.GaussianBlur(f, (0, 0), 2.5) for f in pan]), 20),
        "dark": ((pan * 0.12).astype(np.uint8), 20),
        "bright": (np.clip(pan.astype(np.int32) * 2.5 + 60, 0, 255).astype(np.uint8), 20),
        "noisy": (np.clip(pan + rng.normal(0, 25, pan.shape), 0, 255).astype(np.uint8), 20),
        "blocky": (pan, 51), "text": (with_text(pan), 20),
        "text_brief": (np.concatenate([with_text(pan[:6]), pan[6:]]), 20),
        "screen": (screen(frames=36), 20), "cartoon": (cartoon(frames=36), 20),
    }  # fmt: skip
    paths = {name: write(frames, d / f"{name}.mp4", FPS, crf=crf) for name, (frames, crf) in made.items()}
    paths["pan_mjpeg"] = write_mjpeg(pan, d / "pan_mjpeg.avi", FPS)
    paths["static_mjpeg"] = write_mjpeg(camera_clip("static", frames=36), d / "static_mjpeg.avi", FPS)
    return paths


def working(path):
    return decode_working(path, FPS, FilterConfig())


def record(path: str, frames: int = 36, caption: str = "") -> ClipRecord:
    return ClipRecord(clip_key(path, 0, frames), path, 0, frames, 0.0, frames / FPS, FPS, 160, 120, path=path,
                      caption=caption)


# ---------------------------------------------------------------------------------------------------------------
# quality
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, score", [("pan", None), ("tilt", None), ("blurry", "sharpness"),
                                         ("dark", "brightness"), ("bright", "brightness"), ("noisy", "noise"),
                                         ("blocky", "blockiness")])
def test_quality_drops_the_clip_made_to_fail_it(clips, name, score):
    cfg = QualityConfig()
    frames, _ = working(clips[name])
    scores = quality_scores(frames, scan_native(clips[name]).lumas, cfg)
    assert set(scores) == {"sharpness", "brightness", "clipped", "noise", "blockiness"}
    reason = quality_verdict(scores, cfg)
    if score is None:
        assert reason is None, reason
    else:
        assert reason is not None and f" {score} " in reason and "=" in reason, reason


# ---------------------------------------------------------------------------------------------------------------
# motion
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, expect", [("pan", None), ("tilt", None), ("static", "min_motion"),
                                          ("shaky", "max_shakiness"), ("pan_mjpeg", None),
                                          ("static_mjpeg", "min_motion")])
def test_motion_filter(clips, name, expect):
    cfg = MotionConfig()
    frames, rate = working(clips[name])
    scan = scan_native(clips[name])
    track = clip_motion(scan, frames, rate, cfg)
    assert track.source == ("flow" if name.endswith("mjpeg") else "mvs")  # H.264 vectors, else optical flow
    reason = motion_verdict(motion_scores(track, cfg), cfg)
    assert (reason is None) if expect is None else (expect in reason), reason


def test_motion_vectors_and_flow_agree(clips):
    """Both sources measure the same pan speed (2 px/frame at 12 fps on a 200 px diagonal = 0.12 diag/s)."""
    cfg = MotionConfig()
    frames, rate = working(clips["pan"])
    mvs = motion_scores(scan_native(clips["pan"]).track, cfg)
    flow = motion_scores(flow_track(frames, rate, cfg), cfg)
    assert mvs["motion"] == pytest.approx(0.12, rel=0.15)
    assert flow["motion"] == pytest.approx(0.12, rel=0.2)
    assert mvs["shakiness"] < 0.2 * cfg.max_shakiness and flow["shakiness"] < 0.2 * cfg.max_shakiness
    shaky_frames, _ = working(clips["shaky"])
    assert motion_scores(flow_track(shaky_frames, rate, cfg), cfg)["shakiness"] > cfg.max_shakiness


def test_unreadable_clip_is_a_video_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(VideoError, match="bad.mp4"):
        scan_native(bad)


# ---------------------------------------------------------------------------------------------------------------
# text overlay
# ---------------------------------------------------------------------------------------------------------------
def test_text_detector_uses_the_shipped_model_and_never_downloads(monkeypatch, clips):
    import socket

    import rapidocr
    import rapidocr.utils.download_file as download

    def no_network(*args, **kwargs):
        raise AssertionError("the text detector tried to reach the network")

    monkeypatch.setattr(download.DownloadFile, "run", staticmethod(no_network))
    monkeypatch.setattr(socket.socket, "connect", no_network)
    detector.cache_clear()  # build the engine afresh, under the patches
    assert det_model_path().is_relative_to(rapidocr.__path__[0])
    frames, _ = working(clips["text"])
    assert text_scores(frames[:2], TextOverlayConfig(frames=2))["text_area"] > 0


@pytest.mark.parametrize("name, dropped", [("text", True), ("pan", False), ("text_brief", False)])
def test_text_overlay_filter(clips, name, dropped):
    cfg = TextOverlayConfig()
    frames, _ = working(clips[name])
    scores = text_scores(frames, cfg)
    reason = text_verdict(scores, cfg)
    assert (reason is not None) == dropped, scores
    if dropped:
        assert "max_area" in reason and scores["text_persistence"] == 1.0
    if name == "text_brief":  # big text for 0.5 s of 3 s: seen, but not persistent
        assert scores["text_area"] > cfg.max_area and scores["text_persistence"] < cfg.max_persistence
        assert scores["text_overlay"] == 0.0


def test_text_like_blobs_that_move_are_not_an_overlay():
    """Clusters of rectangles on a checkerboard (the split stage's synthetic 'pan' shot, seed 2) fool the detector
    in some frames, at different places: not text that stays."""
    frames = np.stack(list(render_shot("pan", 8, size=(160, 120), seed=2)))
    cfg = TextOverlayConfig()
    scores = text_scores(frames, cfg)
    assert scores["text_area"] > cfg.max_area  # the detector does see "text" ...
    assert scores["text_overlay"] < cfg.max_area and text_verdict(scores, cfg) is None  # ... not at one place


# ---------------------------------------------------------------------------------------------------------------
# video type
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, winner, dropped", [("pan", "natural", False), ("screen", "screen_content", True),
                                                   ("cartoon", "graphics", False)])
def test_video_type_filter(one_torch_thread, clips, name, winner, dropped):
    cfg = VideoTypeConfig()
    frames, _ = working(clips[name])
    probs = ImageNetTypeClassifier(cfg.frames)(frames)
    assert max(probs, key=probs.get) == winner, probs
    assert sum(probs.values()) == pytest.approx(1.0)
    reason = video_type_verdict(probs, cfg)
    assert (reason is not None) == dropped, reason
    only_natural = video_type_verdict(probs, VideoTypeConfig(denied=[], allowed=["natural"]))
    assert (only_natural is None) == (winner == "natural"), only_natural


# ---------------------------------------------------------------------------------------------------------------
# process_clip end to end
# ---------------------------------------------------------------------------------------------------------------
def test_process_clip_keeps_a_good_clip_with_scores_tags_caption_and_signature(one_torch_thread, clips):
    rec = process_clip(record(clips["pan"]), FilterConfig(), AnnotateConfig(), DedupConfig())
    assert rec.kept, rec.reason
    for score in ("sharpness", "brightness", "noise", "blockiness", "motion", "shakiness", "text_area",
                  "text_persistence", "type_natural"):
        assert isinstance(rec.scores[score], float)
    assert rec.tags["camera_motion"] == "pan" and rec.tags["camera_direction"] == "right"
    assert rec.caption_source == "offline" and "panning right" in rec.caption
    assert rec.phash and all(isinstance(h, int) for h in rec.phash)
    assert np.linalg.norm(rec.embedding) == pytest.approx(1.0, abs=1e-4)
    assert rec.meta["motion_source"] == "mvs"


def test_process_clip_keeps_a_source_caption(one_torch_thread, clips):
    rec = process_clip(record(clips["tilt"], caption="A robot arm lifts a cube."), FilterConfig(), AnnotateConfig(),
                       DedupConfig())
    assert rec.kept and rec.caption == "A robot arm lifts a cube." and rec.caption_source == "source"
    assert rec.tags["camera_motion"] == "tilt"


@pytest.mark.parametrize("name, stage, score", [("static", "motion", "min_motion"), ("dark", "quality", "brightness"),
                                                ("text", "text_overlay", "max_area"),
                                                ("screen", "video_type", "screen_content")])
def test_process_clip_drops_on_the_first_failure_with_a_reason(one_torch_thread, clips, name, stage, score):
    filters = FilterConfig()
    filters.text.enabled = name != "screen"  # a page of text is also dropped by the text filter, which runs first
    rec = process_clip(record(clips[name]), filters, AnnotateConfig(), None)
    assert rec.dropped_by == stage and score in rec.reason and rec.reason.endswith(".")
    assert not rec.caption and not rec.phash and not rec.tags  # nothing after the failing filter
    assert "sharpness" in rec.scores  # the filters before it stored their scores


def test_process_clip_runs_a_custom_type_classifier_and_skips_disabled_filters(clips):
    seen = []

    def classify(frames):
        seen.append(frames.shape)
        return {"robot": 0.9, "natural": 0.1}

    filters = FilterConfig()
    filters.text.enabled = False
    filters.video_type.denied = ["robot"]
    filters.video_type.min_prob = 0.5
    rec = process_clip(record(clips["pan"]), filters, AnnotateConfig(), None, type_classifier=classify)
    assert rec.dropped_by == "video_type" and "type_robot 0.90" in rec.reason
    assert seen and seen[0][1:] == (120, 160, 3)
    assert "text_area" not in rec.scores and rec.scores["type_robot"] == pytest.approx(0.9)


def test_bad_settings_are_one_config_error():
    with pytest.raises(ConfigError, match="work_fps > 0"):
        config.merge(FilterConfig(), {"work_fps": 0})
    with pytest.raises(ConfigError, match="frames >= 1"):
        config.merge(FilterConfig(), {"text": {"frames": 0}})
    with pytest.raises(ConfigError, match="unknown video-type classifier"):
        default_classifier(VideoTypeConfig(classifier="clip"))
    assert config.merge(FilterConfig(), {"motion": {"min_motion": 0.02}}).motion.min_motion == 0.02


@pytest.mark.parametrize("kind", ["static", "moving", "pan", "fast_pan", "zoom", "fast_zoom", "shaky"])
def test_motion_filter_on_the_split_stage_synthetic_shots(tmp_path, kind):
    """helper A's generated shots (x264 medium: B-frames, 3 references): static and shaky shots are dropped,
    the others kept."""
    path = tmp_path / f"{kind}.mp4"
    encode_mp4(np.stack(list(render_shot(kind, 36, size=(160, 120), seed=1))), path, FPS)
    cfg = MotionConfig()
    frames, rate = working(str(path))
    reason = motion_verdict(motion_scores(clip_motion(scan_native(path), frames, rate, cfg), cfg), cfg)
    expect = {"static": "min_motion", "shaky": "max_shakiness"}.get(kind)
    assert (reason is None) if expect is None else (expect in reason), reason


def test_motion_beyond_the_encoders_search_range_falls_back_to_flow(tmp_path):
    """A fast pan (about 20 px a frame at 320x240) leaves most of each P frame intra-coded: its few vectors lie,
    so the filter measures optical flow instead."""
    path = tmp_path / "fast_pan.mp4"
    encode_mp4(np.stack(list(render_shot("fast_pan", 36, size=(320, 240), seed=0))), path, FPS)
    scan = scan_native(path)
    assert np.median(scan.coverage) < MotionConfig().min_coverage
    frames, rate = working(str(path))
    track = clip_motion(scan, frames, rate, MotionConfig())
    assert track.source == "flow" and motion_scores(track, MotionConfig())["motion"] > 0.1
