"""How close the DiT's training step comes to the machine's limit, and where the rest of the time goes.

The physical limit of a CPU here is a bare matrix multiply: ``efficiency`` times one training step (forward,
backward, fused AdamW) of worldsmith's ``DiT`` at a given width, counts its floating-point operations with
``torch.utils.flop_counter`` (2 per multiply-add), and divides the step's FLOP/s by those of a bare GEMM of the
DiT's own MLP shape (tokens x D x 4D) in the same dtype and threads. The profiler splits the step's time into
matrix multiplies, attention, the optimizer and the rest (elementwise kernels, norms, layout copies, casts).

``precision_rows`` times the training step of worldsmith's DiT and diffusers' ``CosmosTransformer3DModel`` at the
same configuration in fp32 for both, in bf16 autocast for both, and ours in bf16 against theirs in fp32 (what a user
gets with ``--set train.precision=bf16`` against diffusers as it runs on a CPU by default).

    python benchmarks/dit_speed.py [--threads 1] [--repeats 5] [--json f]   (also part of benchmarks/diffusion.py)
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from results_md import machine as cpu_and_python  # benchmarks/results_md.py
from results_md import markers, publish
from timing import interleaved  # benchmarks/timing.py
from worldsmith.diffusion.condition import Condition
from worldsmith.diffusion.config import DiTConfig
from worldsmith.diffusion.dit import DiT
from worldsmith.precision import autocast

TEXT_LEN = 16


def cosmos_transformer(width: int, depth: int, heads: int, lora: int, in_channels: int = 17):
    """diffusers' Cosmos DiT at worldsmith's config: patch 1x2x2, MLP 4x, 384-wide text, RoPE only, the
    condition-mask channel as an input channel (``in_channels`` = 16 latents + 1)."""
    from diffusers import CosmosTransformer3DModel

    return CosmosTransformer3DModel(
        in_channels=in_channels, out_channels=16, num_attention_heads=heads, attention_head_dim=width // heads,
        num_layers=depth, mlp_ratio=4.0, text_embed_dim=384, adaln_lora_dim=lora, max_size=(128, 240, 240),
        patch_size=(1, 2, 2), concat_padding_mask=False, extra_pos_embed_type=None,
    )  # fmt: skip


def woken(model: torch.nn.Module) -> torch.nn.Module:
    """Perturb every weight so the zero-initialized parts (gates, output layers) do real work."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


def step_fns(width: int, depth: int, heads: int, lora: int, grid: tuple[int, int, int], bf16: dict[str, bool],
             projects: tuple[str, ...] = ("ours", "diffusers")) -> tuple[dict[str, Callable[[], None]], dict]:  # fmt: skip
    """One training step (forward, loss, backward, fused AdamW) per project, with the models' parameter counts."""
    t, h, w = grid
    x, text = torch.randn(1, 16, t, h, w), torch.randn(1, TEXT_LEN, 384)
    mask = torch.zeros(1, 1, t, h, w)
    cond = Condition(text, torch.ones(1, TEXT_LEN, dtype=torch.bool), fps=torch.tensor([24.0]), mask=mask[..., :1, :1])
    models: dict[str, torch.nn.Module] = {}
    forwards: dict[str, Callable[[], torch.Tensor]] = {}
    if "ours" in projects:
        cfg = DiTConfig(width=width, depth=depth, heads=heads, adaln_lora_dim=lora, abs_pos=False, cond_mask_channel=True)
        models["ours"] = ours = woken(DiT(cfg))
        forwards["ours"] = lambda: ours(x, torch.full((1, 1), 0.3), cond)
    if "diffusers" in projects:
        models["diffusers"] = theirs = woken(cosmos_transformer(width, depth, heads, lora))
        forwards["diffusers"] = lambda: theirs(x, torch.full((1,), 0.3), text, fps=24, condition_mask=mask,
                                               return_dict=False)[0]  # fmt: skip

    def step(name: str) -> Callable[[], None]:
        opt = torch.optim.AdamW(models[name].parameters(), 1e-5, fused=True)

        def run() -> None:
            with autocast(bf16[name]):
                out = forwards[name]()
            out.float().square().mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return run

    return {k: step(k) for k in models}, {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}


