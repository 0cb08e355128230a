"""Camera-motion tags from a clip's motion track: static, pan, tilt, zoom or orbit, with a direction.

0. Only samples on texture count (``textured_samples``): on flat regions (a cartoon's fills, a clear sky) the
   codec's vectors and optical flow are zero or arbitrary whatever the camera does, and they would outvote the
   edges (a pan over flat-shaded animation was tagged ``static``).
1. Per frame pair, a similarity transform (translation, rotation, uniform scale) is fitted robustly to the
   displacement samples (``cv2.estimateAffinePartial2D`` with RANSAC), so moving objects are outliers and the
   fit follows the background, i.e. the camera.
   The fit must also dominate (``support``): the share of the textured samples it explains (``agrees``: a
   sample's vector points within ``agree_cos`` of the fitted displacement there and is not much shorter; where the
   fit moves under half a pixel, the sample moves under a pixel) against the share that the best other motion
   explains, fitted the same way to the samples the first fit leaves out (``rival``). Shares count one vote per
   occupied square cell of side 1/25 of the frame diagonal (16 px at 320x240), so an object's edges, where the
   codec splits its blocks into many small ones, count by area, not by how many vectors they got. When the clip's median support is not at least
   ``dominance`` times its median rival, no global motion explains the texture better than another one does: a
   still camera on objects moving in different directions over a plain background (a gradient sky, whose
   samples step 0 drops) has two such motions of about equal share, and the clip is ``static``.
2. From each fit: the velocity of the frame centre ``(vx, vy)`` in frame diagonals per second (image
   coordinates: +x right, +y down), the zoom rate ``log(scale)`` per second and, for orbit, the parallax ratio.
3. The clip takes the median of each over its pairs and is classified in this order:
   * ``static``: centre speed below ``static_speed`` and the edge speed of the zoom (0.5 |zoom rate|) too;
   * ``zoom`` (``in`` when the content grows): the centre speed is at most ``zoom_reach`` |zoom rate|, i.e. the
     translation can come from zooming about a point up to ``zoom_reach`` diagonals from the centre (0.6: anywhere
     in the frame, corners included), as when a zoom heads for an off-centre subject;
   * ``orbit``: the camera translates while a subject near the centre stays put (or drifts against the
     background): the median residual displacement in the central box, after removing the fitted background
     motion, cancels at least ``orbit_ratio`` of the background motion, ``-dot(r_centre, v) / |v|^2``
     (0 for a pan, where the centre moves with the background; 1 when the centre stands still; above 1 when it
     moves the other way, as in real parallax around a subject). Direction: where the camera goes, opposite to
     the background (background moving left -> ``right``). A tracking shot that follows a subject also counts:
     in 2-D the two look the same.
   * ``pan`` (horizontal) or ``tilt`` (vertical), whichever component dominates; directions are the camera's:
     content moving left means the camera pans ``right``; content moving down means it tilts ``up``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from worldsmith.curate.motion import MotionTrack

MIN_SAMPLES = 6  # a pair with fewer textured samples keeps all of its samples


@dataclass
class CameraMotionConfig:
    enabled: bool = True
    static_speed: float = 0.01  # frame diagonals per second below which the camera counts as still
    orbit_ratio: float = 0.6  # how much of the background motion the central subject must cancel
    centre_box: float = 0.15  # the central box is |x - cx| < centre_box * W and |y - cy| < centre_box * H
    ransac_px: float = 1.0  # RANSAC inlier threshold in pixels of the track's frame
    zoom_reach: float = 0.6  # a zoom about a point this far from the centre (diagonals) still counts as a zoom
    agree_cos: float = 0.7  # a sample agrees with a fit when its vector is within acos(agree_cos) of the fit's
    dominance: float = 1.35  # camera motion needs median support >= dominance x median rival (module doc, 1.)


@dataclass
class PairMotion:
    vx: float  # centre velocity, frame diagonals per second (+x right)
    vy: float  # (+y down)
    zoom: float  # log scale per second (> 0: content grows, zoom in)
    roll: float  # rotation, radians per second
    orbit: float  # fraction of the background motion cancelled in the central box (see module doc)
    support: float = 1.0  # share of the samples the fit explains (grid-cell votes)
    rival: float = 0.0  # share that the best other motion explains among the rest


def _similarity(src: np.ndarray, dst: np.ndarray, cfg: CameraMotionConfig) -> np.ndarray | None:
    """Robust (RANSAC) similarity (2, 3) mapping ``src`` (N, 2) onto ``dst`` (N, 2), or None."""
    m, _ = cv2.estimateAffinePartial2D(src.astype(np.float32), dst.astype(np.float32), method=cv2.RANSAC,
                                       ransacReprojThreshold=cfg.ransac_px, maxIters=500, refineIters=5)
    return m


def agrees(m: np.ndarray, src: np.ndarray, flow: np.ndarray, cos_min: float) -> np.ndarray:
    """Mask (N,): the samples whose displacement ``flow`` (N, 2) from ``src`` (N, 2) the similarity ``m``
    explains: within acos(``cos_min``) of its displacement and at least a quarter as long, or, where ``m`` moves
    less than half a pixel, under a pixel long (multiple references make a codec vector 2-3x the fit's step)."""
    pred = src @ m[:, :2].T + m[:, 2] - src  # (N, 2)
    pn, fn = np.linalg.norm(pred, axis=1), np.linalg.norm(flow, axis=1)
    cos = (pred * flow).sum(axis=1) / np.maximum(pn * fn, 1e-9)
    return np.where(pn >= 0.5, (cos >= cos_min) & (fn >= 0.25 * pn), fn < 1.0)


def cell_weights(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Weights (N,) summing to 1 that give each occupied cell of side diagonal / 25 one vote."""
    cell = max(1.0, math.hypot(width, height) / 25)
    key = (points[:, 0] // cell).astype(np.int64) * 1_000_003 + (points[:, 1] // cell).astype(np.int64)
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    w = 1.0 / counts[inverse.ravel()]
    return w / w.sum()


def fit_pair(points: np.ndarray, flow: np.ndarray, dt: float, width: int, height: int,
             cfg: CameraMotionConfig) -> PairMotion | None:
    """Similarity fit of one pair: ``points`` (N, 2) in the later frame, ``flow`` (N, 2) earlier -> later."""
    if len(points) < 6:
        return None
    src = (points - flow).astype(np.float32)
    m = _similarity(src, points, cfg)
    if m is None:
        return None
    # 0. how much of the texture the fit explains, against the best other motion (module doc, step 1)
    weights = cell_weights(points, width, height)
    ok = agrees(m, src, flow, cfg.agree_cos)
    rest, rival = ~ok, 0.0
    if rest.sum() >= 6:
        m2 = _similarity(src[rest], points[rest], cfg)
        if m2 is not None:
            rival = float(weights[rest][agrees(m2, src[rest], flow[rest], cfg.agree_cos)].sum())
    diag = math.hypot(width, height)
    centre = np.array([width / 2, height / 2])
    moved = m[:, :2] @ centre + m[:, 2] - centre  # displacement of the frame centre (2,)
    v = moved / diag / dt
    scale = math.hypot(m[0, 0], m[1, 0])
    # 1. residual motion in the central box after removing the background (camera) motion
    predicted = src @ m[:, :2].T + m[:, 2]  # (N, 2)
    residual = points - predicted
    box = (np.abs(points[:, 0] - centre[0]) < cfg.centre_box * width) & (
        np.abs(points[:, 1] - centre[1]) < cfg.centre_box * height)
    orbit = 0.0
    speed2 = float(moved @ moved)
    if box.sum() >= 3 and speed2 > 0.04:  # the centre moved at least 0.2 px: a ratio is meaningful
        orbit = float(-np.median(residual[box], axis=0) @ moved / speed2)
    return PairMotion(float(v[0]), float(v[1]), math.log(max(scale, 1e-6)) / dt,
                      math.atan2(m[1, 0], m[0, 0]) / dt, orbit, float(weights[ok].sum()), rival)


def textured_samples(track: MotionTrack, frames: np.ndarray, fps: float, rel: float = 0.05) -> MotionTrack:
    """The track with only the samples that lie on texture in the frame (of uint8 (T, H, W, 3) ``frames`` at
    ``fps``) nearest to each pair: the smaller structure-tensor eigenvalue (Shi-Tomasi) at the sample at least
    ``rel`` times its 90th percentile over the frame (or a tenth of its maximum, when most of the frame is flat)."""
    points, flows = [], []
    h, w = frames.shape[1:3]
    sx, sy = w / track.width, h / track.height
    eigs: dict[int, tuple[np.ndarray, float]] = {}
    for p, f, t in zip(track.points, track.flows, track.times):
        i = min(len(frames) - 1, max(0, round(float(t) * fps)))
        if i not in eigs:
            eig = cv2.cornerMinEigenVal(cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY), 5)
            eigs[i] = eig, float(max(np.percentile(eig, 90), 0.1 * eig.max()))  # a mostly flat frame: its edges
        eig, top = eigs[i]
        xs = np.clip((p[:, 0] * sx).astype(int), 0, w - 1)
        ys = np.clip((p[:, 1] * sy).astype(int), 0, h - 1)
        keep = eig[ys, xs] >= rel * top if top > 1e-6 else np.ones(len(p), bool)
        ok = keep.sum() >= MIN_SAMPLES
        points.append(p[keep] if ok else p)
        flows.append(f[keep] if ok else f)
    return MotionTrack(track.source, track.width, track.height, track.times, track.dts, points, flows)


def camera_motion(track: MotionTrack, cfg: CameraMotionConfig, frames: np.ndarray | None = None,
                  fps: float = 0.0) -> dict[str, object]:  # fmt: skip
    """Tags {"camera_motion", "camera_direction", "camera_speed", "camera_zoom", "camera_parallax",
    "camera_support", "camera_rival"} (a static clip for want of a dominant motion has zero speed, zoom and
    parallax); with the
    clip's working ``frames`` (at ``fps``), only samples on texture are used (step 0 of the module doc)."""
    if frames is not None and len(frames) and fps > 0:
        track = textured_samples(track, frames, fps)
    fits = [fit_pair(p, f, float(dt), track.width, track.height, cfg)
            for p, f, dt in zip(track.points, track.flows, track.dts)]
    fits = [f for f in fits if f is not None]
    still = {"camera_motion": "static", "camera_direction": "", "camera_speed": 0.0, "camera_zoom": 0.0,
             "camera_parallax": 0.0}
    if not fits:
        return {**still, "camera_support": 0.0, "camera_rival": 0.0}
    vx, vy, zoom, orbit, support, rival = (float(np.median([getattr(f, k) for f in fits]))
                                           for k in ("vx", "vy", "zoom", "orbit", "support", "rival"))
    shares = {"camera_support": round(support, 3), "camera_rival": round(rival, 3)}
    if support < cfg.dominance * rival:  # no motion explains the texture better than another: objects, not camera
        return {**still, **shares}
    speed = math.hypot(vx, vy)
    if speed < cfg.static_speed and 0.5 * abs(zoom) < cfg.static_speed:
        kind, direction = "static", ""
    elif cfg.zoom_reach * abs(zoom) >= speed:
        kind, direction = "zoom", "in" if zoom > 0 else "out"
    elif orbit >= cfg.orbit_ratio:
        kind, direction = "orbit", "right" if vx < 0 else "left"
    elif abs(vx) >= abs(vy):
        kind, direction = "pan", "right" if vx < 0 else "left"
    else:
        kind, direction = "tilt", "up" if vy > 0 else "down"
    return {"camera_motion": kind, "camera_direction": direction, "camera_speed": round(speed, 5),
            "camera_zoom": round(zoom, 5), "camera_parallax": round(orbit, 3), **shares}
