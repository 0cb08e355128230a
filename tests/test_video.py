"""Video I/O: probe, decode (ranges, fps resampling, resize, rotation, VFR), encode, contact sheets, errors.

Every input is made here with PyAV or PIL (tiny sizes, so the whole file runs in seconds).
"""

from __future__ import annotations

import io
import logging
import os
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from PIL import Image

from helpers import write_audio_only
from worldsmith.errors import VideoError
from worldsmith.io import video
from worldsmith.io.encode import encode_mp4_bytes

H, W = 48, 64  # stored frame size of the test clips (macroblock aligned)


def indexed_frames(n: int, h: int = H, w: int = W) -> np.ndarray:
    """uint8 (n, h, w, 3): a smooth moving gradient plus two flat 16x16 patches that encode the frame index."""
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        frames[i, ..., 0] = (xx * 2 + i * 3) % 256
        frames[i, ..., 1] = (yy * 4 + 40) % 256
        frames[i, ..., 2] = (xx + yy + i * 2) % 256
        frames[i, :16, :16] = 16 + 32 * (i // 8)
        frames[i, :16, 16:32] = 16 + 32 * (i % 8)
    return frames


def frame_ids(frames: np.ndarray) -> list[int]:
    """Read back the index patches of decoded (unrotated, unresized) frames."""
    hi = np.round((frames[:, 4:12, 4:12].mean(axis=(1, 2, 3)) - 16) / 32).astype(int)
    lo = np.round((frames[:, 4:12, 20:28].mean(axis=(1, 2, 3)) - 16) / 32).astype(int)
    return (hi * 8 + lo).tolist()


def write_video(dest, frames, *, rate=30, pts=None, time_base=None, gop=None, faststart=False, audio=False,
                codec="libx264", pix_fmt="yuv420p", fmt="mp4"):  # fmt: skip
    """Write a test clip with PyAV directly (explicit timestamps, GOP, audio track...)."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(dest, "w", format=fmt, options=options) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        stream.codec_context.time_base = time_base or Fraction(1, rate)
        if gop:
            stream.codec_context.gop_size = gop
        sound = out.add_stream("aac", rate=16000, layout="mono") if audio else None
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
            frame.pts, frame.time_base = (pts[i] if pts is not None else i), stream.codec_context.time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if sound is not None:
            samples = (0.2 * np.sin(np.arange(16000) / 5.0)).astype(np.float32)[None]
            chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 16000, 0
            out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))


def with_display_matrix(src, dest, *, ccw: int = 0, hflip: bool = False, vflip: bool = False) -> None:
    """Copy the video packets of ``src`` unchanged into ``dest`` and give the stream a display matrix (PyAV:
    counter-clockwise degrees): the very same pictures, only shown turned. Two encodes of the same frames need not
    be bit-identical (x264 with its default mb-tree is not; see ``worldsmith.io.encode.DETERMINISTIC``)."""
    with av.open(str(src)) as inp, av.open(str(dest), "w", format="mp4") as out:
        source = inp.streams.video[0]
        stream = out.add_stream_from_template(source)
        stream.set_display_rotation(ccw, hflip=hflip, vflip=vflip)
        for packet in inp.demux(source):
            if packet.dts is not None:  # the flush packet carries nothing
                packet.stream = stream
                out.mux(packet)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


@pytest.fixture(scope="module")
def clip30(tmp_path_factory) -> str:
    """30 frames at 30 fps with a keyframe every 6 frames, so ranged decodes really seek."""
    path = tmp_path_factory.mktemp("clips") / "clip30.mp4"
    write_video(str(path), indexed_frames(30), gop=6)
    return str(path)


# ---------------------------------------------------------------- encode / probe / decode round trip


def test_round_trip_quality_probe_and_atomic_write(tmp_path):
    frames = indexed_frames(24)
    dest = tmp_path / "out" / "clip.mp4"
    video.encode_mp4(frames, dest, fps=24)
    assert sorted(os.listdir(dest.parent)) == ["clip.mp4"]  # no temporary file left behind
    info = video.probe(dest)
    assert (info.width, info.height, info.num_frames, info.codec, info.rotation) == (W, H, 24, "h264", 0)
    assert info.fps == pytest.approx(24.0) and info.duration == pytest.approx(1.0)
    assert not (info.is_image or info.variable_fps or info.has_audio)
    decoded = video.decode(dest)
    assert decoded.dtype == np.uint8 and decoded.shape == frames.shape
    assert psnr(decoded, frames) > 38
    assert frame_ids(decoded) == list(range(24))


def test_encode_bytes_file_object_and_inputs_agree(tmp_path):
    frames = indexed_frames(8)
    data = video.encode_mp4_bytes(frames, fps=12.5, crf=20, preset="veryfast")
    sink = io.BytesIO()
    video.encode_mp4(iter(list(frames)), sink, fps=12.5, crf=20, preset="veryfast")  # an iterable of frames
    assert sink.getvalue()[4:8] == b"ftyp" and len(sink.getvalue()) > 0
    path = tmp_path / "a.mp4"
    path.write_bytes(data)
    from_path = video.decode(path)
    assert np.array_equal(video.decode(data), from_path)
    assert np.array_equal(video.decode(sink.getvalue()), from_path)
    with open(path, "rb") as f:
        assert video.probe(f).num_frames == 8  # the file position is restored, so the same handle decodes next
        assert np.array_equal(video.decode(f), from_path)
        assert np.array_equal(video.decode(f, start=3), from_path[3:])
    assert video.probe(data).path == "<bytes>" and video.probe(data).fps == pytest.approx(12.5)
    assert video.probe(path).path == str(path)


def test_ntsc_rate_is_kept():
    info = video.probe(video.encode_mp4_bytes(indexed_frames(3), fps=30000 / 1001))
    assert info.fps == pytest.approx(30000 / 1001, rel=1e-6)


def test_has_audio(tmp_path):
    path = tmp_path / "with_audio.mp4"
    write_video(str(path), indexed_frames(10), audio=True)
    assert video.probe(path).has_audio
    assert frame_ids(video.decode(path)) == list(range(10))


# ---------------------------------------------------------------- ranges, resampling, resize


RANGES = [(0, 5, None), (7, 19, None), (13, None, None), (25, 30, None), (29, None, None), (6, None, 4),
          (12, 100, None), (30, None, None)]  # fmt: skip


@pytest.mark.parametrize("start,end,max_frames", RANGES)
def test_frame_range_equals_slicing_full_decode(clip30, start, end, max_frames, caplog):
    full = video.decode(clip30)
    assert frame_ids(full) == list(range(30))
    with caplog.at_level(logging.INFO, logger="worldsmith.io.video"):
        part = video.decode(clip30, start=start, end=end, max_frames=max_frames)
    stop = end if max_frames is None else start + max_frames
    assert np.array_equal(part, full[start:stop])
    assert part.shape[1:] == full.shape[1:]
    assert "gave up" not in caplog.text  # the keyframe seek was exact, no fallback


def test_fps_resampling_picks_nearest_frame(clip30):
    def expected(fps: float, n: int = 30, rate: int = 30) -> list[int]:
        count = -(-n * Fraction(fps) // rate)  # ceil(duration * fps)
        targets = [Fraction(k) / Fraction(fps) for k in range(count)]
        # nearest source frame by exact rational time; ties go to the earlier frame
        return [min(range(n), key=lambda i: (abs(Fraction(i, rate) - t), i)) for t in targets]

    for fps in (10, 20, 7, 60, 30):
        out = video.decode(clip30, fps=fps)
        assert frame_ids(out) == expected(fps), fps
        assert np.array_equal(video.decode(clip30, fps=fps, start=4, end=9), out[4:9])
    assert frame_ids(video.decode(clip30, fps=20))[:4] == [0, 1, 3, 4]  # 0.05 s is equally near frames 1 and 2


def test_variable_frame_rate_resamples_by_timestamp(tmp_path):
    pts_ms = [0, 33, 50, 120, 200, 210, 300, 400, 433, 600, 640, 700]
    path = tmp_path / "vfr.mp4"
    write_video(str(path), indexed_frames(len(pts_ms)), pts=pts_ms, time_base=Fraction(1, 1000))
    info = video.probe(path)
    assert info.variable_fps
    assert frame_ids(video.decode(path)) == list(range(len(pts_ms)))
    out = video.decode(path, fps=10)
    times = [Fraction(p, 1000) for p in pts_ms]
    end = times[-1] + (times[-1] - times[-2])  # one (last) frame step after the last frame
    targets = [Fraction(k, 10) for k in range(20) if Fraction(k, 10) < end]
    want = [min(range(len(times)), key=lambda i: (abs(times[i] - t), i)) for t in targets]
    assert want == [0, 3, 4, 6, 7, 8, 9, 11]  # by hand: 0.1 s is nearer 0.12 s (frame 3) than 0.05 s (frame 2)
    assert frame_ids(out) == want
    assert np.array_equal(video.decode(path, fps=10, start=3), out[3:])
    assert [frame_ids(f[None])[0] for f in video.iter_frames(path, fps=10)] == want
    cfr = tmp_path / "cfr.mp4"
    write_video(str(cfr), indexed_frames(12))
    assert not video.probe(cfr).variable_fps


def test_resize_short_side_and_exact(clip30):
    full = video.decode(clip30, end=3)
    half = video.decode(clip30, end=3, size=24)
    assert half.shape == (3, 24, 32, 3)
    box = np.stack([np.asarray(Image.fromarray(f).resize((32, 24), Image.BOX)) for f in full])
    assert np.abs(half.astype(int) - box).mean() < 4  # area averaging, like a box filter
    assert video.decode(clip30, end=2, size=(21, 17)).shape == (2, 21, 17, 3)  # exact, odd, aspect not kept
    up = video.decode(clip30, end=2, size=96)
    assert up.shape == (2, 96, 128, 3)
    assert psnr(up[:, ::2, ::2], full[:2]) > 25
    assert np.array_equal(video.decode(clip30, start=20, size=24), video.decode(clip30, size=24)[20:])


def test_iter_frames_matches_decode(clip30):
    for kwargs in ({}, {"fps": 45}, {"size": 24}):
        frames = list(video.iter_frames(clip30, **kwargs))
        assert np.array_equal(np.stack(frames), video.decode(clip30, **kwargs))
    repeated = list(video.iter_frames(clip30, fps=60))
    repeated[0][:] = 0  # up-sampled repeats are independent arrays
    assert repeated[1].any()


# ---------------------------------------------------------------- rotation, odd sizes, images


def _turn(frames: np.ndarray, clockwise: int) -> np.ndarray:
    return np.rot90(frames, k=-clockwise // 90, axes=(1, 2))  # (T, H, W, 3) rotated clockwise


@pytest.mark.parametrize(
    "ccw,hflip,vflip,clockwise,display",
    [
        (-90, False, False, 90, lambda f: _turn(f, 90)),  # a phone held upright: stored landscape, shown portrait
        (180, False, False, 180, lambda f: _turn(f, 180)),
        (90, False, False, 270, lambda f: _turn(f, 270)),
        (0, True, False, 0, lambda f: f[:, :, ::-1]),  # mirrored left-right
        (0, False, True, 180, lambda f: f[:, ::-1]),  # upside-down mirror = rotate 180 + mirror
        (-90, True, False, 90, lambda f: _turn(f, 90)[:, :, ::-1]),
    ],
)
def test_display_matrix_rotation_is_applied(tmp_path, ccw, hflip, vflip, clockwise, display):
    frames = indexed_frames(4)
    plain, turned = tmp_path / "plain.mp4", tmp_path / "turned.mp4"
    write_video(str(plain), frames)
    with_display_matrix(plain, turned, ccw=ccw, hflip=hflip, vflip=vflip)  # one encode: the same packets, turned
    info = video.probe(turned)
    assert info.rotation == clockwise
    assert (info.height, info.width) == ((W, H) if clockwise in (90, 270) else (H, W))
    displayed = display(video.decode(plain))
    assert np.array_equal(video.decode(turned), displayed)
    assert np.array_equal(video.decode(turned, start=1, end=3), displayed[1:3])
    half = (info.height // 2, info.width // 2)
    assert video.decode(turned, size=half).shape[1:3] == half  # sizes are in displayed orientation


def test_jpeg_exif_orientation(tmp_path):
    image = indexed_frames(1, 40, 56)[0]
    plain, rotated = tmp_path / "plain.jpg", tmp_path / "rotated.jpg"
    Image.fromarray(image).save(plain, quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF "rotate 90 clockwise to display"
    Image.fromarray(image).save(rotated, quality=95, exif=exif.tobytes())
    info = video.probe(rotated)
    assert (info.rotation, info.width, info.height, info.is_image) == (90, 40, 56, True)
    assert np.array_equal(video.decode(rotated), np.rot90(video.decode(plain), k=-1, axes=(1, 2)))


def test_odd_sizes(tmp_path):
    frames = indexed_frames(6, 31, 45)
    data = video.encode_mp4_bytes(frames, fps=10)
    info = video.probe(data)
    assert (info.height, info.width) == (32, 46)  # padded to even, documented
    decoded = video.decode(data)
    assert decoded.shape == (6, 32, 46, 3)
    assert psnr(decoded[:, :31, :45], frames) > 35
    assert np.abs(decoded[:, 31].astype(int) - decoded[:, 30]).mean() < 3  # padding repeats the edge row
    assert np.abs(decoded[:, :, 45].astype(int) - decoded[:, :, 44]).mean() < 3  # ... and the edge column
    lossless = tmp_path / "odd.mov"  # an odd-sized source decodes at its odd size
    write_video(str(lossless), frames, codec="png", pix_fmt="rgb24", fmt="mov")
    assert np.array_equal(video.decode(lossless), frames)
    assert video.decode(lossless, size=(15, 23)).shape == (6, 15, 23, 3)


def test_images_are_one_frame_videos(tmp_path):
    image = indexed_frames(1, 30, 41)[0]
    png, jpg = tmp_path / "a.png", tmp_path / "a.jpg"
    Image.fromarray(image).save(png)
    Image.fromarray(image).save(jpg, quality=95)
    for path in (png, jpg):
        info = video.probe(path)
        assert (info.is_image, info.num_frames, info.fps, info.width, info.height) == (True, 1, 1.0, 41, 30)
        assert video.decode(path, fps=30).shape == (1, 30, 41, 3)
        assert len(list(video.iter_frames(path.read_bytes(), fps=8))) == 1
    assert np.array_equal(video.decode(png), image[None])
    assert psnr(video.decode(jpg)[0], image) > 30
    gray_rgba = tmp_path / "la.png"
    Image.fromarray(image[..., 0]).convert("LA").save(gray_rgba)
    gray = video.decode(gray_rgba)[0]
    assert gray.shape == (30, 41, 3)
    assert np.array_equal(gray[..., 0], image[..., 0]) and np.array_equal(gray[..., 1], gray[..., 2])


# ---------------------------------------------------------------- errors



@pytest.mark.parametrize("fn", [video.probe, video.decode, video.iter_frames])
def test_bad_inputs_raise_one_clear_video_error(tmp_path, fn):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoError, match=f"video file not found: {missing}"):
        fn(missing)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match=r"empty\.mp4 is empty \(0 bytes\)"):
        fn(tmp_path / "empty.mp4")
    with pytest.raises(VideoError, match=r"<bytes> is empty \(0 bytes\)"):
        fn(b"")
    (tmp_path / "notes.mp4").write_text("not a video\n" * 50)
    with pytest.raises(VideoError, match=r"notes\.mp4 is not a video PyAV can read \("):
        fn(tmp_path / "notes.mp4")
    (tmp_path / "notes.txt").write_text("plain text\n" * 50)  # FFmpeg would render it as ANSI art
    with pytest.raises(VideoError, match="is not a video PyAV can read"):
        fn(tmp_path / "notes.txt")
    with pytest.raises(VideoError, match="is not a video PyAV can read"):
        fn(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    write_audio_only(tmp_path / "sound.m4a", seconds=0.25)
    with pytest.raises(VideoError, match=r"sound\.m4a has no video stream \(audio only\)"):
        fn(tmp_path / "sound.m4a")
    with pytest.raises(VideoError, match="is a directory"):
        fn(tmp_path)


def test_truncated_files(tmp_path):
    frames = indexed_frames(40)
    data = video.encode_mp4_bytes(frames, fps=20)  # moov index at the end: a cut loses it
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    for fn in (video.probe, video.decode):
        with pytest.raises(VideoError, match=r"cut\.mp4 is truncated or corrupt"):
            fn(tmp_path / "cut.mp4")
    fast = tmp_path / "fast.mp4"  # moov first: a cut keeps the index and loses frames
    write_video(str(fast), frames, faststart=True)
    full = video.decode(fast)
    whole = fast.read_bytes()
    mdat = whole.index(b"mdat")
    (tmp_path / "half.mp4").write_bytes(whole[: mdat + (len(whole) - mdat) // 2])
    assert video.probe(tmp_path / "half.mp4").num_frames == 40  # header still describes the whole clip
    partial = video.decode(tmp_path / "half.mp4")
    assert 0 < len(partial) < 40 and np.array_equal(partial[:-1], full[: len(partial) - 1])
    assert np.array_equal(video.decode(tmp_path / "half.mp4", start=1, end=3), partial[1:3])
    (tmp_path / "header.mp4").write_bytes(whole[: mdat + 8])  # index but no frame data
    assert video.probe(tmp_path / "header.mp4").width == W  # probe does not crash
    with pytest.raises(VideoError, match=r"header\.mp4 is truncated or corrupt"):
        video.decode(tmp_path / "header.mp4")


def test_bad_arguments(clip30, tmp_path):
    with pytest.raises(VideoError, match="fps must be a positive number"):
        video.decode(clip30, fps=0)
    with pytest.raises(VideoError, match="size must be"):
        video.decode(clip30, size=(10, 0))
    with pytest.raises(VideoError, match="start, end and max_frames >= 0"):
        video.decode(clip30, start=-1)
    with pytest.raises(VideoError, match=r"frames must be uint8 \(H, W, 3\)|uint8 \(H, W, 3\)"):
        video.encode_mp4_bytes(np.zeros((2, 8, 8, 3), np.float32), fps=10)
    with pytest.raises(VideoError, match="frame 1 is"):
        video.encode_mp4_bytes([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)], fps=10)
    with pytest.raises(VideoError, match="crf must be"):
        video.encode_mp4_bytes(indexed_frames(1), fps=10, crf=60)
    with pytest.raises(VideoError, match="unknown x264 preset"):
        video.encode_mp4_bytes(indexed_frames(1), fps=10, preset="warp")
    with pytest.raises(VideoError, match="no frames"):
        video.encode_mp4(np.zeros((0, 8, 8, 3), np.uint8), tmp_path / "none.mp4", fps=10)
    assert not any(tmp_path.iterdir())  # a failed atomic write leaves nothing behind


# ---------------------------------------------------------------- torch conversion, contact sheet


def test_tensor_conversion_round_trip():
    frames = np.random.default_rng(0).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    x = video.to_tensor(frames)
    assert x.dtype == torch.float32 and x.shape == (3, 3, 5, 7) and x.is_contiguous()
    assert x.min() >= -1 and x.max() <= 1
    assert x[1, 2, 3, 4].item() == pytest.approx(frames[2, 3, 4, 1] / 127.5 - 1)
    assert np.array_equal(video.to_uint8(x), frames)
    batch = np.stack([frames, frames[::-1]])
    xb = video.to_tensor(batch)
    assert xb.shape == (2, 3, 3, 5, 7)
    assert np.array_equal(video.to_uint8(xb), batch)
    clipped = video.to_uint8(torch.tensor([-3.0, 0.0, 3.0]).reshape(1, 3, 1, 1).expand(3, 3, 1, 1))
    assert clipped[:, 0, 0, 0].tolist() == [0, 128, 255]
    with pytest.raises(VideoError, match="to_tensor needs uint8"):
        video.to_tensor(frames.astype(np.float32))
    with pytest.raises(VideoError, match="to_uint8 needs"):
        video.to_uint8(torch.zeros(4, 2, 5, 7))


def test_contact_sheet(tmp_path):
    a = indexed_frames(16, 24, 32)
    b = indexed_frames(3, 16, 16)
    dest = tmp_path / "sheet.png"
    sheet = video.contact_sheet([a, b], dest, cols=4, max_frames=8, labels=["first", "second"], scale=2)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3
    assert np.array_equal(np.asarray(Image.open(dest).convert("RGB")), sheet)
    cell_h, cell_w, gap = 48, 64, 2
    assert sheet.shape[1] == gap + 4 * (cell_w + gap)
    label_h = (sheet.shape[0] - gap - 3 * (cell_h + gap)) // 2  # 2 rows for a, 1 row for b
    top = gap + label_h
    assert np.array_equal(sheet[top : top + cell_h, gap : gap + cell_w], a[0].repeat(2, 0).repeat(2, 1))
    last = a[15].repeat(2, 0).repeat(2, 1)  # 8 frames sampled evenly from 16: the last one is frame 15
    y, x = top + cell_h + gap, gap + 3 * (cell_w + gap)
    assert np.array_equal(sheet[y : y + cell_h, x : x + cell_w], last)
    assert sheet[gap:top].max() > 200  # the label was drawn
    plain = video.contact_sheet(np.stack([a[:4], a[4:8]]), None)
    assert plain.shape == (2 + 2 * (24 + 2), 2 + 4 * (32 + 2), 3)
    with pytest.raises(VideoError, match="one label per video"):
        video.contact_sheet([a], None, labels=["x", "y"])


def test_encoding_the_same_frames_twice_gives_the_same_bytes():
    """Clips, their filter scores and shards must not change from run to run (x264's mb-tree broke this at widths
    such as 160 and 320, whose chroma rows carry padding)."""
    rng = np.random.default_rng(0)
    x = np.linspace(0, 6, 160)
    frames = np.stack([127 + 100 * np.sin(x[None, :] + 0.3 * t + np.linspace(0, 3, 120)[:, None]) for t in range(24)])
    frames = (frames[..., None] + rng.integers(0, 30, (24, 120, 160, 3))).clip(0, 255).astype(np.uint8)
    assert len({encode_mp4_bytes(frames, 24, crf=23) for _ in range(4)}) == 1
