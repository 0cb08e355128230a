"""Camera control on the orbit world, from nothing: the recipe of the ``orbit-camera`` model and its scores.

1. simulate the orbit world at 128x128 (``--episodes`` training scenes of 17 frames, seeds 0..; each a random
   orbit, dolly, pan or crane move) and ``--heldout`` scenes from seed 5000000 (never trained on);
2. train the base: a Video2World diffusion model of the orbit video with no camera (``arm-tokenizer``'s per-frame
   16x16x16 latents at 128 px, patch 2: 64 tokens per frame; frame stacking, next-frame-only: 1-2 given frames,
   the one after them predicted);
3. post-train it on the same clips' camera poses (``worldsmith posttrain camera --set model.warp=true``: Plücker
   rays per latent pixel, each frame's relative to the frame before it, scaled to unit std; and the first frame
   warped along the path by geometry (worldsmith/conditioning/warp.py) as the anchor of every generated frame);
4. ``worldsmith eval camera`` on the held-out scenes: every path of worldsmith/eval/camera.py (the scene's own
   move, reversed, twice as fast, a 30-degree orbit left and right, a 0.8 m dolly in), against the simulator's
   renders of the same paths, the true renders' own 3D consistency, the base without camera and the warp alone
   (the floors);
5. write the ``camera`` section of benchmarks/RESULTS.md, and WORK/cards.json, from which
   ``python benchmarks/zoo.py --work WORK`` publishes ``orbit-camera`` as a shipped model.
Every step resumes (run the command again); finished steps are skipped. Each is a ``worldsmith`` command, printed
before it runs.

    python benchmarks/camera.py [--work runs/camera] [--base-steps 3000] [--steps 3000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml
from results_md import machine, markers, publish, sets, train_minutes
from results_md import run_worldsmith as run

FRAMES, SIZE = 17, 128


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("runs/camera"))
    p.add_argument("--episodes", type=int, default=1024, help="training scenes")
    p.add_argument("--heldout", type=int, default=48, help="held-out scenes (scored: --eval-episodes of them)")
    p.add_argument("--eval-episodes", type=int, default=32)
    p.add_argument("--base-steps", type=int, default=3000, help="base training steps (~0.24 s each on 2 cores)")
    p.add_argument("--steps", type=int, default=3000, help="camera post-training steps (~0.27 s each)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the training processes")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--no-results", action="store_true", help="do not write benchmarks/RESULTS.md")
    return p.parse_args()


def base_args(w: Path, a: argparse.Namespace) -> list[str]:
    # the arm action model's architecture (benchmarks/RESULTS.md) with patch 2 over the 16x16 latents of 128 px
    # frames; no camera: the floor, and the start of the post-training
    return ["train", "diffusion", "--preset", "small", "--tokenizer", "arm-tokenizer", "--data", str(w / "orbit_train"),
            "--out", str(w / "runs" / "orbit-base"),
            *sets("model.residual=true", "data.window=3", f"data.frames={FRAMES}", f"data.size={SIZE}",
                  "model.max_cond_latents=2", "model.dit.patch=2", "model.dit.width=128", "model.dit.depth=5",
                  "model.dit.heads=4", "model.dit.adaln_lora_dim=64", "model.dit.anchor_frames=2",
                  "model.dit.local_mixing=true", "model.dit.next_frame_only=true", "model.caption_dropout=0.5",
                  "model.video2world_prob=1.0", "model.edm.p_mean=0.5", "model.edm.p_std=1.2", f"train.steps={a.base_steps}",
                  "train.batch_size=32", "train.lr=1e-3", "train.warmup_steps=100", "train.ema_decay=0.995",
                  "data.cache_latents=true", "data.cache_crops=1")]  # fmt: skip


def camera_args(w: Path, a: argparse.Namespace) -> list[str]:
    return ["posttrain", "camera", "--from", str(w / "runs" / "orbit-base"), "--data", str(w / "orbit_train"),
            "--out", str(w / "runs" / "orbit-camera"),
            *sets("model.warp=true", f"train.steps={a.steps}", "train.batch_size=32", "train.lr=1e-3",
                  "train.warmup_steps=100", "train.ema_decay=0.995")]  # fmt: skip


def main() -> None:
    a = parse()
    w = a.work.resolve()
    log: dict = {}
    sim = ["--frames", str(FRAMES), "--size", str(SIZE), "--views", "1", "-j", "2"]
    run(["sim", "orbit", "--episodes", str(a.episodes), "--seed", "0", *sim, "--out", str(w / "orbit_train")], log,
        "sim orbit (training)", 1)  # fmt: skip
    run(["sim", "orbit", "--episodes", str(a.heldout), "--seed", "5000000", *sim, "--out", str(w / "orbit_held")], log,
        "sim orbit (held out)", 1)  # fmt: skip
    run(base_args(w, a), log, "base", a.threads)
    run(camera_args(w, a), log, "camera post-training", a.threads)
    report = w / "camera_eval.json"
    run(["eval", "camera", "--model", str(w / "runs" / "orbit-camera"), "--data", str(w / "orbit_held"),
         "--episodes", str(a.eval_episodes), "--frames", str(FRAMES), "--base", str(w / "runs" / "orbit-base"),
         "--json", str(report)], log, "eval", a.threads)  # fmt: skip
    results = {"steps": log, "eval": json.loads(report.read_text()), "machine": machine()}
    publish("camera", render(results, a), results, a.json, not a.no_results)
    (w / "cards.json").write_text(json.dumps(cards(w, a, log, results["eval"]), indent=2))


def cards(w: Path, a: argparse.Namespace, log: dict, e: dict) -> dict:
    """Model cards of the two runs (benchmarks/zoo.py adds the licence and the parameter count)."""

    def local(cmd: str) -> str:
        for path, short in ((w / "orbit_train", "data/orbit_train"), (w / "orbit_held", "data/orbit_held"),
                            (w / "runs", "runs")):  # fmt: skip
            cmd = cmd.replace(str(path), short)
        return cmd

    nan = float("nan")
    v = {"train_episodes": a.episodes, "heldout": a.heldout, "frames": FRAMES, "size": SIZE,
         "sim": local(log["sim orbit (training)"]["command"]), "held": local(log["sim orbit (held out)"]["command"]),
         "base_cmd": local(log["base"]["command"]), "camera_cmd": local(log["camera post-training"]["command"]),
         "base_min": train_minutes(w / "runs" / "orbit-base"), "camera_min": train_minutes(w / "runs" / "orbit-camera"),
         "floor": e.get("floor_psnr", nan), "floor_success": e.get("floor_pose_success", nan),
         "floor_sampson": e.get("floor_sampson", nan)} | e  # fmt: skip
    model = yaml.safe_load((w / "runs" / "orbit-camera" / "config.yaml").read_text())["model"]
    v |= {"warp_height": model.get("warp_height", 0.0), "warp_pitch": model.get("warp_pitch", 0.0)}
    return {"orbit-camera": {"run": str(w / "runs" / "orbit-camera"), "card": CAMERA_CARD.format(**v)}}


DATA = """{train_episodes} orbit-world scenes of {frames} frames at {size}x{size}, 10 fps (seeds 0..: rooms with 4-8 random
objects, one random orbit, dolly, pan or crane move each), simulated by worldsmith."""

CAMERA_CARD = """# orbit-camera

