"""Multi-view consistency of (generated) driving video: do the cameras of one rig show one world, moving as told?

Pure functions over uint8 frames with the rig's known intrinsics ``K`` and OpenCV camera-to-world poses ``c2w``
(camera x right, y down, z forward), built on eval/geometry.py (SIFT at 2x upscale, Lowe's ratio test, Sampson
errors, MAGSAC++ essential matrices):

* CSE (cross-view Sampson error, ``cross_view_sampson``): SIFT matches between two views at the same time t, scored
  under the rig's known relative pose. The cameras of one rig sit at one point (drive world: every camera at the
  same spot on the car), so the known pose is a pure rotation: every point of view a maps to one point of view b
  (the homography ``K_b R K_a^-1``), and the score is the Sampson error of that map (point to point, pixels); a rig
  with a baseline is scored point-to-epipolar-line instead (``geometry.known_pose_error``). Content that is not
  where the rig says it is (a view from another episode or another time, a mirrored view) gives large errors.
* Warp PSNR (``cross_view_warp``): for such a rig (one centre) the homography is exact for every pixel, so view b
  warped into view a must equal view a where they overlap: the PSNR (dB) over that overlap. Dense, so it does not
  depend on finding SIFT features in these low-texture scenes (the SIFT CSE of a true front/front_right pair
  reaches 3.6 px at 64 px and 8 px at 128 px where its few matches lie on long edges; the warp PSNR of true pairs
  stays at 24-38 dB, of a view from another episode or mirrored at 11-19 dB).
* TSE (temporal Sampson error, ``temporal_sampson``): the same between frames t and t + step of one view, under the
  known camera motion between them (ego motion: point to epipolar line). Other cars move, so some matches are off
  even on true renders; the median ignores them.
* Ego yaw (``ego_yaw``, ``yaw_rate``, ``turn_direction``): the relative rotation of the front camera between frames
  t and t + step (essential matrix + recoverPose), its yaw about the camera's vertical axis; + = turning left (the
  car's world yaw increases; the camera turns towards its -x).

Pooling (CSE and TSE): the median over all matches of all scored frame pairs pooled, not the mean of per-pair
medians (a pair with 3 matches would weigh as much as one with 100); ``matches`` is the mean match count per pair.
NaN where nothing matched. Matching: ratio test and a mutual (cross-check) test (``geometry.match_features``): on
64 px drive renders without it most matches of some true view pairs lie along lane markings and the horizon, and
the median lands on them (true CSE up to 17 px; 0.3-1.8 px with it). The ego yaw is the median over frame pairs of
the per-pair yaws, pairs whose estimated rotation exceeds ``max_deg`` (a wrong essential matrix) left out.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from worldsmith.errors import ConfigError
from worldsmith.eval.geometry import (
    MIN_BASELINE,
    estimate_pose,
    known_pose_error,
    match_features,
    relative_pose,
    rotation_error_deg,
    sift_features,
    yaw_of,
)

STEP = 2  # frames between the two frames of a temporal pair (TSE, ego yaw)
MAX_PAIR_DEG = 30.0  # ego_yaw: estimated rotations between two frames larger than this are wrong estimates
# deg/s: |estimated yaw rate| below this is "straight" (turn 0). On true 64-96 px renders the estimate errs to the
# right: by up to -23 deg/s driving straight (mostly -6..-11), more in right turns; a steer of +-0.3 turns at 18-31
# deg/s (estimated >= 17 to the left), +-0.6 at 36-63. Compare a video's estimate with its truth's, not with 0.
TURN_DEADBAND = 15.0


@dataclass(frozen=True)
class Matching:
    """SIFT (``upscale``, ``contrast``: geometry.sift_features) and matching (``ratio``, ``mutual``) settings."""

    upscale: int = 2
    contrast: float = 0.01
    ratio: float = 0.8
    mutual: bool = True

    def features(self, frames: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        return [sift_features(f, upscale=self.upscale, contrast=self.contrast) for f in frames]

    def match(self, fa, fb) -> tuple[np.ndarray, np.ndarray]:
        return match_features(fa, fb, ratio=self.ratio, mutual=self.mutual)


CROSS = Matching()  # CSE, TSE
YAW = Matching(mutual=False)  # ego yaw: MAGSAC++ copes with the extra wrong matches; cross-checking loses poses


def _video(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8:
        raise ConfigError(f"{name} must be uint8 frames (T, H, W, 3), got {x.dtype} {tuple(x.shape)}.")
    return x


def _matrix(x, shape: tuple[int, ...], name: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.shape != shape:
        raise ConfigError(f"{name} must have shape {shape}, got {tuple(x.shape)}.")
    return x


def _pair(view_a, view_b, K_a, K_b, c2w_a, c2w_b):
    """Checked (view_a, view_b, K_a, K_b, c2w_a, c2w_b); c2w (T, 4, 4) or one fixed (4, 4) each."""
    view_a, view_b = _video(view_a, "view_a"), _video(view_b, "view_b")
    if len(view_a) != len(view_b):
        raise ConfigError(f"the two views must have as many frames, got {len(view_a)} and {len(view_b)}.")
    T = len(view_a)
    poses = [np.repeat(np.asarray(c, np.float64)[None], T, 0) if np.shape(c) == (4, 4) else c for c in (c2w_a, c2w_b)]
    return (view_a, view_b, _matrix(K_a, (3, 3), "K_a"), _matrix(K_b, (3, 3), "K_b"),
            _matrix(poses[0], (T, 4, 4), "c2w_a"), _matrix(poses[1], (T, 4, 4), "c2w_b"))  # fmt: skip


def _pool(errors: list[np.ndarray], counts: list[int]) -> tuple[float, float]:
    """(median of all errors pooled, NaNs dropped; mean count): NaN, NaN for no pairs."""
    e = np.concatenate(errors) if errors else np.zeros(0)
    e = e[np.isfinite(e)]
    return (float(np.median(e)) if len(e) else float("nan")), (float(np.mean(counts)) if counts else float("nan"))


def cross_view_sampson(view_a, view_b, K_a, K_b, c2w_a, c2w_b, *, frames=None, matching: Matching = CROSS,
                       features=None) -> dict:  # fmt: skip
    """CSE of two synchronized views, each uint8 (T, H, W, 3), with intrinsics K_a, K_b (3, 3) and poses c2w_a,
    c2w_b (T, 4, 4) (or one (4, 4) each for a fixed rig) in one world frame.

    For each time t in ``frames`` (default: all), SIFT matches between view_a[t] and view_b[t], scored by
    ``geometry.known_pose_error`` under the known relative pose at t. ``features``: optional precomputed
    ``matching.features`` of (view_a, view_b). Returns ``cse`` (median Sampson error in pixels of all matches of all
    frames pooled; NaN without matches), ``matches`` (mean count per frame) and ``frames`` (how many).
    """
    view_a, view_b, K_a, K_b, c2w_a, c2w_b = _pair(view_a, view_b, K_a, K_b, c2w_a, c2w_b)
    times = range(len(view_a)) if frames is None else [int(t) for t in frames]
    fa, fb = features or (None, None)
    errors, counts = [], []
    for t in times:
        pa, pb = matching.match(fa[t] if fa else matching.features(view_a[t : t + 1])[0],
                                fb[t] if fb else matching.features(view_b[t : t + 1])[0])  # fmt: skip
        errors.append(known_pose_error(pa, pb, K_a, K_b, c2w_a[t], c2w_b[t]))
        counts.append(len(pa))
    cse, matches = _pool(errors, counts)
    return {"cse": cse, "matches": matches, "frames": len(counts)}


def cross_view_warp(view_a, view_b, K_a, K_b, c2w_a, c2w_b) -> dict:
    """Photometric consistency of two synchronized views of a rig with one centre (arguments as
    ``cross_view_sampson``): view b warped into view a by the rotation homography ``K_b R K_a^-1`` (bilinear), the
    squared difference to view a over the pixels both see (one pixel in from the border), pooled over all frames.
    Returns ``psnr`` (dB, 255 peak; NaN without overlap or when the cameras are MIN_BASELINE or more apart: the
    warp is then not exact) and ``overlap`` (the share of view a's pixels compared, mean over frames)."""
    view_a, view_b, K_a, K_b, c2w_a, c2w_b = _pair(view_a, view_b, K_a, K_b, c2w_a, c2w_b)
    T, h, w = view_a.shape[:3]
    sq, n, shares = 0.0, 0, []
    for t in range(T):
        R, trans = relative_pose(c2w_a[t], c2w_b[t])
        if np.linalg.norm(trans) >= MIN_BASELINE:
            return {"psnr": float("nan"), "overlap": float("nan")}
        H = K_b @ R @ np.linalg.inv(K_a)  # x_b = H x_a: sample view b at H x_a for each pixel of view a
        warped = cv2.warpPerspective(view_b[t], H, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        inside = cv2.warpPerspective(np.ones((h, w), np.uint8), H, (w, h),
                                     flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)  # fmt: skip
        inside = cv2.erode(inside, np.ones((3, 3), np.uint8)).astype(bool)
        d = view_a[t][inside].astype(np.float64) - warped[inside]
        sq, n = sq + float((d**2).sum()), n + d.size
        shares.append(inside.mean())
    if n == 0:
        return {"psnr": float("nan"), "overlap": float(np.mean(shares)) if shares else float("nan")}
    return {"psnr": float(10 * np.log10(255.0**2 / max(sq / n, 1e-10))), "overlap": float(np.mean(shares))}


def temporal_sampson(view, K, c2w, step: int = STEP, *, matching: Matching = CROSS, features=None) -> dict:
    """TSE of one view, uint8 (T, H, W, 3), intrinsics K (3, 3), poses c2w (T, 4, 4): SIFT matches between frames
    t and t + ``step`` (t = 0 .. T - step - 1) under the known camera motion between them (Sampson error to the
    epipolar line; point to point where the camera stands still). Returns ``tse`` (median in pixels of all matches
    of all pairs pooled; NaN without matches), ``matches`` (mean per pair) and ``pairs`` (how many)."""
    view = _video(view, "view")
    K, c2w = _matrix(K, (3, 3), "K"), _matrix(c2w, (len(view), 4, 4), "c2w")
    if step < 1:
        raise ConfigError(f"the temporal step must be at least 1 frame, got {step}.")
    feats = features or matching.features(view)
    errors, counts = [], []
    for t in range(len(view) - step):
        pa, pb = matching.match(feats[t], feats[t + step])
        errors.append(known_pose_error(pa, pb, K, K, c2w[t], c2w[t + step]))
        counts.append(len(pa))
    tse, matches = _pool(errors, counts)
    return {"tse": tse, "matches": matches, "pairs": len(counts)}


def ego_yaw(front, K, step: int = STEP, *, max_deg: float = MAX_PAIR_DEG, matching: Matching = YAW,
            features=None) -> np.ndarray:  # fmt: skip
    """Estimated yaw (degrees, + = left) of the front camera from frame t to t + ``step``, float64 (T - step,):
    ``geometry.estimate_pose`` (essential matrix, MAGSAC++, recoverPose) on the SIFT matches, ``geometry.yaw_of``
    of its rotation. NaN where no pose is found (fewer than 8 matches) or its rotation exceeds ``max_deg``."""
    front = _video(front, "front")
    K = _matrix(K, (3, 3), "K")
    if step < 1:
        raise ConfigError(f"the temporal step must be at least 1 frame, got {step}.")
    feats = features or matching.features(front)
    out = np.full(max(len(front) - step, 0), np.nan)
    for t in range(len(out)):
        est = estimate_pose(*matching.match(feats[t], feats[t + step]), K)
        if est is not None and rotation_error_deg(est.R, np.eye(3)) <= max_deg:
            out[t] = yaw_of(est.R)
    return out


def _rate(yaws: np.ndarray, fps: float, step: int) -> float:
    yaws = yaws[np.isfinite(yaws)]
    return float(np.median(yaws) * fps / step) if len(yaws) else float("nan")


def yaw_rate(front, K, fps: float, step: int = STEP, **kw) -> float:
    """Yaw rate (deg/s, + = left) of the front camera: the median of ``ego_yaw`` (``kw`` go there) times
    fps / step; NaN when no pair gives a pose."""
    return _rate(ego_yaw(front, K, step, **kw), fps, step)


def true_yaw_rate(c2w, fps: float) -> float:
    """Mean yaw rate (deg/s, + = left) of a camera along its known poses c2w (T, 4, 4), as ``yaw_rate`` measures
    it: ``yaw_of`` the relative rotation between consecutive frames (NaN for fewer than 2 frames)."""
    c2w = np.asarray(c2w, np.float64)
    yaws = [yaw_of(relative_pose(c2w[t], c2w[t + 1])[0]) for t in range(len(c2w) - 1)]
    return float(np.mean(yaws) * fps) if yaws else float("nan")


def turn_sign(rate: float, deadband: float = TURN_DEADBAND) -> int:
    """+1 (left), -1 (right) or 0 (straight: |rate| < ``deadband`` deg/s, or NaN) of a yaw rate in deg/s."""
    return 0 if not np.isfinite(rate) or abs(rate) < deadband else int(np.sign(rate))


def turn_direction(front, K, fps: float = 10.0, step: int = STEP, *, deadband: float = TURN_DEADBAND, **kw) -> int:
    """+1 when the front camera turns left, -1 right, 0 straight or unknown: ``turn_sign`` of ``yaw_rate``."""
    return turn_sign(yaw_rate(front, K, fps, step, **kw), deadband)


def default_view_pairs(V: int) -> list[tuple[int, int]]:
    """The neighbouring views of a drive rig that overlap: the front (0) with front_left (1) and front_right (2)."""
    return [(0, v) for v in (1, 2) if v < V]


def _intrinsics(K, V: int) -> np.ndarray:
    """(V, 3, 3) from (V, 3, 3), one shared (3, 3) or a clip's constant (T, V, 3, 3) (frame 0's)."""
    K = np.asarray(K, np.float64)
    if K.shape == (3, 3):
        return np.repeat(K[None], V, 0)
    if K.ndim == 4 and K.shape[1:] == (V, 3, 3):
        K = K[0]
    return _matrix(K, (V, 3, 3), "K")


def multiview_metrics(views, K, c2w, fps: float, *, pairs=None, step: int = STEP, matching: Matching = CROSS,
                      yaw_matching: Matching = YAW) -> dict:  # fmt: skip
    """Every figure of this module for one multi-view clip.

    ``views``: uint8 (V, T, H, W, 3) (or a list of V (T, H, W, 3)), view 0 = front; ``K``: (V, 3, 3) (a shared
    (3, 3) or a clip's constant (T, V, 3, 3) also do); ``c2w``: (T, V, 4, 4); ``fps``: frames per second;
    ``pairs``: the view pairs of the cross-view figures, default ``default_view_pairs`` (0-1, 0-2). Returns
    ``cse`` (mean over the pairs of their CSE), ``cse_pairs`` ({"a-b": cse}), ``cse_matches`` (mean matches per
    frame over the pairs), ``warp_psnr`` / ``warp_psnr_pairs`` (likewise, ``cross_view_warp``), ``tse`` (per view,
    a list), ``tse_mean``, ``yaw_rate`` (deg/s, + = left, estimated from view 0), ``yaw_rate_rig`` (the median over
    the frame pairs of every view: the cameras of a rig turn alike, and a right turn off the loop road often leaves
    the front view without features: on 64 px renders 3 of 10 pairs give a pose in the front view, 11 of 30 in the
    rig), ``yaw_rate_true`` (from view 0's known poses), ``turn`` (``turn_sign`` of yaw_rate) and ``turn_true``. NaN
    (turn 0) where nothing matched.
    """
    views = np.asarray(views)
    if views.ndim != 5 or views.shape[-1] != 3 or views.dtype != np.uint8:
        raise ConfigError(f"views must be uint8 (V, T, H, W, 3), got {views.dtype} {tuple(views.shape)}.")
    V, T = views.shape[:2]
    K = _intrinsics(K, V)
    c2w = _matrix(c2w, (T, V, 4, 4), "c2w")
    if not fps > 0:
        raise ConfigError(f"fps must be positive, got {fps!r}.")
    pairs = default_view_pairs(V) if pairs is None else [(int(a), int(b)) for a, b in pairs]
    if any(not (0 <= a < V and 0 <= b < V and a != b) for a, b in pairs):
        raise ConfigError(f"view pairs must name two different views among 0..{V - 1}, got {pairs}.")
    feats = [matching.features(v) for v in views]
    cse, warp, matches = {}, {}, []
    for a, b in pairs:
        args = (views[a], views[b], K[a], K[b], c2w[:, a], c2w[:, b])
        r = cross_view_sampson(*args, matching=matching, features=(feats[a], feats[b]))
        cse[f"{a}-{b}"], warp[f"{a}-{b}"] = r["cse"], cross_view_warp(*args)["psnr"]
        matches.append(r["matches"])
    tse = [temporal_sampson(views[v], K[v], c2w[:, v], step, matching=matching, features=feats[v])["tse"]
           for v in range(V)]  # fmt: skip
    same = (yaw_matching.upscale, yaw_matching.contrast) == (matching.upscale, matching.contrast)
    yaws = [ego_yaw(views[v], K[v], step, matching=yaw_matching, features=feats[v] if same else None)
            for v in range(V)]  # fmt: skip
    rate, rate_true = _rate(yaws[0], fps, step), true_yaw_rate(c2w[:, 0], fps)
    return {"cse": _nanmean(cse.values()), "cse_pairs": cse, "cse_matches": _nanmean(matches),
            "warp_psnr": _nanmean(warp.values()), "warp_psnr_pairs": warp, "tse": tse, "tse_mean": _nanmean(tse),
            "yaw_rate": rate, "yaw_rate_rig": _rate(np.concatenate(yaws), fps, step), "yaw_rate_true": rate_true,
            "turn": turn_sign(rate), "turn_true": turn_sign(rate_true)}  # fmt: skip


def _nanmean(values) -> float:
    x = np.asarray(list(values), np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else float("nan")
