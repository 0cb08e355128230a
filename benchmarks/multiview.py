"""Multi-view driving on a laptop, from nothing: the recipe of the ``drive-views`` model and its scores.

1. simulate the drive world with the overlapping rig (front, front-left +30 deg, front-right -30 deg; 60 deg fov:
   neighbouring views share half the image) at 64x64, 17 frames, the ``mixed`` driver (half the episodes free left /
   right turns, speed changes and stops): ``--episodes`` training episodes from seed 0, ``--heldout`` from seed
   900000 (never trained on);
2. train the base: a single-camera Video2World diffusion model of the front view, no trajectory (``arm-tokenizer``'s
   per-frame 16x8x8 latents, patch 1: 64 tokens per frame; frame stacking, next-frame-only: 1-2 given frames, the
   one after them predicted);
3. post-train it on all three views jointly with the ego trajectory (``worldsmith posttrain views``: views stacked,
   a learned view embedding each, joint attention, each frame's step of the trajectory through the modulation slot);
3b. post-train that on the same clips anchored at the warp (``--set model.warp=true``: each view's first frame
   carried along the trajectory by geometry, conditioning/warp.py, is the condition and the residual's anchor; the
   model learns what the warp gets wrong), the model shipped as ``drive-views``;
4. ``worldsmith eval multiview`` on the held-out episodes: CSE, TSE, yaw rate, PSNR per view against the truth,
   commanded left / right turns from the same first frames, beside the true renders and the floors (each view
   generated alone; the first frame repeated);
5. write the ``multiview`` section of benchmarks/RESULTS.md, and WORK/cards.json, from which
   ``python benchmarks/zoo.py --work WORK`` publishes ``drive-views`` as a shipped model.

Every step resumes (run the command again); finished steps are skipped. Each is a ``worldsmith`` command, printed
before it runs.

    python benchmarks/multiview.py [--work runs/multiview] [--base-steps 2000] [--steps 3000] [--warp-steps 2000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from results_md import machine, markers, publish, sets, train_minutes
from results_md import run_worldsmith as run

FRAMES, SIZE = 17, 64


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("runs/multiview"))
    p.add_argument("--episodes", type=int, default=1536, help="training episodes")
    p.add_argument("--heldout", type=int, default=48, help="held-out episodes (scored: --eval-episodes of them)")
    p.add_argument("--eval-episodes", type=int, default=32)
    p.add_argument("--base-steps", type=int, default=2000, help="base training steps (~0.2 s each on 2 cores)")
    p.add_argument("--steps", type=int, default=3000, help="views post-training steps (~0.32 s each)")
    p.add_argument("--warp-steps", type=int, default=2000, help="warp post-training steps (~0.38 s each)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the training processes")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--no-results", action="store_true", help="do not write benchmarks/RESULTS.md")
    return p.parse_args()


def base_args(w: Path, a: argparse.Namespace) -> list[str]:
    # the arm action model's architecture (benchmarks/RESULTS.md): patch 1 over arm-tokenizer's 8x8 latents
    return ["train", "diffusion", "--preset", "small", "--tokenizer", "arm-tokenizer", "--data", str(w / "drive_train"),
            "--out", str(w / "runs" / "drive-base"),
            *sets("model.residual=true", "data.window=3", f"data.frames={FRAMES}", f"data.size={SIZE}",
                  "model.max_cond_latents=2", "model.dit.patch=1", "model.dit.width=128", "model.dit.depth=5",
                  "model.dit.heads=4", "model.dit.adaln_lora_dim=64", "model.dit.anchor_frames=2",
                  "model.dit.local_mixing=true", "model.dit.next_frame_only=true", "model.caption_dropout=0.5",
                  "model.video2world_prob=1.0", "model.edm.p_mean=0.5", "model.edm.p_std=1.2", f"train.steps={a.base_steps}",
                  "train.batch_size=32", "train.lr=1e-3", "train.warmup_steps=100", "train.ema_decay=0.995",
                  "data.cache_latents=true", "data.cache_crops=1")]  # fmt: skip


def views_args(w: Path, a: argparse.Namespace) -> list[str]:
    return ["posttrain", "views", "--from", str(w / "runs" / "drive-base"), "--data", str(w / "drive_train"),
            "--out", str(w / "runs" / "drive-joint"),
            *sets(f"train.steps={a.steps}", "train.batch_size=16", "train.lr=1e-3", "train.warmup_steps=100",
                  "train.ema_decay=0.995")]  # fmt: skip


def warp_args(w: Path, a: argparse.Namespace) -> list[str]:
    # anchored at each view's first frame warped along the trajectory: 2026-12-07, left/right told apart 0 -> 84 %,
    # front PSNR 21.84 -> 24.47 dB (RESULTS.md, "Multi-view anchored at the warp")
    return ["posttrain", "views", "--from", str(w / "runs" / "drive-joint"), "--data", str(w / "drive_train"),
            "--out", str(w / "runs" / "drive-views"),
            *sets("model.residual=true", "model.warp=true", f"train.steps={a.warp_steps}", "train.batch_size=16",
                  "train.lr=1e-3", "train.warmup_steps=100", "train.ema_decay=0.995")]  # fmt: skip


def main() -> None:
    a = parse()
    w = a.work.resolve()
    log: dict = {}
    sim = ["--frames", str(FRAMES), "--size", str(SIZE), "--rig", "overlap", "--behaviour", "mixed", "-j", "2"]
    run(["sim", "drive", "--episodes", str(a.episodes), "--seed", "0", *sim, "--out", str(w / "drive_train")], log,
        "sim drive (training)", 1)  # fmt: skip
    run(["sim", "drive", "--episodes", str(a.heldout), "--seed", "900000", *sim, "--out", str(w / "drive_held")], log,
        "sim drive (held out)", 1)  # fmt: skip
    run(base_args(w, a), log, "base", a.threads)
    run(views_args(w, a), log, "views post-training", a.threads)
    run(warp_args(w, a), log, "warp post-training", a.threads)
    report = w / "multiview_eval.json"
    run(["eval", "multiview", "--model", str(w / "runs" / "drive-views"), "--data", str(w / "drive_held"),
         "--episodes", str(a.eval_episodes), "--frames", str(FRAMES), "--json", str(report)], log, "eval", a.threads)  # fmt: skip
    results = {"steps": log, "eval": json.loads(report.read_text()), "machine": machine()}
    publish("multiview", render(results, a), results, a.json, not a.no_results)
    (w / "cards.json").write_text(json.dumps(cards(w, a, log, results["eval"]), indent=2))


def render(r: dict, a: argparse.Namespace) -> str:
    begin, end = markers("multiview")
    e = r["eval"]
    lines = [begin, "## Multi-view driving (`python benchmarks/multiview.py`)", "",
             f"{time.strftime('%Y-%m-%d')}, {r['machine']}, {a.threads} torch threads per training process. Every "
             f"step, as run (wall time on this machine; training steps: the run's own training time from its log):",
             "", "| step | minutes | command |", "|---|---|---|"]  # fmt: skip
    runs = {"base": a.work.resolve() / "runs" / "drive-base", "views post-training": a.work.resolve() / "runs" / "drive-joint",
            "warp post-training": a.work.resolve() / "runs" / "drive-views"}
    for name, step in r["steps"].items():
        minutes = train_minutes(runs[name]) if name in runs else step["seconds"] / 60
        lines.append(f"| {name} | {minutes:.1f} | `{step['command']}` |")
    lines += ["", f"{e['episodes']} held-out episodes (seeds from 900000), {e['views']} views (front, front-left +30 deg, "
              f"front-right -30 deg), {e['frames']} frames at {e['size']}x{e['size']} from the true first frame of "
              f"every view, empty prompts, 1 Euler step per frame (a warp model's default), "
              f"{e['seconds_per_clip']:.1f} s per 3-view clip "
              "(2 cores). CSE: cross-view Sampson error (px) of mutual SIFT matches under the rig's calibration "
              "(front/front-left, front/front-right); warp PSNR: each side view warped into the front view by the "
              "calibration, PSNR over the overlap; TSE: temporal Sampson error (px) under the known ego motion; yaw: "
              "the yaw rate (deg/s, + = left) estimated from the front view, and its error against the commanded "
              "one; means over episodes ± standard error.", "",
              "| trajectory | video | CSE px | warp PSNR dB | TSE px | yaw deg/s | yaw err deg/s | PSNR dB per view "
              "(front, left, right) | SSIM front | FD front |",
              "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    labels = {"model": "joint (drive-views)", "independent": "each view alone (floor)", "truth": "true renders",
              "copy_first": "copy first frame", "warp": "first frame warped along the path (geometry, floor)"}
    rows = [("own", who, m) for who, m in e["own"].items()]
    rows += [(name, who, m) for name, d in e.get("manoeuvres", {}).items() for who, m in d.items()]
    for traj, who, m in rows:
        def f(key: str, fmt: str = "{:.2f}", sem: bool = False) -> str:
            v = m.get(key)
            if not isinstance(v, (int, float)) or v != v:
                return "-"
            return fmt.format(v) + (f" ± {fmt.format(m[key + '_sem'])}" if sem and key + "_sem" in m else "")

        views = ", ".join(f"{x:.2f}" for x in m["psnr"]) if "psnr" in m else "-"
        ssim_front = f"{m['ssim'][0]:.3f}" if "ssim" in m else "-"
        fd_front = f"{m['fd'][0]:.0f}" if "fd" in m else "-"
        lines.append(f"| {traj} | {labels[who]} | {f('cse', '{:.2f}', True)} | {f('warp_psnr')} | {f('tse')} | "
                     f"{f('yaw_rate', '{:+.1f}')} | {f('yaw_rate_err', '{:.1f}', True)} | {views} | {ssim_front} | "
                     f"{fd_front} |")  # fmt: skip
    lines += ["", f"Left and right turns (steer 0.6, ~50 deg/s at 8 m/s) commanded from the same first frames told "
              f"apart from the generated front view (each turning its own way, the left one's yaw the larger): "
              f"{e.get('left_right', float('nan')):.0%} of episodes (true renders "
              f"{e.get('left_right_truth', float('nan')):.0%}, the warp floor {e.get('left_right_warp', float('nan')):.0%}); "
              f"generated front views closer in pixels to their own "
              f"manoeuvre's truth than to the other's: {e.get('left_right_pixels', float('nan')):.0%}.", "", end]  # fmt: skip
    return "\n".join(lines)


def cards(w: Path, a: argparse.Namespace, log: dict, e: dict) -> dict:
    """The model card of ``drive-views`` (benchmarks/zoo.py adds the licence and the parameter count)."""

    def local(cmd: str) -> str:
        for path, short in ((w / "drive_train", "data/drive_train"), (w / "drive_held", "data/drive_held"),
                            (w / "runs", "runs")):  # fmt: skip
            cmd = cmd.replace(str(path), short)
        return cmd

    own = e["own"]
    v = {"episodes_train": a.episodes, "sim": local(log["sim drive (training)"]["command"]),
         "held": local(log["sim drive (held out)"]["command"]), "base_cmd": local(log["base"]["command"]),
         "views_cmd": local(log["views post-training"]["command"]), "warp_cmd": local(log["warp post-training"]["command"]),
         "minutes": sum(train_minutes(w / "runs" / r) for r in ("drive-base", "drive-joint", "drive-views")),
         "episodes": e["episodes"], "secs": e["seconds_per_clip"],
         "psnr": ", ".join(f"{x:.2f}" for x in own["model"]["psnr"]),
         "psnr_alone": ", ".join(f"{x:.2f}" for x in own["independent"]["psnr"]),
         "psnr_copy": ", ".join(f"{x:.2f}" for x in own["copy_first"]["psnr"]),
         "cse": own["model"]["cse"], "cse_truth": own["truth"]["cse"], "cse_alone": own["independent"]["cse"],
         "warp": own["model"]["warp_psnr"], "warp_truth": own["truth"]["warp_psnr"],
         "warp_alone": own["independent"]["warp_psnr"], "yaw_err": own["model"]["yaw_rate_err"],
         "yaw_err_truth": own["truth"]["yaw_rate_err"], "left_right": e.get("left_right", float("nan")),
         "left_right_truth": e.get("left_right_truth", float("nan")),
         "cse_ratio": own["model"]["cse"] / own["truth"]["cse"],
         "left_right_pixels": e.get("left_right_pixels", float("nan")),
         "left_right_warp": e.get("left_right_warp", float("nan")),
         "psnr_warp": ", ".join(f"{x:.2f}" for x in own["warp"]["psnr"]), "cse_warp": own["warp"]["cse"],
         "warp_warp": own["warp"]["warp_psnr"], "yaw_err_warp": own["warp"]["yaw_rate_err"]}  # fmt: skip
    return {"drive-views": {"run": str(w / "runs" / "drive-views"), "card": CARD.format(**v)}}


CARD = """# drive-views

