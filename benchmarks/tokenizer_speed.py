"""Tokenizer speed against diffusers' ``AutoencoderKLCosmos``: which networks are equal, and how fast each runs.

Equal networks. diffusers' Cosmos autoencoder lays out its levels differently from worldsmith's:

* its decoder's up-block ``i`` maps ``widths[i] -> widths[i + 1]`` (reversed), so with the encoder's widths it
  narrows one level *earlier* than the encoder widened: built from the same widths it is a narrower network than
  its encoder (and than ours, which mirrors the encoder as the original Cosmos tokenizer does);
* its decoder upsamples in time only at up-blocks ``1 .. nt`` (never the first), so a network with temporal
  downsampling needs at least ``nt + 2`` levels; built with fewer, it silently decodes a 17x128x128 clip to 9x64x64.

So the equal pair is: ours with ``shortcut: false`` and at least ``nt + 2`` levels (the extra levels repeat the last
width, as the original CV8x8x8's ``ch_mult = (2, 4, 4)`` does), and diffusers with encoder widths
``(c0, *channels)`` and decoder widths ``(*channels, c_last)``. Both then have the same levels, residual blocks,
widths, attention and resampling positions; what remains different is inside the resampling layers (ours:
strided convs and sub-pixel upsampling, no extra 1x1 convs or pooling paths), which the FLOP counts show.

"Defaults" compares each project's own recommended network and settings instead: a worldsmith preset run as
``worldsmith tokenizer encode|decode`` runs it (``--precision auto``: bf16 autocast where the CPU computes bf16
natively, fp32 elsewhere) against ``AutoencoderKLCosmos()`` with diffusers' default arguments (the Cosmos-1.0
CV8x8x8 layout, widths 128-512) in its default dtype, fp32.

Settings: ``equal`` (fp32 both), ``equal-bf16`` (bf16 autocast both), ``defaults``.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from timing import interleaved  # benchmarks/timing.py
from worldsmith.eval.metrics import psnr
from worldsmith.precision import autocast, use_bf16
from worldsmith.tokenizer.config import PRESETS, TokenizerConfig
from worldsmith.tokenizer.evaluation import shard_batches
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.worlds.generate import simulate
from worldsmith.zoo import resolve


class CosmosReference(nn.Module):
    """diffusers' AutoencoderKLCosmos behind worldsmith's tokenizer interface (``forward``, ``encode``, ``decode``,
    ``cfg``), so the same Trainer, loss and evaluation run both. ``cfg=None`` builds diffusers' defaults."""

    def __init__(self, cfg: TokenizerConfig | None, resolution: int = 1024) -> None:
        super().__init__()
        from diffusers import AutoencoderKLCosmos

        self.cfg, self.fsq = cfg, None
        if cfg is None:
            self.vae = AutoencoderKLCosmos()
            return
        ch = tuple(cfg.channels)
        self.vae = AutoencoderKLCosmos(
            latent_channels=cfg.latent_channels, encoder_block_out_channels=(ch[0], *ch),
            decode_block_out_channels=(*ch, ch[-1]), attention_resolutions=(), resolution=resolution,
            num_layers=cfg.num_res_blocks, patch_size=cfg.patch_size, spatial_compression_ratio=cfg.spatial_compression,
            temporal_compression_ratio=cfg.temporal_compression,
        )  # fmt: skip

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(video).latent_dist.mode()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z).sample

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return self.decode(self.encode(video)), {}


def equal_config(cfg: TokenizerConfig) -> TokenizerConfig:
    """``cfg`` without shortcuts and with enough levels that diffusers can build the same network (module doc)."""
    ch = list(cfg.channels)
    needed = cfg.temporal_downsamples + 2 if cfg.temporal_downsamples else len(ch)
    ch += [ch[-1]] * max(0, needed - len(ch))
    return dataclasses.replace(cfg, channels=tuple(ch), shortcut=False)


def build(project: str, setting: str, preset: str, size: int) -> nn.Module:
    """One of the four models a speed row compares: ours / reference, equal / defaults."""
    cfg = PRESETS[preset]()
    torch.manual_seed(0)
    equal = setting.startswith("equal")
    if project == "ours":  # in the layout from_pretrained gives every user
        return CausalVideoTokenizer(equal_config(cfg) if equal else cfg).eval().use_inference_layout()
    return CosmosReference(equal_config(cfg) if equal else None, size).eval()


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def bf16_for(project: str, setting: str) -> bool:
    """Whether ``project`` runs in bf16 under ``setting`` (module doc)."""
    if setting == "defaults":
        return project == "ours" and use_bf16("auto", "cpu")
    return setting == "equal-bf16"


