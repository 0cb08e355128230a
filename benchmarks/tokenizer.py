"""Causal video tokenizer vs diffusers' ``AutoencoderKLCosmos``: speed, quality and streaming memory, in one run.

1. Speed: encode + decode frames/s of worldsmith's tokenizer and of ``AutoencoderKLCosmos`` built with the same
   compression, widths, depth, latent channels and Haar patch (both random init, eval mode, no grad, attention
   at the lowest resolution only), on the same (1, 3, T, S, S) clip; median of ``--repeats`` after a warm-up.
   Goal: ours >= 1.3x faster. Parameter counts of both.
2. Quality: both architectures trained by worldsmith's Trainer with the same loss (L1 + perceptual), data, steps,
   batch and seed on arm-world clips (64x64), then PSNR / SSIM / Fréchet distance (EfficientNet-lite0 features)
   on held-out episodes. Goal: ours at least equal.
3. Memory: a fresh process streams a 3,000-frame video (made on the fly) through ``encode_stream`` and
   ``decode_stream``; resident memory after 1,000 and 3,000 frames and the peak. Goal: < 1.5 GB, < 10 % growth.

Results go to stdout, to the "tokenizer" section of benchmarks/RESULTS.md and optionally to JSON. Needs the
``bench`` extra (diffusers).

    python benchmarks/tokenizer.py [--preset cv4x8x8-small] [--size 128] [--steps 300] [--skip quality] [--json f]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from results_md import machine as cpu_and_python  # benchmarks/results_md.py
from results_md import markers, update_section
from torch import nn

from worldsmith.atomic import atomic_write_text
from worldsmith.data.dataset import make_loader
from worldsmith.tokenizer.config import PRESETS, TokenizerConfig
from worldsmith.tokenizer.evaluation import evaluate_batches, shard_batches
from worldsmith.tokenizer.losses import TokenizerLoss, TokenizerLossConfig
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.tokenizer.train import TokenizerDataConfig, default_train_config, training_clips
from worldsmith.train.rng import seed_everything
from worldsmith.train.trainer import Trainer
from worldsmith.weights import load_tensors
from worldsmith.worlds.generate import simulate

BEGIN, END = markers("tokenizer")


class CosmosReference(nn.Module):
    """diffusers' AutoencoderKLCosmos, configured like a worldsmith TokenizerConfig, behind the same interface
    (``forward``, ``encode``, ``decode``, ``cfg``) so the same Trainer, loss and evaluation run both."""

    def __init__(self, cfg: TokenizerConfig, resolution: int) -> None:
        super().__init__()
        from diffusers import AutoencoderKLCosmos

        self.cfg, self.fsq = cfg, None
        # diffusers' block i maps widths[i] -> widths[i + 1]: a leading c0 makes its levels ours (conv_in -> c0)
        widths = (cfg.channels[0], *cfg.channels)
        self.vae = AutoencoderKLCosmos(
            latent_channels=cfg.latent_channels, encoder_block_out_channels=widths, decode_block_out_channels=widths,
            attention_resolutions=(), resolution=resolution, num_layers=cfg.num_res_blocks, patch_size=cfg.patch_size,
            spatial_compression_ratio=cfg.spatial_compression, temporal_compression_ratio=cfg.temporal_compression,
        )  # fmt: skip

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(video).latent_dist.mode()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z).sample

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return self.decode(self.encode(video)), {}


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------------------------
# 1. speed
# ---------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def coding_time(model: nn.Module, video: torch.Tensor, repeats: int) -> float:
    model.decode(model.encode(video))  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.decode(model.encode(video))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_speed(cfg: TokenizerConfig, size: int, frames: int, repeats: int) -> dict[str, Any]:
    torch.manual_seed(0)
    ours, ref = CausalVideoTokenizer(cfg).eval(), CosmosReference(cfg, size).eval()
    video = torch.rand(1, 3, frames, size, size) * 2 - 1
    z_ours, z_ref = ours.encode(video), ref.encode(video)
    assert z_ours.shape == z_ref.shape, f"latent shapes differ: {tuple(z_ours.shape)} vs {tuple(z_ref.shape)}"
    t_ours, t_ref = coding_time(ours, video, repeats), coding_time(ref, video, repeats)
    return {"clip": [1, 3, frames, size, size], "latent": list(z_ours.shape), "ours_fps": frames / t_ours,
            "reference_fps": frames / t_ref, "speedup": t_ref / t_ours, "ours_params": parameters(ours),
            "reference_params": parameters(ref), "threads": torch.get_num_threads()}  # fmt: skip


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
def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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
                marks[mark] = rss_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
    title = f"## Video tokenizer (`python benchmarks/tokenizer.py --preset {args.preset}`)"
    lines = [BEGIN, title, "", f"Machine: {results['machine']}.", ""]
    if "speed" in results:
        s = results["speed"]
        clip = "x".join(map(str, s["clip"][2:]))
        lines += [
            f"Encode + decode of a random {clip} (T x H x W) clip, random init, median of {args.repeats} runs. "
            "Goal: >= 1.3x faster than diffusers' AutoencoderKLCosmos at the same compression, widths and depth.",
            "",
            "| model | parameters | frames/s | speed-up |",
            "|---|---|---|---|",
            f"| worldsmith {args.preset} | {s['ours_params']:,} | {s['ours_fps']:.1f} | {s['speedup']:.2f}x |",
            f"| AutoencoderKLCosmos, same config | {s['reference_params']:,} | {s['reference_fps']:.1f} | 1.00x |",
            "",
        ]
        if PRESETS[args.preset]().shortcut:
            lines += ["Ours includes the preset's linear encoder/decoder shortcuts (worldsmith/tokenizer/shortcut.py), "
                      "which the reference lacks; the quality table also trains ours without them.", ""]
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
    parser.add_argument("--size", type=int, default=128, help="speed: frame size")
    parser.add_argument("--frames", type=int, default=17, help="speed: clip length")
    parser.add_argument("--repeats", type=int, default=5)
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
    if args.memory_child:
        return memory_child(args.preset, args.memory_frames, args.memory_size, args.chunk)
    if args.preset not in PRESETS:
        raise SystemExit(f"unknown tokenizer preset {args.preset!r}; choose one of: {', '.join(PRESETS)}.")
    cfg = PRESETS[args.preset]()
    results: dict[str, Any] = {"machine": machine(), "preset": args.preset}
    if "speed" not in args.skip:
        results["speed"] = s = bench_speed(cfg, args.size, args.frames, args.repeats)
        print(f"speed: ours {s['ours_fps']:.1f} frames/s, reference {s['reference_fps']:.1f} frames/s -> "
              f"{s['speedup']:.2f}x; parameters {s['ours_params']:,} vs {s['reference_params']:,}")
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
