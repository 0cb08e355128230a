"""The pre-guard on the held-out part of the labelled prompt set: block rate, false positives, latency.

    python benchmarks/guard.py [--split holdout3] [--out guard.json]

Reports, on one held-out split (default ``holdout3``, the one nobody scored before the final guard was trained;
``test``, ``holdout`` and ``holdout2`` were looked at during development, see guard/data/PROMPTS.md): the block rate per unsafe
category and overall, the false-positive rate on benign prompts and on the hard benign ones, each with a 95 % Wilson
interval; what the blocklist alone and the classifier alone catch; and the pre-guard's latency per prompt on one
core (median and p95, MiniLM's prompt cache off). Goals (issue 19): block >= 95 %, false positives <= 5 %,
<= 20 ms per prompt. The video post-guard has its own benchmark (benchmarks/guard_video.py).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections import defaultdict

import torch

from worldsmith.conditioning.text import default_text_encoder
from worldsmith.guard.blocklist import Blocklist
from worldsmith.guard.classifier import read_prompt_set
from worldsmith.guard.prompt import PromptGuard, PromptGuardConfig
from worldsmith.guard.verdict import CATEGORIES


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(mid - half, 4), round(mid + half, 4))


def rate(flags: list[bool]) -> dict:
    k, n = sum(flags), len(flags)
    return {"rate": round(k / max(n, 1), 4), "n": n, "ci95": wilson(k, n)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="Write the figures as JSON here.")
    ap.add_argument("--split", default="holdout3", help="The split to report (default: holdout3, the untouched one).")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = [r for r in read_prompt_set() if r["split"] == args.split]
    guard = PromptGuard(PromptGuardConfig())
    blocklist = Blocklist()
    encoder = default_text_encoder()
    encoder.cfg.cache_size = 0  # every prompt pays for its MiniLM forward, as a new prompt would
    encoder._cache.clear()
    for warm in ("a robot arm lifts a box", "a car waits at a red light", "a ball bounces twice"):
        guard.check(warm)
    verdicts, times = [], []
    for r in rows:
        t0 = time.perf_counter()
        verdicts.append(guard.check(r["text"]))
        times.append((time.perf_counter() - t0) * 1000)
    unsafe = [(r, v) for r, v in zip(rows, verdicts) if r["label"] == "unsafe"]
    safe = [(r, v) for r, v in zip(rows, verdicts) if r["label"] == "safe"]
    per_category = {c: rate([not v.allowed for r, v in unsafe if r["category"] == c]) for c in CATEGORIES}
    right_category = [v.category == r["category"] for r, v in unsafe if not v.allowed]
    by_source = defaultdict(int)
    for _, v in unsafe:
        by_source[v.source if not v.allowed else "missed"] += 1
    false_positives = [{"text": r["text"], "source": v.source, "reason": v.reason} for r, v in safe if not v.allowed]
    misses = [{"text": r["text"], "category": r["category"]} for r, v in unsafe if v.allowed]
    # the trade-off at other thresholds (the shipped one is chosen by cross-validation on train + val, not here)
    p_unsafe = 1.0 - guard.classifier.scores([r["text"] for r in rows])[:, 0]
    listed = torch.tensor([blocklist.check(r["text"]) is not None for r in rows])
    is_unsafe = torch.tensor([r["label"] == "unsafe" for r in rows])
    operating = []
    for t in (0.3, 0.4, 0.5, 0.6, 0.7, round(guard.classifier.threshold, 3), 0.9):
        blocked = listed | (p_unsafe >= t)
        operating.append({"threshold": t, "block_rate": round(float(blocked[is_unsafe].float().mean()), 4),
                          "false_positive_rate": round(float(blocked[~is_unsafe].float().mean()), 4)})
    times.sort()
    result = {
        "split": args.split,
        "block_rate": rate([not v.allowed for _, v in unsafe]),
        "block_rate_per_category": per_category,
        "category_accuracy_of_blocks": rate(right_category),
        "false_positive_rate": rate([not v.allowed for _, v in safe]),
        "false_positive_rate_hard": rate([not v.allowed for r, v in safe if r.get("hard")]),
        "blocklist_alone_block_rate": rate([blocklist.check(r["text"]) is not None for r, _ in unsafe]),
        "blocklist_alone_false_positive_rate": rate([blocklist.check(r["text"]) is not None for r, _ in safe]),
        "decided_by": dict(by_source),
        "threshold": guard.classifier.threshold if guard.classifier else None,
        "latency_ms": {"median": round(statistics.median(times), 2), "p95": round(times[int(0.95 * len(times))], 2),
                       "threads": torch.get_num_threads()},
        "operating_points": operating,
        "false_positives": false_positives,
        "misses": misses,
    }
    print(f"held-out {args.split}: {len(unsafe)} unsafe, {len(safe)} benign "
          f"({sum(1 for r, _ in safe if r.get('hard'))} hard)")
    print(f"block rate {result['block_rate']['rate']:.1%} {result['block_rate']['ci95']}; false positives "
          f"{result['false_positive_rate']['rate']:.1%} {result['false_positive_rate']['ci95']} (hard benign "
          f"{result['false_positive_rate_hard']['rate']:.1%})")
    for c, v in per_category.items():
        print(f"  {c:10s} {v['rate']:.1%} of {v['n']}")
    print(f"blocklist alone: block {result['blocklist_alone_block_rate']['rate']:.1%}, false positives "
          f"{result['blocklist_alone_false_positive_rate']['rate']:.1%}; decided by {dict(by_source)}")
    print(f"latency per prompt (1 thread): median {result['latency_ms']['median']} ms, p95 {result['latency_ms']['p95']} ms")
    print("other thresholds (block / false positives): " + ", ".join(
        f"{o['threshold']}: {o['block_rate']:.1%} / {o['false_positive_rate']:.1%}" for o in operating))
    for fp in false_positives:
        print(f"  false positive: {fp['text']!r} ({fp['source']})")
    for m in misses:
        print(f"  missed [{m['category']}]: {m['text']!r}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
