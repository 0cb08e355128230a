"""The GPT's training step with Cosmos' 64,000-code vocabulary: flat softmax head vs FSQ-factorized head.

Each configuration trains a randomly initialised VideoGPT (speed does not depend on the weights) for a few steps in
its own process (forward, loss, backward, AdamW step, zero_grad: what the Trainer does per step, without data
loading) and reports the median step time. Configurations are equal in everything but the head and the input
embedding: same preset, same token grid (8x8 per latent frame, ``max_frames`` latent frames per window = the
preset's training crop), same batch. The 1,000-code flat model (the benchmarks' setting so far) is the reference.

    python benchmarks/autoregressive_head.py [--presets tiny small] [--batch 8] [--threads 2] [--steps 6]
        [--json out.json] [--no-results]

``--runs NAME=RUN_DIR,TOKEN_SET ...`` adds the held-out next-token accuracy and cross-entropy (bits per token) of
trained runs, each on a token set of episodes never trained on made with its own tokenizer (``worldsmith
autoregressive tokenize``); RESULTS.md gives the commands that trained them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from results_md import machine, markers, publish  # benchmarks/results_md.py

NAME = "autoregressive_head"
BEGIN, END = markers(NAME)
CONFIGS = [("flat", (8, 5, 5, 5)), ("flat", (8, 8, 8, 5, 5, 5)), ("factorized", (8, 8, 8, 5, 5, 5)),
           ("factorized", (8, 5, 5, 5))]  # fmt: skip


def bench_step(preset: str, head: str, levels: list[int], batch: int, steps: int) -> dict:
    import math

    import torch

    from worldsmith.autoregressive.config import PRESETS
    from worldsmith.autoregressive.losses import next_token_loss
    from worldsmith.autoregressive.model import VideoGPT

    torch.manual_seed(0)
    cfg = dataclasses.replace(PRESETS[preset](), vocab_size=math.prod(levels), grid=(8, 8), head=head,
                              fsq_levels=tuple(levels))  # fmt: skip
    model = VideoGPT(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)  # as the Trainer on a CPU
    batch_ = {"tokens": torch.randint(0, cfg.vocab_size, (batch, cfg.max_frames, 8, 8))}
    times = []
    for i in range(steps + 2):  # two warm-up steps
        start = time.perf_counter()
        loss, _ = next_token_loss(model, batch_)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:
            times.append(time.perf_counter() - start)
    head_params = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("tok_emb", "head")))
    return {"preset": preset, "head": head, "codes": cfg.vocab_size, "batch": batch,
            "tokens_per_step": batch * cfg.max_len, "step_s": statistics.median(times),
            "params": sum(p.numel() for p in model.parameters()), "io_params": head_params,
            "timed_steps": steps}  # fmt: skip


def held_out(run: str, tokens_dir: str, windows: int) -> dict:
    """Teacher-forced next-token accuracy and CE (bits/token) of a trained run on a held-out token set."""
    import math

    import torch

    from worldsmith.autoregressive.data import load_token_set
    from worldsmith.autoregressive.losses import next_token_loss
    from worldsmith.autoregressive.model import VideoGPT

    model = VideoGPT.from_pretrained(run).eval()
    index, clips = load_token_set(tokens_dir)
    if int(index["vocab_size"]) != model.cfg.vocab_size:
        raise SystemExit(f"{tokens_dir} holds {index['vocab_size']} codes, {run} predicts {model.cfg.vocab_size}")
    frames = model.cfg.max_frames
    ce = acc = n = 0.0
    with torch.no_grad():
        for clip in clips[:windows]:
            if clip.tokens.shape[0] < frames:
                continue
            batch = {"tokens": clip.tokens[None, :frames].long()}
            if model.cfg.action_dim:  # the transitions leading into the window's frames
                batch["actions"] = clip.actions[None, : (frames - 1) * model.cfg.action_chunk].float()
            _, logs = next_token_loss(model, batch)
            ce, acc, n = ce + float(logs["ce"]), acc + float(logs["accuracy"]), n + 1
    return {"run": run, "codes": model.cfg.vocab_size, "head": model.cfg.head, "windows": int(n),
            "accuracy": acc / n, "bits_per_token": ce / n / math.log(2)}  # fmt: skip


def child(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec.pop("threads"))
    kind = spec.pop("kind")
    return bench_step(**spec) if kind == "step" else held_out(**spec)


def run_child(spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], check=True, capture_output=True,
                         text=True, env={**os.environ, "OMP_NUM_THREADS": str(spec["threads"])})  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown(steps: list[dict], accs: list[dict], args: argparse.Namespace) -> str:
    timed = ", ".join(f"{p}: {next(r.get('timed_steps', args.steps) for r in steps if r['preset'] == p)}"
                      for p in args.presets)  # fmt: skip
    lines = [BEGIN, f"## Autoregressive head: 64,000 codes (`python benchmarks/{NAME}.py`)", "",
             f"Machine: {machine()}; torch threads: {args.threads}; load average at the end "
             f"{os.getloadavg()[0]:.1f}. Training step = forward + loss + backward + AdamW step on random tokens "
             f"(batch {steps[0]['batch']}, 8x8 tokens per latent frame, the preset's window), median of the timed steps "
             f"({timed}) after 2 warm-up steps, "
             f"each configuration in its own process. Goal: the factorized head's step with 64,000 codes >= 10x "
             f"faster than the flat head's at equal model size.", "",
             "| preset | head | codes | params (of which embedding + head) | step s | tokens/s | vs flat 64,000 |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for preset in args.presets:
        rows = [r for r in steps if r["preset"] == preset]
        flat64 = next(r for r in rows if r["head"] == "flat" and r["codes"] == 64000)
        for r in rows:
            lines.append(f"| {preset} | {r['head']} | {r['codes']:,} | {r['params'] / 1e6:.2f}M "
                         f"({r['io_params'] / 1e6:.2f}M) | {r['step_s']:.3f} | {r['tokens_per_step'] / r['step_s']:,.0f}"
                         f" | {flat64['step_s'] / r['step_s']:.1f}x |")  # fmt: skip
    if accs:
        lines += ["", "Held-out next-token prediction (teacher-forced windows of held-out episodes):", "", "| run | head | codes | windows | accuracy | bits / token |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for a in accs:
            lines.append(f"| {a['name']} | {a['head']} | {a['codes']:,} | {a['windows']} | {a['accuracy']:.3f} | "
                         f"{a['bits_per_token']:.2f} |")  # fmt: skip
    return "\n".join(lines + [END])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--runs", nargs="*", default=[], help="NAME=RUN_DIR,HELD_OUT_TOKEN_SET of trained runs")
    parser.add_argument("--windows", type=int, default=128)
    parser.add_argument("--steps-from", type=Path, help="reuse the step timings of an earlier --json instead of timing")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-results", action="store_true", help="do not update benchmarks/RESULTS.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    steps, accs = [], []
    if args.steps_from:
        steps = json.loads(args.steps_from.read_text())["steps"]
        args.presets = sorted({r["preset"] for r in steps}, key=["tiny", "small", "base"].index)
    for preset in [] if args.steps_from else args.presets:
        for head, levels in CONFIGS:
            r = run_child({"kind": "step", "preset": preset, "head": head, "levels": list(levels),
                           "batch": args.batch, "steps": args.steps, "threads": args.threads})  # fmt: skip
            print(json.dumps(r), flush=True)
            steps.append(r)
    for spec in args.runs:
        name, rest = spec.split("=", 1)
        run, tokens = rest.split(",", 1)
        r = run_child({"kind": "accuracy", "run": run, "tokens_dir": tokens, "windows": args.windows,
                       "threads": args.threads}) | {"name": name}  # fmt: skip
        print(json.dumps(r), flush=True)
        accs.append(r)
    publish(NAME, markdown(steps, accs, args), {"steps": steps, "held_out": accs}, args.json, not args.no_results)


if __name__ == "__main__":
    main()
