"""Which changes make a CV4x8x8 tokenizer learn faster per CPU-minute on 64x64 arm-world clips.

Each variant trains for the same wall-clock budget (default 8 min, one torch thread; run two at once on a
2-core machine) from the same seed on the same clips, with a cosine learning rate over that budget and EMA
weights, and is scored on the first 17 frames of 8 held-out episodes every 2 minutes. Clips are decoded once into
memory (random 17-frame windows, batch 4, mirrored half of the time), so the loop measures the network and
nothing else.

    python benchmarks/tokenizer_ablation.py --data data/arm64 --heldout data/arm64-eval \\
        --variant base --variant shortcut --variant shortcut,l2 [--minutes 8] [--threads 1]

A variant is a comma-separated list of changes to the cv4x8x8-small baseline (L1 loss, no shortcut, lr 1e-3,
bf16 autocast, batch 4): ``shortcut``, ``l2``, ``fp32``, ``wide`` (channels 64, 128), ``top64`` / ``top96``
(channels 64, 64 / 96, 64: a wider first level only), ``blocks2`` (two residual blocks per level), ``lr2`` / ``lr3``
(lr 2e-3 / 3e-3), ``batch2`` / ``batch8``, ``crop32`` (random 32x32 windows), ``fused`` (the fused AdamW kernel, as
the trainer uses). Prints one JSON line per evaluation and one per variant at the end.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import time

import torch

CHANGES = {
    "shortcut": {"shortcut": True}, "l2": {"loss": "l2"}, "fp32": {"bf16": False}, "wide": {"channels": (64, 128)},
    "blocks2": {"num_res_blocks": 2}, "lr2": {"lr": 2e-3}, "lr3": {"lr": 3e-3}, "top64": {"channels": (64, 64)},
    "top96": {"channels": (96, 64)}, "batch8": {"batch": 8}, "fused": {"fused": True},
    "batch2": {"batch": 2}, "crop32": {"crop": 32},
}  # fmt: skip


def load(shards: str, frames: int, clips: int | None, train: bool) -> torch.Tensor:
    """Clips as uint8 (N, 3, frames, 64, 64): whole training episodes, or the first frames of held-out ones."""
    from worldsmith.tokenizer.evaluation import shard_batches

    x = torch.cat([b["video"] for b in shard_batches(shards, frames, 64, clips or 10**9, batch_size=16)])
    return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8) if train else x


def run(variant: str, train: torch.Tensor, heldout: torch.Tensor, a: argparse.Namespace) -> dict:
    from worldsmith.eval.metrics import psnr
    from worldsmith.tokenizer.model import CausalVideoTokenizer
    from worldsmith.tokenizer.config import make_config

    opts = {"shortcut": False, "loss": "l1", "bf16": True, "channels": (32, 64), "num_res_blocks": 1, "lr": 1e-3,
            "batch": 4, "fused": False, "crop": 0}
    for change in filter(None, variant.split(",")):
        if change not in CHANGES and change != "base":
            raise SystemExit(f"unknown change {change!r}; choose from base, {', '.join(CHANGES)}.")
        opts.update(CHANGES.get(change, {}))
    torch.manual_seed(0)
    cfg = dataclasses.replace(make_config("cv4x8x8", "small"), shortcut=opts["shortcut"], channels=opts["channels"],
                              num_res_blocks=opts["num_res_blocks"])  # fmt: skip
    model = CausalVideoTokenizer(cfg)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), opts["lr"], betas=(0.9, 0.99), weight_decay=0.0, fused=opts["fused"])
    g = torch.Generator().manual_seed(0)
    budget, frames, t0, step, history = a.minutes * 60, 17, time.perf_counter(), 0, []
    next_eval = a.eval_every * 60
    while (elapsed := time.perf_counter() - t0) < budget:
        lr = opts["lr"] * min(1.0, (step + 1) / 100) * (0.1 + 0.45 * (1 + math.cos(math.pi * elapsed / budget)))
        for group in opt.param_groups:
            group["lr"] = lr
        i = torch.randint(0, train.shape[0], (opts["batch"],), generator=g).tolist()
        s = torch.randint(0, train.shape[2] - frames + 1, (opts["batch"],), generator=g).tolist()
        x = torch.stack([train[c, :, o : o + frames] for c, o in zip(i, s)]).float() / 127.5 - 1
        if torch.rand(1, generator=g) < 0.5:
            x = x.flip(-1)  # mirror the batch half of the time
        if opts["crop"]:  # a random window on the latent grid (offsets are multiples of 8)
            oy, ox = (torch.randint(0, (x.shape[-1] - opts["crop"]) // 8 + 1, (2,), generator=g) * 8).tolist()
            x = x[..., oy : oy + opts["crop"], ox : ox + opts["crop"]]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=opts["bf16"]):
            y, _ = model(x)
        d = y.float() - x
        loss = (d * d).mean() if opts["loss"] == "l2" else d.abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        with torch.no_grad():
            decay = min(0.998, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
        if time.perf_counter() - t0 >= next_eval or time.perf_counter() - t0 >= budget:
            next_eval += a.eval_every * 60
            with torch.no_grad():
                score = float(psnr(ema.decode(ema.encode(heldout)).clamp(-1, 1), heldout))
            history.append({"variant": variant, "minutes": round((time.perf_counter() - t0) / 60, 2), "step": step,
                            "psnr": round(score, 2)})  # fmt: skip
            print(json.dumps(history[-1]), flush=True)
    return {"variant": variant, "steps": step, "psnr": history[-1]["psnr"] if history else None, "history": history}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", required=True, help="training shards (e.g. worldsmith sim arm --episodes 256 ...)")
    p.add_argument("--heldout", required=True, help="held-out shards; the first 17 frames of 8 episodes are scored")
    p.add_argument("--variant", action="append", default=[], help="comma-separated changes (see above)")
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--eval-every", type=float, default=2.0, help="minutes between evaluations")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    train, heldout = load(a.data, 33, None, True), load(a.heldout, 17, 8, False)
    for variant in a.variant or ["base"]:
        print(json.dumps({"final": run(variant, train, heldout, a)}), flush=True)


if __name__ == "__main__":
    main()
