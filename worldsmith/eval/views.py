"""``worldsmith eval multiview``: a multi-view driving model scored against the simulator's renders.

For each held-out drive episode (a clip of ``worldsmith sim drive``, seeds never trained on, every view, with its
``ego``, ``c2w`` and ``intrinsics`` arrays), the model gets the first frame of every view and the ego trajectory and
generates ``frames`` frames of every view:

* ``own``: the episode's own trajectory; the truth is the clip itself;
* ``left`` / ``right``: named manoeuvres (worldsmith/worlds/manoeuvres.py) from the same first frames; the truth is
  the simulator playing the same actions from the episode's start (``drive_actions``).

Every video set (generated, true, floor) is scored by the same functions (eval/multiview.py): CSE (cross-view Sampson
error under the rig's known calibration, pairs front/front_left and front/front_right; the cameras share one point,
so the known map is a rotation homography), ``warp_psnr`` (each side view warped into the front by that homography,
PSNR over the overlap: a dense cross-view check that needs no feature matches), TSE per view (temporal, under
the known ego motion), the yaw rate estimated from the front view against the commanded one, and PSNR / SSIM / FD
per view against the truth. ``truth`` rows are the true renders' own figures (the reference level), ``independent``
the same model generating one view at a time (no view sees the others: the floor of joint generation), ``copy_first``
the first frame repeated, ``warp`` the first frame of every view carried along the commanded path by geometry alone
(conditioning/warp.py: the road as the ground plane, the rest at infinity, from the rig's calibration and the
camera poses of that path): a floor that needs no learning, and the motion a model must at least show. ``left_right``: the share of episodes whose generated front views turn the commanded ways
(the yaw estimated from the left manoeuvre's video above the right one's, each with the right sign;
``left_right_warp`` the same for the warp floor);
``left_right_pixels`` the share of generated front views closer in pixels to their own manoeuvre's truth than to
the other's (it needs no features, so blur does not hide a turn from it). Prompts are empty: the trajectory alone
steers.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from worldsmith import progress
from worldsmith.data.clip import Clip
from worldsmith.conditioning.warp import warp_video
from worldsmith.diffusion.multiview import rollout_views
from worldsmith.errors import ConfigError, DataError
from worldsmith.eval.features import frame_features, frechet_distance
from worldsmith.eval.metrics import closer_to_own, psnr, ssim
from worldsmith.eval.multiview import multiview_metrics, turn_sign
from worldsmith.io.video import to_tensor, to_uint8
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.drive import DriveConfig, DriveWorld
from worldsmith.worlds.manoeuvres import drive_actions, manoeuvre_actions

MANOEUVRE_NAMES = ("left", "right")


def drive_clips(clips: list[Clip], frames: int, size: int) -> list[Clip]:
    """The clips an evaluation can use: multi-view drive clips of >= ``frames`` frames at the model's size."""
    ok = [c for c in clips if c.views and {"ego", "c2w", "intrinsics"} <= set(c.arrays) and "seed" in c.meta
          and c.num_frames >= frames and c.frames.shape[1:3] == (size, size)]  # fmt: skip
    if not ok:
        raise DataError(f"no multi-view drive clip with ego, c2w and intrinsics arrays, a seed, {frames} frames and "
                        f"{size}x{size} views; simulate held-out episodes with `worldsmith sim drive --frames {frames} "
                        f"--size {size} --seed S`.")  # fmt: skip
    return ok


def clip_views(clip: Clip, frames: int) -> np.ndarray:
    """uint8 (V, frames, H, W, 3), front first."""
    return np.stack([clip.frames[:frames], *[v[:frames] for v in clip.views]])


def generate(generator, first: np.ndarray, ego: np.ndarray, frames: int, sampling: Any, seed: int,
             view_ids: list[int] | None = None, batch_size: int = 8) -> np.ndarray:  # fmt: skip
    """uint8 (N, V, frames, S, S, 3) from the first frames (N, V, S, S, 3) along ``ego`` (N, >= frames, 4)."""
    out = []
    for i in range(0, len(first), batch_size):
        x = torch.stack([torch.stack([to_tensor(v[None]) for v in views]) for views in first[i : i + batch_size]])
        traj = torch.from_numpy(np.ascontiguousarray(ego[i : i + batch_size], dtype=np.float32))
        videos = rollout_views(generator, x, traj, frames, [""] * len(x), sampling, seed + i, view_ids)
        out += [np.stack([to_uint8(v.cpu()) for v in views]) for views in videos]
    return np.stack(out)