A multi-view driving world model ({{params}} parameters): from the first 64x64 frame of three synchronized cameras
on a car (front, front-left +30 deg, front-right -30 deg, 60 deg field of view) and the ego trajectory (x, y, yaw,
speed per frame) it generates all three views jointly, one frame per step, for as long as the trajectory goes. A
latent DiT (patch 1 over `arm-tokenizer`'s 16x8x8 per-frame latents, width 128, 5 blocks, frame stacking of the last
2 frames, local mixing; next-frame-only: the blocks run on the one predicted frame) whose views are stacked, each
with its own positions and a learned view embedding, attending jointly across views; each frame's step of the
trajectory (forward, left, turn from the frame before, speed) enters through the conditioning slot (an MLP per frame
added to the noise embedding). **Anchored at the warp**: each view's first frame carried along the trajectory by
geometry alone (the road as the ground plane, the rest at infinity; the rig's camera-to-car poses and intrinsics,
measured on the training clips, are in its config: `model.rig_mounts`, `model.rig_intrinsics`) is encoded, shown to
the model through a token projection, and is what each new frame is generated as a correction of; one Euler step
per frame (the correction's posterior mean). Post-trained with `worldsmith posttrain views` from a front-view base
without trajectory, then again with `--set model.warp=true`.

```bash
worldsmith generate --model drive-views --input-views front.png,left.png,right.png --trajectory left --frames 17 \\
  --out drive.mp4          # drive.mp4 (views side by side) + drive.view0.mp4 ... one per view
```

The trajectory places the cameras: the first frames must come from this rig (the overlapping rig of `worldsmith sim
drive --rig overlap`, cameras 1.4 m above the road, pitched 5 degrees down), or the warp moves the picture wrongly.

## Data

{episodes_train} drive-world episodes of 17 frames at 64x64, 10 fps, overlapping rig, mixed driver (half the episodes
lane following with traffic, half free left/right turns, speed changes and stops), simulated by worldsmith.

## Reproduce

```bash
{sim}
{base_cmd}
{views_cmd}
{warp_cmd}
```
About {minutes:.0f} minutes of training on 2 CPU cores (`python benchmarks/multiview.py` runs it all).

## Metrics (`worldsmith eval multiview --model drive-views --data data/drive_held`)

```bash
{held}
```

{episodes} held-out episodes, 17 frames from the true first frames, the episode's own trajectory
({secs:.1f} s per 3-view clip on 2 cores):

| | drive-views (joint) | each view alone | true renders | copy first frame | warp floor |
|---|---|---|---|---|---|
| PSNR per view (front, left, right), dB | {psnr} | {psnr_alone} | - | {psnr_copy} | {psnr_warp} |
| CSE (cross-view Sampson error), px | {cse:.2f} | {cse_alone:.2f} | {cse_truth:.2f} | - | {cse_warp:.2f} |
| warp PSNR over the views' overlap, dB | {warp:.2f} | {warp_alone:.2f} | {warp_truth:.2f} | - | {warp_warp:.2f} |
| yaw-rate error from the front view, deg/s | {yaw_err:.1f} | - | {yaw_err_truth:.1f} | - | {yaw_err_warp:.1f} |

Commanded left and right turns from the same first frames told apart by the yaw estimated from the generated front
view: {left_right:.0%} of episodes (true renders {left_right_truth:.0%}, warp floor {left_right_warp:.0%}); the
generated front views are closer in pixels to their own manoeuvre's truth than to the other's {left_right_pixels:.0%}
of the time. Full table: benchmarks/RESULTS.md (multiview section).

## Limits

Its cross-view error is {cse_ratio:.1f}x the true renders' (issue 18 asks for 1.5x) and above the warp floor's: the
views are closest at the first generated frames (4-5 px, 16 episodes) and drift apart over the rollout (17 px by
frame 16), with few SIFT matches per pair at 64 px (5-8). `arm-tokenizer`'s own reconstruction of the true frames already
scores 2.9 px (1.7x the true renders'), so 1.5x is out of reach through this tokenizer. Commanded turns are told
apart less often than on the true renders or the warp; it is better than the warp on PSNR, because the warp slides
what stands off the road by the wrong amount. 64x64, three front-facing cameras, 17-frame clips at 10 fps.
"""


if __name__ == "__main__":
    main()
