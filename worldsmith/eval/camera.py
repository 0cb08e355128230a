"""``worldsmith eval camera``: camera-controlled generation scored against the simulator's renders of the same path.

For each held-out orbit scene (a clip from ``worldsmith sim orbit``, seeds never trained on) and each camera path,
the simulator renders the path from the scene's first camera (``OrbitWorld.render_path``: the truth), and the
model generates it from the true first frame and the path. Paths (all relative to the first camera, ``frames``
poses):

* ``own``: the clip's recorded move (orbit, dolly, pan or crane, as in training);
* ``reversed`` and ``faster`` (twice the motion): the own move backwards and sped up, unlike any training clip;
* ``orbit_left`` / ``orbit_right`` (30 degrees around the point 2.5 m ahead) and ``dolly_in`` (0.8 m): named paths
  (worldsmith/worlds/camera_paths.py) in the camera's own frame, which training never commanded as such.

Every video (generated, true, floor) is scored by the same functions: 3D consistency (eval/geometry.py: SIFT matches
between frame pairs, the Sampson error under the essential matrix they give, and the pose-estimation success
(a relative pose recovered with enough inliers), the pose match (that pose within 5 degrees and 30 degrees of the
commanded rotation and translation direction) and the rotation and translation-direction errors), and PSNR / SSIM / FD
against the truth. ``*_truth`` keys are the true renders' own figures (the reference level: what a perfect model
gets); ``floor_*`` the base model without the camera (Video2World from the same first frame, sampled as the model
is; one video per scene, scored against every path), ``copy_first`` the first frame repeated, and ``warp_*`` the
first frame carried along the path by geometry alone (conditioning/warp.py: the floor plane, the rest at infinity):
a floor that needs no learning. ``left_right`` is the share of scenes whose generated orbit_left and orbit_right
videos are told apart by their estimated poses: each video's poses (the relative rotations recovered between its
frame pairs) lie nearer to its own commanded path than to the other's (``nearest_path``; chance 25 %).
``left_right_yaw``, the stricter reading used before, asks each video's summed estimated yaw to turn the commanded
way (``turn``); on the true 128-pixel renders it fails about one scene in eight, where flat-shaded objects on plain
floors leave few matches and the sideways move and the turn of an orbit trade off. ``left_right_pixels`` is the share of
those videos closer in pixels to their own path's truth than to the other's.
Prompts are empty: the camera alone steers (training captions name the move, so a prompt would leak it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from worldsmith import progress
from worldsmith.conditioning.camera import pack_camera
from worldsmith.conditioning.warp import warp_video
from worldsmith.data.clip import Clip
from worldsmith.errors import ConfigError, DataError
from worldsmith.eval.features import frame_features, frechet_distance
from worldsmith.eval.geometry import (default_pairs, estimate_pose, match_features, match_sift, relative_pose,
                                      rotation_error_deg, sift_features, video_metrics, yaw_of)
from worldsmith.eval.metrics import closer_to_own, psnr, ssim
from worldsmith.io.video import to_tensor, to_uint8
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.camera_paths import named_path, relative, reverse_path, speed_up
from worldsmith.worlds.orbit import OrbitWorld

PATHS = ("own", "reversed", "faster", "orbit_left", "orbit_right", "dolly_in")
NEAREST_MARGIN_DEG = 1.0  # how much nearer its own path a video's estimated rotations must lie (left_right)
GEOMETRY = ("sampson", "sampson_true", "pose_success", "pose_match", "rot_err_deg", "trans_err_deg", "inliers")


def scene_paths(clip: Clip, frames: int, names: tuple[str, ...] = PATHS) -> dict[str, np.ndarray]:
    """The camera paths (``frames``, 4, 4) scored on one scene, relative to its first camera."""
    own = relative(clip.arrays["c2w"][:frames].astype(np.float64))
    make = {"own": lambda: own, "reversed": lambda: reverse_path(own), "faster": lambda: speed_up(own, 2.0),
            "orbit_left": lambda: named_path("orbit_left", frames), "orbit_right": lambda: named_path("orbit_right", frames),
            "dolly_in": lambda: named_path("dolly_in", frames)}  # fmt: skip
    unknown = [n for n in names if n not in make]
    if unknown:
        raise ConfigError(f"unknown camera paths {unknown}; choose from: {', '.join(PATHS)}.")
    return {n: make[n]() for n in names}


def render_truth(clips: list[Clip], paths: dict[str, list[np.ndarray]], size: int) -> dict[str, np.ndarray]:
    """The simulator's renders of every scene's paths, uint8 (N, T, size, size, 3) per path name, and K (N, 3, 3)."""
    out: dict[str, Any] = {n: [] for n in paths}
    Ks = []
    for i, clip in enumerate(clips):
        world = OrbitWorld(WorldConfig(size=size, fps=clip.fps, views=1))
        for name, per_scene in paths.items():
            frames, truth = world.render_path(int(clip.meta["seed"]), per_scene[i])
            out[name].append(frames)
        Ks.append(truth["intrinsics"].astype(np.float64))
    return {n: np.stack(v) for n, v in out.items()} | {"K": np.stack(Ks)}


def generate(generator, first: np.ndarray, c2w: np.ndarray | None, K: np.ndarray, frames: int, sampling: Any,
             seed: int, batch_size: int = 16) -> np.ndarray:  # fmt: skip
    """uint8 (N, frames, S, S, 3): Video2World from each first frame (N, S, S, 3), along ``c2w`` (N, T, 4, 4) with
    intrinsics K (N, 3, 3) for a camera model, without (``c2w=None``) for the floor."""
    videos = []
    for i in range(0, len(first), batch_size):
        x = torch.stack([to_tensor(f[None]) for f in first[i : i + batch_size]])  # (B, 3, 1, S, S)
        cam = None
        if c2w is not None:
            cam = pack_camera(torch.from_numpy(c2w[i : i + batch_size]), torch.from_numpy(K[i : i + batch_size])[:, None])
        out = generator.generate_videos([""] * len(x), video=x, frames=frames, sampling=sampling, seed=seed + i,
                                        camera=cam)  # fmt: skip
        videos += [to_uint8(v.cpu()) for v in out]
    return np.stack(videos)


def image_scores(videos: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """PSNR and SSIM per video over frames 1.. (N,), and the FD of all those frames against the truth's."""
    v = torch.stack([to_tensor(x[1:]) for x in videos])
    t = torch.stack([to_tensor(x[1:]) for x in truth])
    n = len(videos)
    return {"psnr": psnr(v, t, reduction="none").reshape(n, -1).mean(1).numpy(),
            "ssim": ssim(v, t, reduction="none").reshape(n, -1).mean(1).numpy(),
            "fd": frechet_distance(frame_features(v.transpose(1, 2).flatten(0, 1)),
                                   frame_features(t.transpose(1, 2).flatten(0, 1)))}  # fmt: skip