def independent(generator, first: np.ndarray, ego: np.ndarray, frames: int, sampling: Any, seed: int) -> np.ndarray:
    """The floor: every view generated alone (its own view embedding, no other view to attend to)."""
    per_view = [generate(generator, first[:, v : v + 1], ego, frames, sampling, seed, [v])[:, 0]
                for v in range(first.shape[1])]  # fmt: skip
    return np.stack(per_view, axis=1)


def warp_floor(first: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """uint8 (N, V, T, H, W, 3): each first frame (N, V, H, W, 3) warped from its camera at frame 0 to the same
    camera at every frame t of c2w (N, T, V, 4, 4), intrinsics K (N, V, 3, 3) (conditioning/warp.py)."""
    n, t, v = c2w.shape[:3]
    video = warp_video(first.reshape(n * v, *first.shape[2:]), np.asarray(K).reshape(n * v, 3, 3),
                       np.asarray(c2w).transpose(0, 2, 1, 3, 4).reshape(n * v, t, 4, 4))  # fmt: skip
    return video.reshape(n, v, *video.shape[1:])


def image_scores(videos: np.ndarray, truth: np.ndarray) -> dict[str, list[float]]:
    """PSNR / SSIM per view (mean over episodes and frames 1..) and FD per view, videos (N, V, T, H, W, 3)."""
    out: dict[str, list[float]] = {"psnr": [], "ssim": [], "fd": [], "psnr_per_episode": []}
    for v in range(videos.shape[1]):
        g = torch.stack([to_tensor(x[1:]) for x in videos[:, v]])  # (N, 3, T-1, H, W)
        t = torch.stack([to_tensor(x[1:]) for x in truth[:, v]])
        per = psnr(g, t, reduction="none").reshape(len(g), -1).mean(1)
        out["psnr"].append(float(per.mean()))
        out["psnr_per_episode"].append(per.tolist())
        out["ssim"].append(float(ssim(g, t, reduction="none").mean()))
        out["fd"].append(float(frechet_distance(frame_features(g.transpose(1, 2).flatten(0, 1)),
                                                frame_features(t.transpose(1, 2).flatten(0, 1)))))  # fmt: skip
    return out


def geometry_scores(videos: np.ndarray, K: np.ndarray, c2w: np.ndarray, fps: float) -> dict[str, Any]:
    """CSE, TSE, estimated yaw rate per episode: videos (N, V, T, H, W, 3), K (N, V, 3, 3), c2w (N, T, V, 4, 4)."""
    rows = [multiview_metrics(videos[i], K[i], c2w[i], fps) for i in range(len(videos))]
    return {"cse": [r["cse"] for r in rows], "warp_psnr": [r["warp_psnr"] for r in rows],
            "tse": [r["tse_mean"] for r in rows], "yaw_rate": [r["yaw_rate"] for r in rows],
            "yaw_rate_true": [r["yaw_rate_true"] for r in rows]}  # fmt: skip


def summarize(geometry: dict[str, Any], images: dict[str, Any] | None = None) -> dict[str, Any]:
    """Means (NaN-skipping) and standard errors of the per-episode figures; yaw-rate error against the command."""
    def stat(x) -> tuple[float, float]:
        x = np.asarray(x, dtype=np.float64)
        x = x[np.isfinite(x)]
        return (float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0) if len(x) else (np.nan, np.nan)

    err = np.abs(np.asarray(geometry["yaw_rate"], np.float64) - np.asarray(geometry["yaw_rate_true"], np.float64))
    out: dict[str, Any] = {}
    for key, values in (("cse", geometry["cse"]), ("warp_psnr", geometry["warp_psnr"]), ("tse", geometry["tse"]),
                        ("yaw_rate_err", err), ("yaw_rate", geometry["yaw_rate"])):
        out[key], out[f"{key}_sem"] = stat(values)
    if images is not None:
        out |= {k: v for k, v in images.items() if k != "psnr_per_episode"}
        per_episode = np.mean(images["psnr_per_episode"], axis=0)  # (N,) mean over views
        out["psnr_mean"], out["psnr_mean_sem"] = stat(per_episode)
    return out


def manoeuvre_truth(clips: list[Clip], frames: int, names: tuple[str, ...]) -> dict[str, dict[str, np.ndarray]]:
    """The simulator's renders of each named manoeuvre from every episode's start: {name: views, ego, c2w, K}."""
    out: dict[str, dict[str, list]] = {n: {"views": [], "ego": [], "c2w": [], "K": []} for n in names}
    for clip in clips:
        world = DriveWorld(WorldConfig(size=clip.frames.shape[1], fps=clip.fps, views=1 + len(clip.views)),
                           DriveConfig(rig=clip.meta.get("rig", "wide")))  # fmt: skip
        try:
            for name in names:
                t = drive_actions(world, int(clip.meta["seed"]), manoeuvre_actions(name, frames))
                for key, value in (("views", t["views"]), ("ego", t["ego"]), ("c2w", t["c2w"]), ("K", t["intrinsics"])):
                    out[name][key].append(value)
        finally:
            world.close()
    return {n: {k: np.stack(v) for k, v in d.items()} for n, d in out.items()}


@torch.no_grad()
def evaluate_multiview(generator, clips: list[Clip], *, frames: int = 17, sampling: Any = None, seed: int = 0,
                       manoeuvres: tuple[str, ...] = MANOEUVRE_NAMES, floor: bool = True,
                       videos_out: dict | None = None) -> dict[str, Any]:  # fmt: skip
    """Every figure of the module docstring over ``clips``."""
    cfg = generator.model.cfg
    if not cfg.views:
        raise ConfigError("this model generates one camera; evaluate a run of `worldsmith posttrain views`.")
    clips = drive_clips(clips, frames, generator.size)
    sampling = sampling or generator.default_sampling()
    fps = float(clips[0].fps)
    truth = np.stack([clip_views(c, frames) for c in clips])  # (N, V, T, H, W, 3)
    if truth.shape[1] > cfg.views:
        raise ConfigError(f"the clips have {truth.shape[1]} views, the model knows {cfg.views}.")
    ego = np.stack([c.arrays["ego"][:frames] for c in clips])
    c2w = np.stack([c.arrays["c2w"][:frames].reshape(frames, truth.shape[1], 4, 4) for c in clips])
    K = np.stack([c.arrays["intrinsics"][0].reshape(truth.shape[1], 3, 3) for c in clips])
    first = truth[:, :, 0]
    steps = 3 + len(manoeuvres)
    start = time.perf_counter()
    with progress.span(0, steps):
        joint = generate(generator, first, ego, frames, sampling, seed)
    seconds = (time.perf_counter() - start) / len(clips)
    report: dict[str, Any] = {"episodes": len(clips), "frames": frames, "size": generator.size,
                              "views": int(truth.shape[1]), "seconds_per_clip": seconds, "own": {}}  # fmt: skip
    own = report["own"]
    own["model"] = summarize(geometry_scores(joint, K, c2w, fps), image_scores(joint, truth))
    own["truth"] = summarize(geometry_scores(truth, K, c2w, fps))
    nothing = {k: [np.nan] for k in ("cse", "warp_psnr", "tse", "yaw_rate", "yaw_rate_true")}
    own["copy_first"] = summarize(nothing,
                                  image_scores(np.repeat(truth[:, :, :1], frames, axis=2), truth))  # fmt: skip
    warped = warp_floor(first, K, c2w)
    own["warp"] = summarize(geometry_scores(warped, K, c2w, fps), image_scores(warped, truth))
    if floor:
        with progress.span(1, steps):
            alone = independent(generator, first, ego, frames, sampling, seed)
        own["independent"] = summarize(geometry_scores(alone, K, c2w, fps), image_scores(alone, truth))
    if videos_out is not None:
        videos_out.update({"model_own": joint, "truth_own": truth} | ({"independent_own": alone} if floor else {}))
    if manoeuvres:
        with progress.span(2, steps):
            sim = manoeuvre_truth(clips, frames, manoeuvres)
        report["manoeuvres"], rates, fronts = {}, {}, {}
        for k, name in enumerate(manoeuvres):
            t = sim[name]
            with progress.span(3 + k, steps):
                videos = generate(generator, first, t["ego"], frames, sampling, seed)
            fronts[name] = videos[:, 0]
            g_model, g_truth = geometry_scores(videos, t["K"], t["c2w"], fps), geometry_scores(t["views"], t["K"], t["c2w"], fps)
            warped = warp_floor(first, t["K"], t["c2w"])
            g_warp = geometry_scores(warped, t["K"], t["c2w"], fps)
            rates[name] = (np.asarray(g_model["yaw_rate"]), np.asarray(g_truth["yaw_rate"]), np.asarray(g_warp["yaw_rate"]))
            report["manoeuvres"][name] = {"model": summarize(g_model, image_scores(videos, t["views"])),
                                          "truth": summarize(g_truth),
                                          "warp": summarize(g_warp, image_scores(warped, t["views"]))}  # fmt: skip
            if videos_out is not None:
                videos_out |= {f"model_{name}": videos, f"truth_{name}": t["views"]}
        if {"left", "right"} <= set(rates):
            report["left_right"] = told_apart(rates["left"][0], rates["right"][0])
            report["left_right_truth"] = told_apart(rates["left"][1], rates["right"][1])
            report["left_right_warp"] = told_apart(rates["left"][2], rates["right"][2])
            report["left_right_pixels"] = closer_to_own({n: fronts[n] for n in ("left", "right")},
                                                        {n: sim[n]["views"][:, 0] for n in ("left", "right")},
                                                        ("left", "right"))  # fmt: skip
    report.update(headline(report))
    return report


def told_apart(left: np.ndarray, right: np.ndarray) -> float:
    """Share of episodes whose left video turns left, right video turns right, and left's yaw rate is the larger."""
    ok = [turn_sign(a) > 0 and turn_sign(b) < 0 and a > b for a, b in zip(left, right)]
    return float(np.mean(ok)) if ok else float("nan")


def headline(r: dict) -> dict[str, Any]:
    own = r["own"]
    out = {"cse": own["model"]["cse"], "cse_truth": own["truth"]["cse"], "warp_psnr": own["model"]["warp_psnr"],
           "warp_psnr_truth": own["truth"]["warp_psnr"], "tse": own["model"]["tse"],
           "tse_truth": own["truth"]["tse"], "psnr": own["model"]["psnr"], "psnr_copy_first": own["copy_first"]["psnr"],
           "yaw_rate_err": own["model"]["yaw_rate_err"], "yaw_rate_err_truth": own["truth"]["yaw_rate_err"],
           "psnr_warp": own["warp"]["psnr"], "cse_warp": own["warp"]["cse"]}  # fmt: skip
    if "independent" in own:
        out |= {"cse_independent": own["independent"]["cse"], "psnr_independent": own["independent"]["psnr"],
                "warp_psnr_independent": own["independent"]["warp_psnr"]}
    return out


def format_report(r: dict) -> str:
    def f(x, spec="{:.2f}") -> str:
        return spec.format(x) if isinstance(x, (int, float)) and np.isfinite(x) else "-"

    lines = [f"{r['episodes']} held-out drive episodes, {r['views']} views, {r['frames']} frames at "
             f"{r['size']}x{r['size']}; {r['seconds_per_clip']:.1f} s per clip (all views, joint)",
             f"{'':24} {'CSE px':>8} {'warp dB':>8} {'TSE px':>8} {'yaw deg/s':>9} {'yaw err':>8} "
             f"{'PSNR per view (dB)':>24}"]  # fmt: skip
    rows = [("own / " + who, m) for who, m in r["own"].items()]
    rows += [(f"{name} / {who}", m) for name, d in r.get("manoeuvres", {}).items() for who, m in d.items()]
    for label, m in rows:
        views = " ".join(f(x) for x in m["psnr"]) if "psnr" in m else "-"
        lines.append(f"{label:24} {f(m['cse'], '{:.3f}'):>8} {f(m['warp_psnr']):>8} {f(m['tse'], '{:.3f}'):>8} "
                     f"{f(m['yaw_rate'], '{:+.1f}'):>9} {f(m['yaw_rate_err'], '{:.1f}'):>8} {views:>24}")  # fmt: skip
    if "left_right" in r:
        lines.append(f"left vs right turn told apart from the generated front view: {r['left_right']:.0%} of episodes "
                     f"(true renders {r['left_right_truth']:.0%}, warp floor {r.get('left_right_warp', float('nan')):.0%}); "
                     f"generated front views closer in pixels to their "
                     f"own manoeuvre's truth than to the other's: {r.get('left_right_pixels', float('nan')):.0%}")  # fmt: skip
    return "\n".join(lines)
