"""Motion of a clip: how much things move (static clips are dropped) and how much the camera shakes.

Motion is measured from sparse displacement samples between frame pairs, a ``MotionTrack``, which comes from one
of two sources:

* **H.264 motion vectors** (``source="mvs"``): the decoder exports the vectors the encoder chose (PyAV codec
  option ``flags2=+export_mvs``; each frame then carries ``side_data["MOTION_VECTORS"]``). They cost no more than
  decoding. Only P frames are used: each P frame's vectors point (almost always) to the previous I/P frame, so the
  displacement covers ``dist`` frames, the gap to that anchor. B frames are skipped because with B-pyramids their
  references are other B frames at distances the decoder does not report.
* **Dense optical flow** (``source="flow"``, the fallback for other codecs, all-intra streams or streams without
  vectors): OpenCV's Farnebäck flow on small grey frames, sampled on a regular grid.

Scores (both independent of resolution and frame rate):

* ``motion``: mean displacement speed of all samples in frame diagonals per second (0 for a still image; optical
  flow first loses ``flow_noise_px`` per sample, its noise floor on still, noisy footage).
* ``shakiness``: the camera path is the running sum of the per-pair median displacement; shakiness is the median
  distance (in frame diagonals) between that path and its smoothed version (a local quadratic fit over
  ``smooth_s`` seconds, Savitzky-Golay), less a floor of ``shake_floor_px`` pixels. A steady pan or a smooth
  acceleration follows its smoothed path exactly; a hand-held jitter of a few pixels does not.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field

import av
import cv2
import numpy as np

from worldsmith.errors import ConfigError, VideoError

_EIGHT_BIT_YUV = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "gray"}
_PICTURE_TYPES = {1: "I", 2: "P", 3: "B", 4: "S", 5: "SI", 6: "SP", 7: "BI"}  # FFmpeg's AVPictureType values


@dataclass
class MotionConfig:
    enabled: bool = True
    use_motion_vectors: bool = True  # False: always optical flow
    min_motion: float = 0.008  # drop below: mean speed in frame diagonals per second (a still camera on a still scene)
    max_shakiness: float = 0.002  # drop above: median camera-path jitter in frame diagonals (beyond the floor)
    smooth_s: float = 0.6  # window of the smoothed camera path
    min_pairs: int = 3  # fewer frame pairs with motion vectors than this -> optical flow instead
    min_vectors: int = 64  # fewer vectors per pair (median) -> optical flow (tiny frames: a few arbitrary blocks)
    min_coverage: float = 0.6  # P frames less inter-coded than this (median) -> optical flow: the encoder found
    # no match for much of the frame, as when the motion exceeds its search range (a fast pan), and its vectors lie
    shake_floor_px: float = 0.5  # path deviations below this many pixels of the track's frame are not shake
    flow_short_side: int = 96  # Farnebäck runs on grey frames this small (short side, pixels)
    flow_grid: int = 6  # flow is sampled every this many pixels (at flow_short_side)
    flow_noise_px: float = 0.15  # Farnebäck's sub-pixel noise floor: subtracted from each sample's displacement

    def __post_init__(self) -> None:
        if self.flow_short_side < 16 or self.flow_grid < 1 or self.smooth_s <= 0:
            raise ConfigError(f"motion needs flow_short_side >= 16, flow_grid >= 1 and smooth_s > 0, got "
                              f"{self.flow_short_side}, {self.flow_grid} and {self.smooth_s}.")


@dataclass
class MotionTrack:
    """Displacement samples between K frame pairs of one clip (pixel units of a ``width`` x ``height`` frame)."""

    source: str  # "mvs" (codec motion vectors) or "flow" (optical flow)
    width: int
    height: int
    times: np.ndarray  # (K,) time of each pair's later frame, seconds from the clip start
    dts: np.ndarray  # (K,) seconds between the two frames of each pair
    points: list[np.ndarray] = field(default_factory=list)  # K x (N_k, 2) float32 x, y in the later frame
    flows: list[np.ndarray] = field(default_factory=list)  # K x (N_k, 2) float32 displacement earlier -> later

    @property
    def diagonal(self) -> float:
        return math.hypot(self.width, self.height)

    def __len__(self) -> int:
        return len(self.flows)


@dataclass
class NativeScan:
    """What one pass over the clip's own stream yields: motion vectors and a few full-resolution luma planes."""

    codec: str
    track: MotionTrack | None  # None when the stream has no usable motion vectors
    lumas: list[np.ndarray]  # (H, W) uint8 luma planes at native resolution (blockiness needs the codec's grid)
    coverage: list[float] = field(default_factory=list)  # per P frame: fraction of the frame that is inter-coded