def geometry_scores(videos: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> dict[str, np.ndarray]:
    """``GEOMETRY`` figures per video (N,) against the commanded poses."""
    rows = [video_metrics(v, k, c) for v, k, c in zip(videos, K, c2w)]
    return {key: np.array([r[key] for r in rows], dtype=np.float64) for key in GEOMETRY}


def turn(video: np.ndarray, K: np.ndarray, step: int = 4) -> float:
    """Signed yaw (degrees, about the camera's y axis) of a video's camera, summed over poses estimated between
    frames ``step`` apart (0 -> step -> 2 step ...: a 30-degree turn seen from its ends alone leaves few matches);
    NaN when no pair gives a pose."""
    yaws = []
    for i in range(0, len(video) - step, step):
        pa, pb = match_sift(video[i], video[i + step])
        est = estimate_pose(pa, pb, K)
        if est is not None:
            yaws.append(yaw_of(est.R))
    return float(np.sum(yaws)) if yaws else float("nan")


def nearest_path(video: np.ndarray, K: np.ndarray, paths: list[np.ndarray],
                 margin_deg: float = NEAREST_MARGIN_DEG) -> int:
    """Index of the camera path (each (T, 4, 4) c2w) whose relative rotations between the video's frame pairs
    (``default_pairs``) the rotations estimated from the video (``estimate_pose``) match best: the smallest median
    geodesic error, nearer than every other path's by ``margin_deg``; -1 when no pair gives a pose or no path wins
    by the margin (a frozen video sits as far from a left orbit as from a right one)."""
    feats = {k: sift_features(video[k]) for k in range(len(video))}
    estimates = [(i, j, estimate_pose(*match_features(feats[i], feats[j]), K)) for i, j in default_pairs(len(video))]
    estimates = [(i, j, e.R) for i, j, e in estimates if e is not None]
    if not estimates:
        return -1
    errors = np.array([np.median([rotation_error_deg(R, relative_pose(p[i], p[j])[0]) for i, j, R in estimates])
                       for p in paths])  # fmt: skip
    best = int(np.argmin(errors))
    return best if np.all(np.delete(errors, best) >= errors[best] + margin_deg) else -1


def left_right(videos: dict[str, np.ndarray], K: np.ndarray, c2w: dict[str, np.ndarray]) -> float:
    """Share of scenes whose orbit_left and orbit_right videos are each nearest (``nearest_path``) their own path."""
    names = ("orbit_left", "orbit_right")
    ok = [all(nearest_path(videos[n][i], K[i], [c2w[m][i] for m in names]) == k for k, n in enumerate(names))
          for i in range(len(K))]  # fmt: skip
    return float(np.mean(ok))


def left_right_yaw(videos: dict[str, np.ndarray], K: np.ndarray, c2w: dict[str, np.ndarray]) -> float:
    """Share of scenes whose orbit_left and orbit_right videos both turn (summed estimated yaw, ``turn``) as
    commanded."""
    ok = []
    for i in range(len(K)):
        good = True
        for name in ("orbit_left", "orbit_right"):
            want = yaw_of(relative_pose(c2w[name][i][0], c2w[name][i][-1])[0])
            got = turn(videos[name][i], K[i])
            good &= bool(np.isfinite(got) and np.sign(got) == np.sign(want))
        ok.append(good)
    return float(np.mean(ok))


def _mean_sem(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if not len(x):
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0


def summarize(scores: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, values in scores.items():
        if key == "fd":
            out["fd"] = float(values)
            continue
        out[key], out[f"{key}_sem"] = _mean_sem(np.asarray(values, dtype=np.float64))
    return out


@torch.no_grad()
def evaluate_camera(generator, clips: list[Clip], *, frames: int = 17, base=None, sampling: Any = None,
                    seed: int = 0, paths: tuple[str, ...] = PATHS, videos_out: dict | None = None) -> dict[str, Any]:  # fmt: skip
    """Every figure of the module docstring, over ``clips`` (orbit clips of >= ``frames`` frames)."""
    if not getattr(generator.model.cfg, "camera", False):
        raise ConfigError("this model is not camera-controlled; evaluate a run of `worldsmith posttrain camera`.")
    clips = [c for c in clips if c.num_frames >= frames and "c2w" in c.arrays and "seed" in c.meta]
    if not clips:
        raise DataError(f"no orbit clip with c2w poses, a seed and {frames} frames; simulate held-out scenes with "
                        f"`worldsmith sim orbit --frames {frames} --seed S`.")  # fmt: skip
    size = generator.size
    sampling = sampling or generator.default_sampling()  # the floor samples the same way (the base's own default,
    per_path = {name: [] for name in paths}  # 10 DPM++ steps, drifts into speckle over a sliding window)
    for clip in clips:
        for name, c2w in scene_paths(clip, frames, paths).items():
            per_path[name].append(c2w)
    c2w = {n: np.stack(v) for n, v in per_path.items()}
    with progress.span(0, 3):
        truth = render_truth(clips, per_path, size)
    K = truth.pop("K")
    first = truth[paths[0]][:, 0]
    videos, floor = {}, None
    anchor = np.stack([c.arrays["c2w"][0].astype(np.float64) for c in clips])  # (N, 4, 4) each scene's first camera
    for k, name in enumerate(paths):  # the paths in world space (the floor at z = 0, for models with model.warp)
        with progress.span(1 + k / len(paths) / 2, 3):
            videos[name] = generate(generator, first, anchor[:, None] @ c2w[name], K, frames, sampling, seed)
    if base is not None:
        floor = generate(base, first, None, K, frames, sampling, seed)
    report: dict[str, Any] = {"episodes": len(clips), "frames": frames, "size": size, "paths": {}}
    warped: dict[str, np.ndarray] = {}
    with progress.span(2, 3):
        for name in paths:
            row = {"model": geometry_scores(videos[name], K, c2w[name]) | image_scores(videos[name], truth[name]),
                   "truth": geometry_scores(truth[name], K, c2w[name]),
                   "copy_first": image_scores(np.repeat(truth[name][:, :1], frames, axis=1), truth[name])}  # fmt: skip
            warped[name] = warp_video(first, K, anchor[:, None] @ c2w[name])  # the floor plane is in world space
            row["warp"] = geometry_scores(warped[name], K, c2w[name]) | image_scores(warped[name], truth[name])
            if floor is not None:
                row["floor"] = geometry_scores(floor, K, c2w[name]) | image_scores(floor, truth[name])
            report["paths"][name] = {who: summarize(s) for who, s in row.items()}
    if videos_out is not None:
        videos_out.update({f"model_{n}": v for n, v in videos.items()} | {f"truth_{n}": v for n, v in truth.items()})
        if floor is not None:
            videos_out["floor"] = floor
    report.update(headline(report["paths"]))
    if "orbit_left" in paths and "orbit_right" in paths:
        report["left_right"] = left_right(videos, K, c2w)
        report["left_right_truth"] = left_right(truth, K, c2w)
        report["left_right_warp"] = left_right(warped, K, c2w)
        report["left_right_yaw"] = left_right_yaw(videos, K, c2w)
        report["left_right_yaw_truth"] = left_right_yaw(truth, K, c2w)
        report["left_right_yaw_warp"] = left_right_yaw(warped, K, c2w)
        report["left_right_pixels"] = closer_to_own(videos, truth, ("orbit_left", "orbit_right"))
    return report


def headline(per_path: dict[str, dict]) -> dict[str, float]:
    """The issue's keys: means over paths of each figure (every path has the same scenes)."""
    def avg(who: str, key: str) -> float:
        vals = [p[who][key] for p in per_path.values() if who in p and np.isfinite(p[who].get(key, np.nan))]
        return float(np.mean(vals)) if vals else float("nan")

    geometry = ("sampson", "sampson_true", "pose_success", "pose_match", "rot_err_deg", "trans_err_deg")
    out = {k: avg("model", k) for k in (*geometry, "psnr", "ssim", "fd")}
    out |= {f"{k}_truth": avg("truth", k) for k in geometry}
    out["floor_copy_first_psnr"] = avg("copy_first", "psnr")
    out |= {f"warp_{k}": avg("warp", k) for k in ("psnr", "pose_success", "sampson", "rot_err_deg")}
    if any("floor" in p for p in per_path.values()):
        out |= {"floor_psnr": avg("floor", "psnr"), "floor_pose_success": avg("floor", "pose_success"),
                "floor_sampson": avg("floor", "sampson")}  # fmt: skip
    return out


def format_report(r: dict) -> str:
    lines = [f"{r['episodes']} held-out scenes, {r['frames']} frames at {r['size']}x{r['size']}, paths: "
             f"{', '.join(r['paths'])}",
             f"{'':30} {'pose success':>12} {'pose match':>10} {'rot err':>8} {'trans err':>9} {'Sampson':>8} "
             f"{'PSNR dB':>8}"]  # fmt: skip
    for name, p in r["paths"].items():
        for who in ("model", "truth", "floor", "warp", "copy_first"):
            if who not in p:
                continue
            m = p[who]
            g = lambda k, f: f.format(m[k]) if k in m and np.isfinite(m[k]) else "-"  # noqa: E731
            lines.append(f"{name + ' / ' + who:30} {g('pose_success', '{:.0%}'):>12} {g('pose_match', '{:.0%}'):>10} "
                         f"{g('rot_err_deg', '{:.2f}'):>8} "
                         f"{g('trans_err_deg', '{:.1f}'):>9} {g('sampson', '{:.3f}'):>8} {g('psnr', '{:.2f}'):>8}")  # fmt: skip
    lines.append(f"mean over paths: pose success {r['pose_success']:.0%} (true renders {r['pose_success_truth']:.0%}), "
                 f"pose match {r['pose_match']:.0%} (true {r['pose_match_truth']:.0%}), "
                 f"Sampson {r['sampson']:.3f} (true {r['sampson_truth']:.3f}), rotation error {r['rot_err_deg']:.2f} deg "
                 f"(true {r['rot_err_deg_truth']:.2f}), PSNR {r['psnr']:.2f} dB (copy first {r['floor_copy_first_psnr']:.2f}"
                 + (f", base without camera {r['floor_psnr']:.2f}" if "floor_psnr" in r else "") + ")")  # fmt: skip
    if "left_right" in r:
        lines.append(f"orbit left vs right told apart by the estimated poses: {r['left_right']:.0%} of scenes "
                     f"(true renders {r['left_right_truth']:.0%}, warp floor {r.get('left_right_warp', float('nan')):.0%}); "
                     f"both turning the commanded way by summed yaw: {r.get('left_right_yaw', float('nan')):.0%} (true "
                     f"renders {r.get('left_right_yaw_truth', float('nan')):.0%}); generated videos closer to their own "
                     f"path's truth than to the other's: {r['left_right_pixels']:.0%}")  # fmt: skip
    return "\n".join(lines)