def gemm_gflops(m: int, k: int, n: int, dtype: torch.dtype, repeats: int = 10) -> float:
    """FLOP/s of a bare (m, k) x (k, n) matrix multiply: the machine's limit for this shape, dtype and threads."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * m * k * n / statistics.median(times) / 1e9


def category(op: str) -> str:
    if op in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"):
        return "matmul"
    if "scaled_dot_product" in op or "flash_attention" in op:
        return "attention"
    if "adam" in op:
        return "optimizer"
    return "other"


def efficiency(width: int, depth: int, heads: int, lora: int, grid: tuple[int, int, int], repeats: int,
               bf16: bool) -> dict[str, Any]:  # fmt: skip
    """Training-step FLOP/s of ours as a share of a bare GEMM's, and the step's time by category."""
    fns, params = step_fns(width, depth, heads, lora, grid, {"ours": bf16}, projects=("ours",))
    step = fns["ours"]
    with FlopCounterMode(display=False) as counter:
        step()
    gflop = counter.get_total_flops() / 1e9
    seconds = interleaved({"ours": step}, repeats)["ours"]
    tokens = grid[0] * (grid[1] // 2) * (grid[2] // 2)
    limit = gemm_gflops(tokens, width, 4 * width, torch.bfloat16 if bf16 else torch.float32)
    with torch.profiler.profile() as prof:
        step()
    split: dict[str, float] = {}
    for event in prof.key_averages():
        split[category(event.key)] = split.get(category(event.key), 0.0) + event.self_cpu_time_total
    total = sum(split.values())
    return {"width": width, "depth": depth, "heads": heads, "tokens": tokens, "precision": "bf16" if bf16 else "fp32",
            "params": params["ours"], "gflop": gflop, "seconds": seconds, "gflops_per_s": gflop / seconds,
            "gemm_gflops_per_s": limit, "share": gflop / seconds / limit,
            "time_split": {k: v / total for k, v in sorted(split.items())}}  # fmt: skip


def precision_rows(width: int, depth: int, heads: int, lora: int, grid: tuple[int, int, int],
                   repeats: int) -> dict[str, Any]:  # fmt: skip
    """Training-step seconds of ours and diffusers in fp32 and bf16 (interleaved), and the three ratios."""
    seconds: dict[str, float] = {}
    for precision in ("fp32", "bf16"):
        flag = precision == "bf16"
        fns, params = step_fns(width, depth, heads, lora, grid, {"ours": flag, "diffusers": flag})
        for k, v in interleaved(fns, repeats).items():
            seconds[f"{k} {precision}"] = v
    return {"grid": list(grid), "width": width, "depth": depth, "params": params, "seconds": seconds,
            "equal_fp32": seconds["diffusers fp32"] / seconds["ours fp32"],
            "equal_bf16": seconds["diffusers bf16"] / seconds["ours bf16"],
            "ours_bf16_vs_diffusers_fp32": seconds["diffusers fp32"] / seconds["ours bf16"]}  # fmt: skip


def section(results: dict[str, Any]) -> str:
    eff, prec = results["rows"], results["precision"]
    m = results["machine"]
    begin, end = markers("dit-speed")
    title = "## DiT training step: share of the machine's limit, and against diffusers (`python benchmarks/dit_speed.py`)"
    lines = [begin, title, "",
             f"Machine: {m['cpu']}, {m['threads']} torch thread(s), torch {m['torch']}.", "",
             "Training step (forward, backward, fused AdamW) FLOP/s as a share of a bare GEMM of the DiT's MLP shape "
             "(tokens x D x 4D) in the same dtype and threads, the physical limit here, at the small (192) and base (768) "
             "presets' widths and this benchmark's 384. Goal: >= 70 % at the base width. Time split from the "
             "profiler (self CPU time).", "",
             "| width x depth | tokens | precision | params | GFLOP/step | step | GFLOP/s | GEMM GFLOP/s | share | "
             "matmul / attention / optimizer / other |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for e in eff:
        s = e["time_split"]
        split = " / ".join(f"{100 * s.get(k, 0):.0f} %" for k in ("matmul", "attention", "optimizer", "other"))
        lines.append(f"| {e['width']} x {e['depth']} | {e['tokens']:,} | {e['precision']} | {e['params'] / 1e6:.1f}M | "
                     f"{e['gflop']:.0f} | {e['seconds']:.2f} s | {e['gflops_per_s']:.0f} | {e['gemm_gflops_per_s']:.0f} "
                     f"| **{100 * e['share']:.0f} %** | {split} |")  # fmt: skip
    lines.append("")
    if prec:
        lines += ["Training step, ours vs diffusers at the same config, interleaved medians. Goal: >= 1.3x in the "
                  "settings each project uses by default.", "",
                  "| DiT (width x depth, latent) | params ours / diffusers | fp32 both | bf16 autocast both | ours bf16 "
                  "(`train.precision=bf16`) vs diffusers fp32 (its CPU default) |", "|---|---|---|---|---|"]  # fmt: skip
        for r in prec:
            s, p = r["seconds"], r["params"]
            lines.append(f"| {r['width']} x {r['depth']}, {tuple(r['grid'])} | {p['ours'] / 1e6:.1f}M / "
                         f"{p['diffusers'] / 1e6:.1f}M | {s['ours fp32']:.2f} s vs {s['diffusers fp32']:.2f} s: "
                         f"{r['equal_fp32']:.2f}x | {s['ours bf16']:.2f} s vs {s['diffusers bf16']:.2f} s: "
                         f"{r['equal_bf16']:.2f}x | **{r['ours_bf16_vs_diffusers_fp32']:.2f}x** |")  # fmt: skip
        lines.append("")
    return "\n".join(lines + [end])


def bench_efficiency(repeats: int) -> dict[str, Any]:
    """The training step's share of the machine's GEMM limit at the small and base presets' widths and at 384
    (1,024 tokens), fp32 and bf16; and ours vs diffusers at small and base in fp32, bf16 and each one's default
    (dit_speed.py)."""
    rows, precision = [], []
    small, base = (192, 6, 6, 64), (768, 12, 12, 256)  # the small and base presets' DiT (width, depth, heads, rank)
    for width, depth, heads, lora in (small, (384, 8, 6, 64), base):
        for bf16 in (False, True):
            rows.append(e := efficiency(width, depth, heads, lora, (4, 32, 32), max(3, repeats // 2), bf16))
            print(f"efficiency {width}x{depth} {e['precision']}: {e['gflops_per_s']:.0f} GFLOP/s, "
                  f"{100 * e['share']:.0f} % of a bare GEMM ({e['gemm_gflops_per_s']:.0f})", flush=True)
    for width, depth, heads, lora in (small, base):
        precision.append(r := precision_rows(width, depth, heads, lora, grid=(4, 32, 32), repeats=max(3, repeats // 2)))
        print(f"train step {width}x{depth} vs diffusers: fp32 {r['equal_fp32']:.2f}x, bf16 {r['equal_bf16']:.2f}x, "
              f"ours bf16 vs theirs fp32 {r['ours_bf16_vs_diffusers_fp32']:.2f}x", flush=True)
    return {"rows": rows, "precision": precision}



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is steadiest when shared)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-results", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"machine": {"cpu": cpu_and_python(), "threads": args.threads, "torch": torch.__version__},
               **bench_efficiency(args.repeats)}  # fmt: skip
    publish("dit-speed", section(results), results, args.json, not args.no_results)


if __name__ == "__main__":
    main()