def scan_native(path: str | os.PathLike | bytes, motion_vectors: bool = True, luma_samples: int = 6,
                rotation: int = 0) -> NativeScan:
    """Decode the clip's video stream once at native resolution, collecting motion vectors (P frames) and
    ``luma_samples`` evenly spaced luma planes. ``rotation`` (clockwise degrees, ``probe(path).rotation``) turns
    the vectors into the displayed orientation, so directions match the decoded frames (a mirror in the display
    matrix is not applied). Raises VideoError for a file that cannot be decoded."""
    label = "<bytes>" if isinstance(path, bytes) else os.fspath(path)
    try:
        with av.open(io.BytesIO(path) if isinstance(path, bytes) else label) as container:
            if not container.streams.video:
                raise VideoError(f"{label} has no video stream; pass a video file.")
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            if motion_vectors:
                stream.codec_context.options = {"flags2": "+export_mvs"}
            stream.codec_context.skip_frame = "NONREF"  # B frames nothing refers to are not used: ~40% faster
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else (
                (container.duration or 0) / 1e6)
            every = duration / max(1, luma_samples)  # seconds between luma samples (0: take the first ones)
            scan = _scan(container.decode(stream), codec, rate, every, luma_samples, motion_vectors)
            if scan.track is not None and rotation % 360:
                scan.track = rotate_track(scan.track, rotation % 360)
            return scan
    except av.FFmpegError as e:
        raise VideoError(f"cannot decode {label} ({e}); the clip is unreadable or truncated.") from None


def _scan(frames, codec: str, rate: float, every: float, luma_samples: int, motion_vectors: bool) -> NativeScan:
    lumas, times, dts, points, flows, coverage = [], [], [], [], [], []
    width = height = 0
    anchor, t0 = None, None
    for i, frame in enumerate(frames):
        width, height = frame.width, frame.height
        t = float(frame.time) if frame.time is not None else i / rate
        t0 = t if t0 is None else t0
        if len(lumas) < luma_samples and t - t0 >= len(lumas) * every - 1e-6:
            lumas.append(_luma(frame))
        kind = _PICTURE_TYPES.get(int(frame.pict_type), "?")
        if kind in ("B", "BI"):
            continue
        if motion_vectors and kind in ("P", "SP") and anchor is not None:
            mvs = frame.side_data.get("MOTION_VECTORS") if hasattr(frame.side_data, "get") else None
            sample = _past_vectors(mvs) if mvs is not None else None
            coverage.append(0.0 if sample is None else sample[2] / (width * height))
            if sample is not None:
                times.append(t - t0)
                dts.append(max(t - anchor, 1.0 / rate))
                points.append(sample[0])
                flows.append(sample[1])
        anchor = t
    track = None
    if flows:
        track = MotionTrack("mvs", width, height, np.asarray(times), np.asarray(dts), points, flows)
    return NativeScan(codec, track, lumas, coverage)


def rotate_track(track: MotionTrack, clockwise: int) -> MotionTrack:
    """The track seen in a frame turned ``clockwise`` degrees (90, 180 or 270), as a display matrix turns it."""
    w, h = track.width, track.height

    def turn(p: np.ndarray, vector: bool) -> np.ndarray:
        x, y = p[:, 0], p[:, 1]
        if clockwise == 90:  # (x, y) -> (h - 1 - y, x)
            out = (-y, x) if vector else (h - 1 - y, x)
        elif clockwise == 180:
            out = (-x, -y) if vector else (w - 1 - x, h - 1 - y)
        else:  # 270: (x, y) -> (y, w - 1 - x)
            out = (y, -x) if vector else (y, w - 1 - x)
        return np.stack(out, axis=1).astype(np.float32)

    size = (h, w) if clockwise in (90, 270) else (w, h)
    return MotionTrack(track.source, size[0], size[1], track.times, track.dts,
                       [turn(p, False) for p in track.points], [turn(f, True) for f in track.flows])


