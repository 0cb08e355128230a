"""Causal video tokenizer vs diffusers' ``AutoencoderKLCosmos``: speed, quality and streaming memory, in one run.

1. Speed: encode + decode frames/s of worldsmith's tokenizer and of ``AutoencoderKLCosmos`` on the same clip, at
   small and base widths and 64-256 px, (a) on truly equal networks and (b) each project's recommended network
   (tokenizer_speed.py explains what "equal" needs); parameters, GFLOP, GFLOP/s and peak memory of both; timed
   alternately, median of ``--repeats`` after a warm-up. Goal: ours >= 1.3x faster on equal networks.
2. Quality: both architectures trained by worldsmith's Trainer with the same loss (L1 + perceptual), data, steps,
   batch and seed on arm-world clips (64x64), then PSNR / SSIM / Fréchet distance (EfficientNet-lite0 features)
   on held-out episodes. Goal: ours at least equal.
3. Memory: a fresh process streams a 3,000-frame video (made on the fly) through ``encode_stream`` and
   ``decode_stream``; resident memory after 1,000 and 3,000 frames and the peak. Goal: < 1.5 GB, < 10 % growth.

Results go to stdout, to the "tokenizer" section of benchmarks/RESULTS.md and optionally to JSON. Needs the
``bench`` extra (diffusers).

    python benchmarks/tokenizer.py [--preset cv4x8x8-small] [--speed-variant cv8x8x8] [--widths small base]
        [--sizes 64 128 256] [--threads 2] [--steps 300] [--skip quality] [--json f]

``--preset`` is the network of the quality and memory parts; speed runs ``{speed-variant}-{width}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from results_md import machine as cpu_and_python  # benchmarks/results_md.py
from results_md import markers, update_section

from worldsmith.atomic import atomic_write_text
from worldsmith.data.dataset import make_loader
from worldsmith.precision import use_bf16
from worldsmith.tokenizer.config import PRESETS, TokenizerConfig
from worldsmith.tokenizer.evaluation import evaluate_batches, shard_batches
from worldsmith.tokenizer.losses import TokenizerLoss, TokenizerLossConfig
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.tokenizer.train import TokenizerDataConfig, default_train_config, training_clips
from worldsmith.train.rng import seed_everything
from worldsmith.train.trainer import Trainer
from worldsmith.weights import load_tensors
from worldsmith.worlds.generate import simulate
from tokenizer_speed import CosmosReference, bench_row, bf16_quality, markdown_rows, status_mb  # benchmarks/tokenizer_speed.py

BEGIN, END = markers("tokenizer")


# ---------------------------------------------------------------------------------------------------------------
# 1. speed (tokenizer_speed.py: equal networks, FLOPs, interleaved timing, memory)
# ---------------------------------------------------------------------------------------------------------------
def bench_speed(variant: str, widths: list[str], sizes: list[int], frames: int, repeats: int) -> list[dict[str, Any]]:
    rows = []
    for setting in ("equal", "equal-bf16", "defaults"):
        for width in widths if setting != "defaults" else widths[-1:]:  # diffusers has one default network
            for size in sizes:
                row = bench_row(setting, f"{variant}-{width}", size, frames, repeats, memory=True)
                rows.append(row)
                o, r = row["ours"], row["reference"]
                print(f"speed {setting} {variant}-{width} {size}px: ours {o['fps']:.1f} frames/s "
                      f"({o['params'] / 1e6:.2f}M params, {o['gflop']:.1f} GFLOP), reference {r['fps']:.1f} "
                      f"({r['params'] / 1e6:.2f}M, {r['gflop']:.1f} GFLOP) -> {row['speedup']:.2f}x")  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------------------------------
# 2. quality
# ---------------------------------------------------------------------------------------------------------------
def bench_quality(cfg: TokenizerConfig, steps: int, episodes: int, work: Path) -> dict[str, Any]:
    frames, size = 1 + 4 * cfg.temporal_compression, 64
    simulate("arm", episodes=episodes, frames=frames + 8, size=size, out=work / "train", seed=0, progress=False)
    simulate("arm", episodes=8, frames=frames, size=size, out=work / "eval", seed=1000, progress=False)
    data = TokenizerDataConfig(shards=str(work / "train"), frames=frames, size=size)
    train_cfg = default_train_config()
    train_cfg = dataclasses.replace(train_cfg, steps=steps, ckpt_every=steps, progress=False, tensorboard=False,
                                    warmup_steps=min(train_cfg.warmup_steps, steps // 10))  # fmt: skip
    results = {}
    plain = dataclasses.replace(cfg, shortcut=False)  # the reference's architecture exactly, no linear shortcuts
    models = [("ours", lambda: CausalVideoTokenizer(cfg)), ("reference", lambda: CosmosReference(cfg, size))]
    if cfg.shortcut:
        models.insert(1, ("ours without shortcuts", lambda: CausalVideoTokenizer(plain)))
    for name, build in models:
        seed_everything(0)
        model = build()
        loss = TokenizerLoss(TokenizerLossConfig())  # L1 + perceptual, the default objective
        loader = make_loader(training_clips(data, seed=0), train_cfg.batch_size)
        start = time.perf_counter()
        run = work / name.replace(" ", "_")
        Trainer(model, loss, train_cfg, run, loader).fit()
        seconds = time.perf_counter() - start
        model.load_state_dict(load_tensors(run / "model.safetensors"))  # the EMA weights
        batches = shard_batches(str(work / "eval"), frames, size, 8)
        results[name] = {**evaluate_batches(model.eval(), batches), "train_seconds": seconds}
        print(f"  {name}: {results[name]['psnr']:.2f} dB after {steps} steps ({seconds:.0f} s)", flush=True)
    return {"steps": steps, "episodes": episodes, "frames": frames, "size": size, **results}


# ---------------------------------------------------------------------------------------------------------------
# 3. streaming memory (run in a fresh child process)
# ---------------------------------------------------------------------------------------------------------------
def synthetic_chunks(frames: int, size: int, chunk: int):
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    for start in range(0, frames, chunk):
        t = torch.arange(start, min(start + chunk, frames), dtype=torch.float32)[:, None, None]
        red = torch.sin(4 * xx + 0.1 * t)
        green = torch.cos(3 * yy - 0.07 * t)
        blue = torch.exp(-((xx - 0.5 * torch.sin(0.05 * t)) ** 2 + yy**2) * 8) * 2 - 1
        yield torch.stack([red, green, blue])[None]  # (1, 3, t, H, W)


def memory_child(preset: str, frames: int, size: int, chunk: int) -> None:
    torch.manual_seed(0)
    model = CausalVideoTokenizer(PRESETS[preset]()).eval()
    marks, done = {}, 0
    latents = model.encode_stream(synthetic_chunks(frames, size, chunk), chunk_frames=chunk)
    for video in model.decode_stream(latents, chunk_latents=chunk // model.cfg.temporal_compression or 1):
        done += video.shape[2]  # the padded tail may decode up to ct - 1 frames more than were streamed in
        for mark in (1000, frames):
            if done >= mark and mark not in marks:
                marks[mark] = status_mb("VmRSS")
    peak = status_mb("VmHWM")  # not ru_maxrss, which keeps the parent's peak across fork + exec
    print(json.dumps({"frames": frames, "decoded": done, "rss_mb": {str(k): v for k, v in marks.items()},
                      "peak_rss_mb": peak}))  # fmt: skip


def bench_memory(preset: str, frames: int, size: int, chunk: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--memory-child", "--preset", preset, "--memory-frames", str(frames),
           "--memory-size", str(size), "--chunk", str(chunk)]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    result = json.loads(out)
    first, last = result["rss_mb"]["1000"], result["rss_mb"][str(frames)]
    return {**result, "size": size, "chunk": chunk, "growth": last / first - 1}


# ---------------------------------------------------------------------------------------------------------------
def machine() -> str:
    return f"{cpu_and_python()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def markdown(results: dict[str, Any], args: argparse.Namespace) -> str:
    title = f"## Video tokenizer (`python benchmarks/tokenizer.py --preset {args.preset} --threads {args.threads}`)"
    lines = [BEGIN, title, "", f"Machine: {results['machine']}.", ""]
    if "speed" in results:
        frames = results["speed"][0]["frames"]
        lines += [
            f"Encode + decode of a random {frames}-frame clip (1 x 3 x {frames} x size x size), random init, eval "
            f"mode, no grad; both models timed alternately, median of {args.repeats} runs. Goal: ours >= 1.3x "
            "diffusers' AutoencoderKLCosmos on equal networks at small and base widths (moonshot 2x).",
            "",
            "* **equal**: the same network on both sides (benchmarks/tokenizer_speed.py says why that needs care): "
            "ours without its linear shortcuts and with the levels diffusers' decoder needs, diffusers with encoder "
            "widths (c0, *channels) and decoder widths (*channels, c_last); the FLOP counts show what still differs "
            "inside the resampling layers.",
            "* **defaults**: each project's recommended network and settings: the worldsmith preset (with its "
            "shortcuts) as `worldsmith tokenizer encode|decode` runs it (`--precision auto`: bf16 where the CPU "
            "computes it natively), against `AutoencoderKLCosmos()` with diffusers' default arguments (the "
            "Cosmos-1.0 CV8x8x8 layout, 106M parameters) in its default fp32.",
            "* **equal-bf16**: the same pair, both under bf16 autocast (this CPU computes bf16 natively: "
            f"{use_bf16('auto', 'cpu')}).",
            "* GFLOP counted with torch.utils.flop_counter (2 per multiply-add); memory = peak RSS of one encode + "
            "decode minus RSS after building the model, in a fresh process.",
            "",
            *markdown_rows(results["speed"]),
            "",
        ]
    if "bf16_quality" in results:
        b = results["bf16_quality"]
        lines += [
            f"What bf16 costs: the shipped arm-tokenizer on {b['episodes']} held-out arm clips (seeds 1000003..) scores "
            f"{b['psnr_fp32']:.3f} dB in fp32 and {b['psnr_bf16']:.3f} dB in bf16 (change {b['psnr_change']:+.3f} "
            f"± {b['psnr_change_sd']:.3f} dB per clip); the largest pixel difference is {b['largest_pixel_difference']:.1f} "
            "of 255.",
            "",
        ]
    if "quality" in results:
        q = results["quality"]
        lines += [
            f"Quality: both trained by the shared Trainer with the same loss, {q['steps']} steps, batch 4, on "
            f"{q['episodes']} arm-world episodes at {q['size']}x{q['size']} ({q['frames']}-frame clips); scored on 8 "
            "held-out episodes. Goal: ours >= reference.",
            "",
            "| model | PSNR (dB) | SSIM | Fréchet distance | train time (s) |",
            "|---|---|---|---|---|",
        ]
        for name in ("ours", "ours without shortcuts", "reference"):
            if name not in q:
                continue
            r = q[name]
            lines.append(f"| {name} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['fd']:.3f} | {r['train_seconds']:.0f} |")
        lines.append("")
    if "memory" in results:
        m = results["memory"]
        first, last = m["rss_mb"]["1000"], m["rss_mb"][str(m["frames"])]
        lines += [
            f"Streaming memory: {m['frames']:,} frames of {m['size']}x{m['size']} through encode_stream -> "
            f"decode_stream, {m['chunk']} frames per step. Goal: < 1.5 GB, < 10 % growth from 1,000 frames.",
            "",
            f"| RSS at 1,000 frames | RSS at {m['frames']:,} frames | growth | peak RSS |",
            "|---|---|---|---|",
            f"| {first:.0f} MB | {last:.0f} MB | {100 * m['growth']:.1f} % | {m['peak_rss_mb']:.0f} MB |",
            "",
        ]
    return "\n".join(lines + [END])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cv4x8x8-small")
    parser.add_argument("--speed-variant", default="cv8x8x8", help="speed: the compression variant to compare")
    parser.add_argument("--widths", nargs="+", default=["small", "base"], help="speed: preset sizes to compare")
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 128, 256], help="speed: frame sizes")
    parser.add_argument("--frames", type=int, default=17, help="speed: clip length")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (the machine has 2 cores)")
    parser.add_argument("--steps", type=int, default=300, help="quality: training steps of each model")
    parser.add_argument("--episodes", type=int, default=32, help="quality: training episodes")
    parser.add_argument("--memory-frames", type=int, default=3000)
    parser.add_argument("--memory-size", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=16, help="memory: frames per streaming step")
    parser.add_argument("--skip", nargs="*", default=[], choices=["speed", "quality", "memory"])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-results", action="store_true", help="do not update benchmarks/RESULTS.md")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress lines appear as they happen, even when piped
    torch.set_num_threads(args.threads)
    if args.memory_child:
        return memory_child(args.preset, args.memory_frames, args.memory_size, args.chunk)
    if args.preset not in PRESETS:
        raise SystemExit(f"unknown tokenizer preset {args.preset!r}; choose one of: {', '.join(PRESETS)}.")
    cfg = PRESETS[args.preset]()
    results: dict[str, Any] = {"machine": machine(), "preset": args.preset}
    if "speed" not in args.skip:
        results["speed"] = bench_speed(args.speed_variant, args.widths, args.sizes, args.frames, args.repeats)
        results["bf16_quality"] = q = bf16_quality()
        print(f"bf16 quality: {q['psnr_fp32']:.3f} dB fp32, {q['psnr_bf16']:.3f} dB bf16")
    if "memory" not in args.skip:
        results["memory"] = m = bench_memory(args.preset, args.memory_frames, args.memory_size, args.chunk)
        print(f"memory: RSS {m['rss_mb']} MB, growth {100 * m['growth']:.1f} %, peak {m['peak_rss_mb']:.0f} MB")
    if "quality" not in args.skip:
        with tempfile.TemporaryDirectory(prefix="tokenizer-bench-") as tmp:
            results["quality"] = bench_quality(cfg, args.steps, args.episodes, Path(tmp))
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2))
    if not args.no_results:
        update_section("tokenizer", markdown(results, args))


if __name__ == "__main__":
    main()