A camera-controlled world model of the orbit world ({{params}} parameters): from one 128x128 frame and a camera path
(OpenCV camera-to-world poses, one per frame: `--camera orbit_left`, `dolly_in:0.5` or a JSON file) it generates
the video seen along the path. A Video2World base of the orbit world (a latent DiT, patch 2 over `arm-tokenizer`'s
16x16x16 per-frame latents, width 128, 5 blocks, frame stacking, next-frame-only) post-trained with `worldsmith
posttrain camera --set model.warp=true`: Plücker rays per latent pixel, each frame's relative to the frame before it
(the step's motion) and scaled to unit std, projected into the tokens; and the first frame warped to each frame's
camera by geometry alone (the floor as a plane at z = 0, the rest at infinity: worldsmith/conditioning/warp.py),
encoded, added to the tokens and used as the anchor of the residual each frame is generated as. So the model draws
what the warp gets wrong (what the first frame did not see, what stands off the floor), not the camera's motion.
A path given relative to its first camera (named paths, JSON files) starts {warp_height:.2f} m above the floor,
pitched {warp_pitch:.0f} degrees (the training clips' medians). Sampling: 1 Euler step per frame (the posterior mean
of the correction to the warp), each from the last 2 frames.

```bash
worldsmith generate --model orbit-camera --input first.png --camera orbit_left:30 --frames 17 --out orbit.mp4
```

## Data

""" + DATA + """

## Reproduce

```bash
{sim}
{base_cmd}
{camera_cmd}
```
About {camera_min:.0f} minutes on 2 CPU cores after the base.

## Metrics (`worldsmith eval camera --model orbit-camera --base runs/orbit-base --data data/orbit_held`)

```bash
{held}
```

On {episodes} of these held-out scenes, six camera paths each (the scene's own move, reversed, twice as fast, a
30-degree orbit left and right, a 0.8 m dolly in), 17 frames from the true first frame:

| | camera model | true renders | base, no camera | first frame warped (geometry alone) |
|---|---|---|---|---|
| pose success (pose recovered, >= 15 inliers; pans: rotation only) | {pose_success:.0%} | {pose_success_truth:.0%} | {floor_success:.0%} | {warp_pose_success:.0%} |
| pose match (within 5 deg / 30 deg of the command) | {pose_match:.0%} | {pose_match_truth:.0%} | - | - |
| rotation error, deg | {rot_err_deg:.2f} | {rot_err_deg_truth:.2f} | - | {warp_rot_err_deg:.2f} |
| Sampson error, px | {sampson:.3f} | {sampson_truth:.3f} | {floor_sampson:.3f} | {warp_sampson:.3f} |
| PSNR against the truth, dB | {psnr:.2f} | - | {floor:.2f} | {warp_psnr:.2f} |

Orbit left and right from the same frame told apart by the estimated poses: {left_right:.0%} of scenes (true
renders {left_right_truth:.0%}); generated videos closer in pixels to their own path's truth than to the other's:
{left_right_pixels:.0%}. Per path: benchmarks/RESULTS.md (camera section).

## Limits

**Below the warp it starts from**: the first frame warped along the path by geometry alone scores higher on every
figure above; the model's own corrections still cost more than they fix. Issue 17's goals are not all met (pose
success 82 % and within 10 points of the truth's; PSNR 3 dB over the base without camera; left and right told apart
in every scene). 128x128 rooms of simple objects only; what the first frame does not show is invented (and
blurred); trained on 17-frame moves; the warp needs the floor: world poses, or the camera height and pitch above.
"""


def render(r: dict, a: argparse.Namespace) -> str:
    begin, end = markers("camera")
    e = r["eval"]
    lines = [begin, "## Camera control on the orbit world (`python benchmarks/camera.py`)", "",
             f"{time.strftime('%Y-%m-%d')}, {r['machine']}, {a.threads} torch threads per training process. Every "
             f"step, as run (wall time on this machine; training steps: the run's own training time from its log):",
             "", "| step | minutes | command |", "|---|---|---|"]  # fmt: skip
    runs = {"base": a.work.resolve() / "runs" / "orbit-base", "camera post-training": a.work.resolve() / "runs" / "orbit-camera"}
    for name, step in r["steps"].items():
        minutes = train_minutes(runs[name]) if name in runs else step["seconds"] / 60
        lines.append(f"| {name} | {minutes:.1f} | `{step['command']}` |")
    lines += ["", f"{e['episodes']} held-out scenes, {e['frames']} frames at {e['size']}x{e['size']} from the true "
              "first frame, empty prompts, 1 Euler step (a warp model's default; the base sampled the same way). "
              "Pose success: share of frame pairs whose relative pose is recovered (>= 15 inliers; the essential "
              "matrix, or the rotation-only model where the commanded pair has no baseline: pans); pose match: that pose within 5 deg / 30 deg of the commanded rotation / "
              "translation direction; errors are per-video medians over frame pairs, then means over scenes "
              "(± standard error); Sampson in pixels.", "",
              "| path | video | pose success | pose match | rot err deg | trans err deg | Sampson px | PSNR dB | SSIM |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for path, rows in e["paths"].items():
        for who, label in (("model", "camera model"), ("truth", "true renders"), ("floor", "base, no camera"),
                           ("warp", "first frame warped along the path (geometry, floor)"),
                           ("copy_first", "copy first frame")):  # fmt: skip
            if who not in rows:
                continue
            m = rows[who]

            def f(key: str, fmt: str, sem: bool = False) -> str:
                if key not in m or m[key] != m[key]:
                    return "-"
                s = fmt.format(m[key])
                return s + (f" ± {fmt.format(m[key + '_sem'])}" if sem and key + "_sem" in m else "")

            lines.append(f"| {path} | {label} | {f('pose_success', '{:.0%}')} | {f('pose_match', '{:.0%}')} | "
                         f"{f('rot_err_deg', '{:.2f}', True)} | {f('trans_err_deg', '{:.1f}')} | "
                         f"{f('sampson', '{:.3f}')} | {f('psnr', '{:.2f}', True)} | {f('ssim', '{:.3f}')} |")  # fmt: skip
    lines += ["", f"Means over paths: pose success {e['pose_success']:.0%} (true renders {e['pose_success_truth']:.0%}), "
              f"pose match {e['pose_match']:.0%} (true {e['pose_match_truth']:.0%}), rotation error "
              f"{e['rot_err_deg']:.2f} deg (true {e['rot_err_deg_truth']:.2f}), Sampson {e['sampson']:.3f} px (true "
              f"{e['sampson_truth']:.3f}), PSNR {e['psnr']:.2f} dB against the base without camera "
              f"{e.get('floor_psnr', float('nan')):.2f} and copy-first {e['floor_copy_first_psnr']:.2f}. Orbit left "
              f"and right from the same frame told apart by the estimated poses: {e['left_right']:.0%} of scenes "
              f"(true renders {e['left_right_truth']:.0%}, the warp floor {e.get('left_right_warp', float('nan')):.0%}); "
              f"generated videos closer in pixels to their own path's "
              f"truth than to the other's: {e['left_right_pixels']:.0%}.", "", end]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