def _luma(frame: av.VideoFrame) -> np.ndarray:
    """The frame's luma (H, W) uint8: the Y plane itself for 8-bit YUV, else a conversion to grey."""
    if frame.format.name in _EIGHT_BIT_YUV:
        plane = frame.planes[0]
        return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: frame.height, : frame.width].copy()
    return frame.to_ndarray(format="gray")


def _past_vectors(mvs) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(points, displacements, area in pixels) of the backward-predicted blocks: a block at ``dst`` was copied
    from ``src`` in the reference frame, so the content moved ``dst - src = -motion / motion_scale``."""
    a = mvs.to_ndarray()
    a = a[a["source"] < 0]
    if a.size == 0:
        return None
    scale = np.maximum(a["motion_scale"].astype(np.float32), 1.0)
    disp = -np.stack([a["motion_x"] / scale, a["motion_y"] / scale], axis=1).astype(np.float32)  # (N, 2)
    pts = np.stack([a["dst_x"], a["dst_y"]], axis=1).astype(np.float32)  # (N, 2)
    return pts, disp, float(np.sum(a["w"].astype(np.float64) * a["h"]))


def flow_track(frames: np.ndarray, fps: float, cfg: MotionConfig) -> MotionTrack:
    """Farnebäck optical flow between consecutive frames uint8 (T, H, W, 3) sampled at ``fps``."""
    t, h, w = frames.shape[:3]
    scale = cfg.flow_short_side / min(h, w)
    size = (max(8, round(w * scale)), max(8, round(h * scale)))  # cv2 order (W, H)
    greys = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA) for f in frames]
    g = cfg.flow_grid
    ys, xs = np.mgrid[g // 2 : size[1] : g, g // 2 : size[0] : g]
    pts = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)  # (N, 2)
    points, flows = [], []
    for a, b in zip(greys[:-1], greys[1:]):
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 13, 3, 5, 1.1, 0)  # (H, W, 2)
        keep = textured(a, ys, xs)  # (N,) flow is only measured where the image has texture in both directions
        points.append(pts[keep])
        flows.append(flow[ys, xs].reshape(-1, 2)[keep].astype(np.float32))
    times = np.arange(1, t, dtype=np.float64) / fps
    return MotionTrack("flow", size[0], size[1], times, np.full(len(times), 1.0 / fps), points, flows)


def textured(grey: np.ndarray, ys: np.ndarray, xs: np.ndarray, rel: float = 0.05, least: int = 24) -> np.ndarray:
    """Mask (N,) of grid points (``ys``, ``xs``) with texture: the smaller eigenvalue of the local structure
    tensor (Shi-Tomasi) at least ``rel`` times its 90th percentile over the grid, and never fewer than ``least``
    points. On flat regions (a rendered floor, a clear sky) Farnebäck returns zero flow whatever the camera does
    (the aperture problem), which would outvote the moving edges."""
    eig = cv2.cornerMinEigenVal(grey, 5).astype(np.float32)[ys, xs].ravel()  # (N,)
    top = float(np.percentile(eig, 90))
    if top <= 1e-6:  # a flat frame: no point is better than another
        return np.ones(eig.shape, bool)
    keep = eig >= rel * top
    if keep.sum() < least:
        keep = eig >= np.sort(eig)[-min(least, eig.size)]
    return keep


def camera_path(track: MotionTrack) -> tuple[np.ndarray, np.ndarray]:
    """Times (K,) and the cumulative global displacement (K, 2) in frame diagonals (median of each pair)."""
    steps = np.stack([np.median(f, axis=0) for f in track.flows]) / track.diagonal  # (K, 2)
    return track.times, np.cumsum(steps, axis=0)


def shakiness(track: MotionTrack, smooth_s: float, floor_px: float = 0.0) -> float:
    """Median distance (frame diagonals) between the camera path and its local quadratic fit over ``smooth_s``.

    The fit uses the samples at their own times (P frames come at uneven gaps): resampling them onto a regular
    grid first would interpolate, i.e. average, the jitter away. The median, not the RMS: a P frame now and then
    predicts from an older reference (x264's multiple references), which makes one step of a steady pan look too
    long; jitter moves (nearly) every step. ``floor_px`` (pixels of the track's frame) is taken off first:
    quarter-pixel vectors and sub-pixel flow wobble that much on steady footage, which matters on small frames."""
    if len(track) < 5:
        return 0.0
    times, path = camera_path(track)
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    window = min(len(times) - (1 - len(times) % 2), max(5, 2 * int(round(smooth_s / max(dt, 1e-6) / 2)) + 1))
    smooth = local_quadratic(times, path, window)
    deviation = np.linalg.norm(path - smooth, axis=1) - floor_px / track.diagonal  # (K,)
    return float(max(0.0, np.median(deviation)))


def local_quadratic(t: np.ndarray, y: np.ndarray, window: int) -> np.ndarray:
    """Savitzky-Golay smoothing of samples y (K, D) taken at times t (K,), which may be uneven: each sample is
    replaced by the value at its time of a quadratic least-squares fit over ``window`` consecutive samples centred
    on it (shifted inwards at the ends, like SciPy's mode="interp")."""
    k = len(y)
    out = np.empty(y.shape, dtype=np.float64)
    for i in range(k):
        lo = min(max(i - window // 2, 0), k - window)
        x = t[lo : lo + window] - t[i]  # (window,) times relative to the sample, so the fit's value is coef 0
        basis = np.stack([np.ones_like(x), x, x * x], axis=1)  # (window, 3)
        coef = np.linalg.lstsq(basis, y[lo : lo + window], rcond=None)[0]  # (3, D)
        out[i] = coef[0]
    return out


def motion_scores(track: MotionTrack, cfg: MotionConfig) -> dict[str, float]:
    """{"motion": mean speed in diagonals/s, "shakiness": camera-path jitter in diagonals}."""
    if len(track) == 0:
        return {"motion": 0.0, "shakiness": 0.0}
    floor = cfg.flow_noise_px if track.source == "flow" else 0.0  # codec vectors of still content are exactly 0
    speeds = [float(np.mean(np.maximum(np.linalg.norm(f, axis=1) - floor, 0.0))) / dt
              for f, dt in zip(track.flows, track.dts)]
    shake = shakiness(track, cfg.smooth_s, cfg.shake_floor_px)
    return {"motion": float(np.mean(speeds)) / track.diagonal, "shakiness": shake}


def motion_verdict(scores: dict[str, float], cfg: MotionConfig) -> str | None:
    """None when the clip passes, else one sentence naming the failing score and its threshold."""
    if scores["motion"] < cfg.min_motion:
        return (f"static clip: motion {scores['motion']:.4f} frame diagonals/s is below "
                f"min_motion={cfg.min_motion}.")
    if scores["shakiness"] > cfg.max_shakiness:
        return (f"shaky camera: shakiness {scores['shakiness']:.4f} frame diagonals is above "
                f"max_shakiness={cfg.max_shakiness}.")
    return None


def clip_motion(scan: NativeScan | None, frames: np.ndarray, fps: float, cfg: MotionConfig) -> MotionTrack:
    """The clip's motion track: the codec's motion vectors when there are enough of them (``min_pairs`` pairs with
    a median of ``min_vectors`` vectors, covering ``min_coverage`` of the frame), else optical flow."""
    track = scan.track if (cfg.use_motion_vectors and scan is not None) else None
    if track is not None and len(track) >= cfg.min_pairs and np.median(scan.coverage) >= cfg.min_coverage:
        if np.median([len(f) for f in track.flows]) >= cfg.min_vectors:
            return track
    return flow_track(frames, fps, cfg)