@torch.no_grad()
def code(model: nn.Module, video: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    with autocast(bf16):
        return model.decode(model.encode(video)).float()


@torch.no_grad()
def gflops(model: nn.Module, video: torch.Tensor) -> float:
    """Floating-point operations (2 per multiply-add) of one encode + decode, in GFLOP."""
    with FlopCounterMode(display=False) as counter:
        code(model, video)  # (in fp32: the count does not depend on the dtype)
    return counter.get_total_flops() / 1e9


def status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS: now; VmHWM: the peak since exec or reset).
    Not ``ru_maxrss``: across fork + exec it keeps the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_memory_child(project: str, setting: str, preset: str, size: int, frames: int, threads: int) -> None:
    """(in a fresh process) resident memory before and at the peak of one encode + decode, in MB."""
    torch.set_num_threads(threads)
    model = build(project, setting, preset, size)
    video = torch.rand(1, 3, frames, size, size) * 2 - 1
    before = status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    code(model, video, bf16_for(project, setting))
    print(json.dumps({"before_mb": before, "peak_mb": status_mb("VmHWM")}))


def peak_memory(project: str, setting: str, preset: str, size: int, frames: int, threads: int) -> float:
    """Memory one encode + decode adds on top of the built model (peak RSS minus RSS after building), in MB."""
    cmd = [sys.executable, __file__, project, setting, preset, str(size), str(frames), str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    result = json.loads(out)
    return result["peak_mb"] - result["before_mb"]


def bench_row(setting: str, preset: str, size: int, frames: int, repeats: int, memory: bool) -> dict[str, Any]:
    """Both projects' models for one (setting, preset, size): shapes checked, parameters, GFLOP, frames/s, memory."""
    models = {p: build(p, setting, preset, size) for p in ("ours", "reference")}
    video = torch.rand(1, 3, frames, size, size) * 2 - 1
    bf16 = {p: bf16_for(p, setting) for p in models}
    shapes = {p: tuple(code(m, video).shape) for p, m in models.items()}
    if len(set(shapes.values())) != 1 or shapes["ours"] != tuple(video.shape):
        raise SystemExit(f"decoded shapes differ from the input {tuple(video.shape)}: {shapes}")
    seconds = interleaved({p: (lambda m=m, p=p: code(m, video, bf16[p])) for p, m in models.items()}, repeats)
    row: dict[str, Any] = {"setting": setting, "preset": preset, "size": size, "frames": frames,
                           "precision": {p: "bf16" if b else "fp32" for p, b in bf16.items()}}  # fmt: skip
    for p, m in models.items():
        row[p] = {"params": parameters(m), "gflop": gflops(m, video), "fps": frames / seconds[p]}
        row[p]["gflops_per_s"] = row[p]["gflop"] / seconds[p]
        if memory:
            row[p]["memory_mb"] = peak_memory(p, setting, preset, size, frames, torch.get_num_threads())
    row["speedup"] = seconds["reference"] / seconds["ours"]
    return row


def markdown_rows(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| setting | precision ours / ref | ours | size | params ours / ref | GFLOP ours / ref | frames/s ours / ref | GFLOP/s ours / ref "
             "| memory MB ours / ref | speed-up |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        o, f = r["ours"], r["reference"]
        mem = f"{o['memory_mb']:.0f} / {f['memory_mb']:.0f}" if "memory_mb" in o else "-"
        precision = f"{r['precision']['ours']} / {r['precision']['reference']}"
        lines.append(f"| {r['setting']} | {precision} | {r['preset']} | {r['size']} | {o['params'] / 1e6:.2f}M / "
                     f"{f['params'] / 1e6:.2f}M | {o['gflop']:.1f} / {f['gflop']:.1f} | {o['fps']:.1f} / "
                     f"{f['fps']:.1f} | {o['gflops_per_s']:.0f} / {f['gflops_per_s']:.0f} | {mem} | "
                     f"**{r['speedup']:.2f}x** |")  # fmt: skip
    return lines


def bf16_quality(episodes: int = 32, frames: int = 17) -> dict[str, Any]:
    """What bf16 costs in quality: PSNR of the shipped arm-tokenizer on held-out arm clips (seeds never trained on),
    run in fp32 and in bf16 autocast, and the largest pixel difference between the two."""
    model = CausalVideoTokenizer.from_pretrained(resolve("arm-tokenizer")).eval()
    with tempfile.TemporaryDirectory(prefix="tokenizer-bf16-") as tmp:
        simulate("arm", episodes=episodes, frames=frames, size=64, out=Path(tmp), seed=1000003, progress=False)
        scores: dict[str, list[float]] = {"fp32": [], "bf16": []}
        largest = 0.0
        for batch in shard_batches(tmp, frames, 64, episodes):
            x = batch["video"]
            out = {k: code(model, x, k == "bf16").clamp(-1, 1) for k in scores}
            for k in scores:
                scores[k].append(float(psnr(out[k], x)))
            largest = max(largest, float((out["fp32"] - out["bf16"]).abs().max()) * 127.5)
    mean = {k: statistics.mean(v) for k, v in scores.items()}
    diffs = [b - a for a, b in zip(scores["fp32"], scores["bf16"])]
    return {"episodes": len(diffs), "psnr_fp32": mean["fp32"], "psnr_bf16": mean["bf16"],
            "psnr_change": statistics.mean(diffs), "psnr_change_sd": statistics.stdev(diffs),
            "largest_pixel_difference": largest}  # fmt: skip


if __name__ == "__main__":  # the memory child: project setting preset size frames threads
    a = sys.argv[1:]
    peak_memory_child(a[0], a[1], a[2], int(a[3]), int(a[4]), int(a[5]))
