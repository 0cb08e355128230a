"""Small synthetic clips for the curation filter and annotation tests: each one is made to pass or fail one check.

A clip is a window moving over a large textured canvas (smooth colour noise + shapes), so camera motion is exact:
``pan``/``tilt`` translate the window, ``zoom`` shrinks it about the centre, ``shaky`` jitters it randomly per
frame, ``static`` keeps it still (with a little sensor noise), ``orbit`` pans the background while a textured
subject stays in the centre and drifts the other way (parallax). Quality variants degrade a moving clip.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from worldsmith.io.video import encode_mp4


def canvas(seed: int, height: int, width: int) -> np.ndarray:
    """A natural-looking texture uint8 (height, width, 3): blurred colour noise at two scales plus ellipses."""
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.random((height // 24 + 2, width // 24 + 2, 3)).astype(np.float32), (width, height),
                        interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 1.5)
    img = np.clip(40 + 150 * coarse + 120 * (fine - 0.5), 0, 255).astype(np.uint8)
    for _ in range(max(6, height * width // 6000)):
        c = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(4, 30)), int(rng.integers(4, 30)))
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        cv2.ellipse(img, c, axes, float(rng.integers(0, 180)), 0, 360, colour, -1)
    return img


def camera_clip(kind: str, size: tuple[int, int] = (120, 160), frames: int = 48, seed: int = 0,
                speed: float = 2.0, noise: float = 2.0) -> np.ndarray:
    """Frames uint8 (T, H, W, 3) of a camera move ``kind`` over a canvas; ``speed`` in pixels per frame."""
    h, w = size
    rng = np.random.default_rng(seed + 1)
    big = canvas(seed, h + 2 * (int(abs(speed) * frames) + 24), w + 2 * (int(abs(speed) * frames) + 24))
    cy, cx = big.shape[0] / 2, big.shape[1] / 2
    subject = canvas(seed + 7, h // 3, w // 3)
    out = []
    for t in range(frames):
        dx = dy = 0.0
        zoom = 1.0
        if kind == "pan_right":  # the camera turns right: the scene moves left
            dx = speed * (t - frames / 2)
        elif kind == "pan_left":
            dx = -speed * (t - frames / 2)
        elif kind == "tilt_up":  # the camera turns up: the scene moves down
            dy = -speed * (t - frames / 2)
        elif kind == "tilt_down":
            dy = speed * (t - frames / 2)
        elif kind == "zoom_in":
            zoom = 1.0 + 0.012 * speed * t
        elif kind == "zoom_out":
            zoom = 1.0 + 0.012 * speed * (frames - t)
        elif kind == "shaky":
            dx, dy = rng.normal(0, 3.0 * speed / 2, 2)
        elif kind == "orbit":  # the camera circles right around the subject: background left, subject kept
            dx = speed * (t - frames / 2)
        elif kind != "static":
            raise ValueError(kind)
        ch, cw = h / zoom, w / zoom
        m = np.float32([[cw / w, 0, cx + dx - cw / 2], [0, ch / h, cy + dy - ch / 2]])
        frame = cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        if kind == "orbit":
            sh, sw = subject.shape[:2]
            ox = int(w / 2 - sw / 2 - 0.5 * speed * (t - frames / 2) * 0.3)
            frame[h // 2 - sh // 2 : h // 2 - sh // 2 + sh, ox : ox + sw] = subject
        out.append(frame)
    clip = np.stack(out).astype(np.float32)
    clip += rng.normal(0, noise, clip.shape)
    return np.clip(clip, 0, 255).astype(np.uint8)


def write(frames: np.ndarray, path: Path, fps: float = 12.0, crf: int = 20, preset: str = "veryfast") -> str:
    encode_mp4(frames, path, fps, crf=crf, preset=preset)
    return str(path)


def with_text(frames: np.ndarray, text: str = "Hello world", every: int = 1) -> np.ndarray:
    """Burn big white subtitle text into the bottom of every ``every``-th frame."""
    out = frames.copy()
    h, w = frames.shape[1:3]
    for f in out[::every]:
        cv2.putText(f, text, (int(w * 0.05), int(h * 0.88)), cv2.FONT_HERSHEY_SIMPLEX, w / 300, (255, 255, 255),
                    max(1, w // 120), cv2.LINE_AA)
    return out


def screen(size: tuple[int, int] = (120, 160), frames: int = 36, seed: int = 0) -> np.ndarray:
    """A scrolling document/web page: white page, blue title bar, lines of dark text."""
    h, w = size
    rng = np.random.default_rng(seed)
    page = np.full((2 * h, w, 3), 245, np.uint8)
    y = h // 6
    while y < 2 * h - 4:
        line = "".join(rng.choice(list("abcdefghij klmnopqrstu vwxyz"), int(rng.integers(8, 30))))
        cv2.putText(page, line, (w // 20, y), cv2.FONT_HERSHEY_SIMPLEX, w / 600, (20, 20, 20), 1, cv2.LINE_AA)
        y += max(7, h // 14)
    out = []
    for t in range(frames):
        f = page[t : t + h].copy()
        f[: max(6, h // 12)] = (60, 90, 160)
        out.append(f)
    return np.stack(out)


def cartoon(size: tuple[int, int] = (120, 160), frames: int = 36) -> np.ndarray:
    """Flat-shaded animation: sky, grass, a ball rolling right, a box."""
    h, w = size
    out = []
    for t in range(frames):
        f = np.full((h, w, 3), (120, 200, 250), np.uint8)
        f[h * 2 // 3 :] = (60, 170, 60)
        cv2.circle(f, (20 + 3 * t, h // 2), h // 6, (250, 60, 40), -1)
        cv2.rectangle(f, (w // 2, h // 3), (w // 2 + 30, h * 2 // 3), (240, 220, 40), -1)
        out.append(f)
    return np.stack(out)


def write_mjpeg(frames: np.ndarray, path: Path, fps: int = 12) -> str:
    """An MJPEG .avi (all intra, no motion vectors): exercises the optical-flow fallback."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mjpeg", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuvj420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return str(path)


def write_rotated(frames: np.ndarray, path: Path, ccw: int, fps: int = 12) -> str:
    """An H.264 mp4 whose display matrix turns the stored frames ``ccw`` degrees counter-clockwise (a phone clip)."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.set_display_rotation(ccw)
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")))
        c.mux(s.encode(None))
    return str(path)


def cut_with_index(source: str | Path, dest: Path, keep: float) -> Path:
    """A damaged copy of an mp4 whose index survives: remuxed with the index first (faststart), then cut after
    ``keep`` of its frame data. Its index still lists every frame; only the first part decodes."""
    fast = dest.with_name(dest.stem + "_fast.mp4")
    with av.open(str(source)) as src, av.open(str(fast), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    whole = fast.read_bytes()
    mdat = whole.index(b"mdat")
    dest.write_bytes(whole[: mdat + int((len(whole) - mdat) * keep)])
    return dest
