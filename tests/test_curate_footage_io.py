"""Curation inputs as real footage comes: B-frame reordering, misnamed images, dangling links, non-square pixels.

Every video is generated here (PyAV / ``worldsmith.io.encode``) in tmp_path; nothing is downloaded.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from worldsmith.curate import split, synth
from worldsmith.curate.shard import ShardConfig, bucket_of, write_shards
from worldsmith.curate.sources import resolve_input
from worldsmith.data.manifest import read_manifest_rows
from worldsmith.errors import VideoError
from worldsmith.io import video
from worldsmith.io.source import VideoInput
from worldsmith.io.timing import is_irregular


def _write_bframes(path, frames: np.ndarray, fps: int = 25, pts=None) -> None:
    """H.264 with up to 3 B-frames in a pyramid: decode order differs from presentation order."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"bf": "3", "b-adapt": "0", "b-pyramid": "normal", "crf": "28", "preset": "veryfast"}
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = i if pts is None else pts[i]
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def test_constant_rate_with_b_frames_is_not_variable(tmp_path):
    frames = synth.render_shot("pan", 300, (64, 48), seed=1)  # smooth motion: x264 really uses B-frames
    path = tmp_path / "bframes.mp4"
    _write_bframes(path, frames)
    with av.open(str(path)) as c:
        packets = [p.pts for p in c.demux(c.streams.video[0]) if p.size]
    assert packets[90:150] != sorted(packets[90:150])  # reordered where probe's head window ends
    info = video.probe(path)
    assert not info.variable_fps and info.fps == 25 and info.num_frames == 300
    for limit in range(90, 150):  # the window cut at every phase of the reordering (whatever x264 chose)
        with VideoInput(path) as src:
            assert not is_irregular(src.head(limit)[1]), limit
    assert not video.probe(path.read_bytes()).variable_fps
    uneven = tmp_path / "uneven.mp4"  # the same B-frames with really uneven timestamps is still seen
    _write_bframes(uneven, frames[:200], pts=[i + i // 7 for i in range(200)])
    assert video.probe(uneven).variable_fps


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((32, 48, 3), 90, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("tail", ["zeros", "half", "mp4"])
def test_png_signature_in_an_mp4_is_one_clear_error(tmp_path, tail):
    png = _png_bytes()
    body = {"zeros": png[:8] + bytes(500), "half": png[: len(png) // 2],
            "mp4": png[:8] + video.encode_mp4_bytes(np.zeros((3, 16, 16, 3), np.uint8), 25)}[tail]  # fmt: skip
    path = tmp_path / "clip.mp4"
    path.write_bytes(body)
    with pytest.raises(VideoError, match=r"clip\.mp4 is a corrupt png image: no frame of it decodes"):
        video.probe(path)
    with pytest.raises(VideoError, match="corrupt png image"):
        video.probe(body)
    whole = tmp_path / "renamed.mp4"  # a whole PNG under a video name is still what it is: a one-frame image
    whole.write_bytes(png)
    info = video.probe(whole)
    assert info.is_image and (info.width, info.height) == (48, 32)


def test_dangling_links_and_special_files_are_listed_with_reasons(tmp_path):
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    video.encode_mp4(np.zeros((2, 16, 16, 3), np.uint8), root / "good.mp4", 25)
    os.symlink(root / "gone.mp4", root / "sub" / "dangling.mp4")
    os.symlink(root / "good.mp4", root / "alias.mp4")  # a working link is a source like any file
    os.symlink(root / "loop.mp4", root / "loop.mp4")
    os.mkfifo(root / "pipe.mp4")
    sources, bad = resolve_input(root)
    assert [os.path.basename(s.path) for s in sources] == ["alias.mp4", "good.mp4"]
    reasons = {os.path.relpath(b.path, root): b.reason for b in bad}
    assert set(reasons) == {"sub/dangling.mp4", "loop.mp4", "pipe.mp4"}
    assert reasons["sub/dangling.mp4"].startswith(f"it is a symbolic link to {root / 'gone.mp4'}, which does not")
    assert "fix or remove the link" in reasons["loop.mp4"] and "not a regular file" in reasons["pipe.mp4"]
    globbed, bad = resolve_input(f"{root}/**/*.mp4")
    assert len(globbed) == 2 and {os.path.basename(b.path) for b in bad} == {"dangling.mp4", "loop.mp4", "pipe.mp4"}
    only, bad = resolve_input(f"{root}/sub/*.mp4")  # a glob matching nothing but a dangling link: not "no files"
    assert only == [] and [os.path.basename(b.path) for b in bad] == ["dangling.mp4"]


def _write_anamorphic(path, frames: np.ndarray, stored_width: int, sar: Fraction) -> None:
    """Frames squeezed to ``stored_width`` and tagged with a sample aspect ratio, keyframes every 30 frames."""
    squeezed = [cv2.resize(f, (stored_width, f.shape[0]), interpolation=cv2.INTER_AREA) for f in frames]
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = stored_width, frames.shape[1], "yuv420p"
        stream.codec_context.sample_aspect_ratio = sar
        stream.options = {"g": "30", "keyint_min": "30", "sc_threshold": "0", "crf": "18"}
        for i, image in enumerate(squeezed):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def test_non_square_pixels_are_decoded_stored_and_bucketed_at_display_size(tmp_path):
    # 176x144 stored at 16:11 is the 704x576 PAL widescreen case in small: displayed 256x144 (16:9), not 11:9
    plan = [synth.ShotSpec("moving", 60), synth.ShotSpec("pan", 60)]
    frames = np.stack(list(synth.render_plan(plan, (256, 144), seed=1)[0]))
    path = tmp_path / "pal wide.mp4"
    _write_anamorphic(path, frames, 176, Fraction(16, 11))
    info = video.probe(path)
    assert (info.width, info.height, info.sample_aspect) == (256, 144, pytest.approx(16 / 11))
    decoded = video.decode(path)
    assert decoded.shape == (120, 144, 256, 3) and _psnr(decoded, frames) > 27  # un-squeezed, not just resized
    assert np.array_equal(video.decode(path, start=45, end=50), decoded[45:50])  # the seeking path too
    assert video.decode(path, size=72).shape == (120, 72, 128, 3)
    assert next(video.iter_frames(path)).shape == (144, 256, 3)
    for copy in (True, False):  # remuxed clips keep the tag; re-encoded ones are square-pixel frames
        cfg = split.SplitConfig(detector="adaptive", min_clip_s=1.0, stream_copy=copy)
        records = split.split_source(path, cfg, tmp_path / f"clips{copy}")
        assert [(r.start_frame, r.end_frame, r.width, r.height) for r in records] == [(0, 60, 256, 144),
                                                                                   (60, 120, 256, 144)]  # fmt: skip
        assert [r.meta["copied"] for r in records] == [copy, copy]
        assert all(video.decode(r.path).shape == (60, 144, 256, 3) for r in records)
    assert {bucket_of(r, ShardConfig()) for r in records} == {"res_144/ar_16x9/frames_32-64"}
    write_shards(records, tmp_path / "out", ShardConfig())
    rows = read_manifest_rows(tmp_path / "out" / "res_144" / "ar_16x9" / "frames_32-64")
    assert [(r["width"], r["height"]) for r in rows] == [(256, 144), (256, 144)]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2)))
