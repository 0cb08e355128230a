"""The diffusion decoder against the discrete tokenizer's own decoder, on the same tokens of held-out clips.

For each held-out clip (first ``--frames`` frames at the decoder's size): the DV tokenizer encodes it; the tokens
are decoded (a) by the DV tokenizer's decoder and (b) by the diffusion decoder at each ``--steps`` count (its
continuous latents decoded by the continuous tokenizer); (c) the continuous tokenizer's own reconstruction is the
ceiling (what the decoder could reach if the tokens held everything). Scores against the true frames: PSNR and
SSIM (mean over clips, with the standard error over clips) and the Fréchet distance of EfficientNet-lite0 features
of all decoded frames against all true frames; seconds per clip (one clip at a time, ``--threads`` torch threads).

Goals (issue 20): FD >= 20 % lower than the DV decoder's and PSNR not lower.

    python benchmarks/decoder.py --decoder RUN --data HELD_OUT_SHARDS [--episodes 64] [--frames 17]
        [--steps 1 2 3 4 8 15] [--sampler euler] [--bootstrap 200] [--threads 2] [--json out.json] [--no-results]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from results_md import machine, markers, publish

NAME = "decoder"
BEGIN, END = markers(NAME)


def clips(data: str, episodes: int, frames: int, size: int) -> list[np.ndarray]:
    from worldsmith.data.manifest import list_shards
    from worldsmith.data.shards import iter_shard
    from worldsmith.io.frames import fit_frames

    out = []
    for shard in list_shards(data):
        for clip in iter_shard(shard):
            if clip.num_frames >= frames:
                out.append(fit_frames(clip.frames[:frames], size, square=True))
            if len(out) == episodes:
                return out
    return out


def features(videos: list) -> list:
    """EfficientNet-lite0 features (T, 1280) of each clip's frames."""
    from worldsmith.eval.features import frame_features

    return [frame_features(x[0].transpose(0, 1)) for x in videos]


def score(decoded: list, truth: list, feats: list, real: list) -> dict:
    """PSNR / SSIM per clip and the FD of all frames; ``feats`` / ``real``: the clips' features (``features``)."""
    import torch

    from worldsmith.eval.features import frechet_distance
    from worldsmith.eval.metrics import psnr, ssim

    p = np.array([float(psnr(d, t)) for d, t in zip(decoded, truth)])
    s = np.array([float(ssim(d, t)) for d, t in zip(decoded, truth)])
    fd = frechet_distance(torch.cat(feats), torch.cat(real))
    sem = lambda v: float(v.std(ddof=1) / np.sqrt(len(v)))  # noqa: E731
    return {"psnr": float(p.mean()), "psnr_sem": sem(p), "ssim": float(s.mean()), "ssim_sem": sem(s), "fd": fd}


def bootstrap_fd_change(feats: dict, real: list, draws: int, seed: int = 0) -> dict:
    """Each decoding's FD change against the DV decoder's over episodes drawn with replacement (the same draws
    for every row, paired with the truth's frames): mean and std of the change, and the share of draws at -20 %
    or below (the goal). ``feats``: each decoding's per-clip features; ``real``: the truth's."""
    import torch

    from worldsmith.eval.features import frechet_distance

    rng = np.random.default_rng(seed)
    picks = [rng.integers(0, len(real), len(real)).tolist() for _ in range(draws)]
    cat = lambda fs, idx: torch.cat([fs[i] for i in idx])  # noqa: E731
    base = np.array([frechet_distance(cat(feats["dv"], idx), cat(real, idx)) for idx in picks])
    out = {}
    for name in feats:
        if name != "dv":
            change = np.array([frechet_distance(cat(feats[name], idx), cat(real, idx)) for idx in picks]) / base - 1
            out[name] = {"mean": float(change.mean()), "std": float(change.std(ddof=1)),
                         "goal_share": float((change <= -0.2).mean())}  # fmt: skip
    return out


def run(args: argparse.Namespace) -> dict:
    import torch

    from worldsmith.decoder.config import DecoderSamplingConfig
    from worldsmith.decoder.generate import DecoderGenerator
    from worldsmith.io.video import to_tensor

    torch.set_num_threads(args.threads)
    gen = DecoderGenerator.from_run(args.decoder)
    dv, cv = gen.token_tokenizer, gen.latent_tokenizer
    videos = clips(args.data, args.episodes, args.frames, gen.size)
    truth = [to_tensor(v)[None] for v in videos]  # (1, 3, T, H, W) in [-1, 1]
    decoded: dict[str, list] = {}
    seconds: dict[str, float] = {}

    def timed(name: str, fn) -> None:
        start = time.perf_counter()
        decoded[name] = [fn(i, x) for i, x in enumerate(truth)]
        seconds[name] = (time.perf_counter() - start) / len(truth)

    with torch.no_grad():
        tokens = [dv.encode(x) for x in truth]
        gen.decode(tokens[0], DecoderSamplingConfig(steps=1)), cv.decode(cv.encode(truth[0]))  # warm-up, untimed
        timed("dv", lambda i, x: dv.decode(tokens[i]).clamp(-1, 1))
        for steps in args.steps:
            sampling = DecoderSamplingConfig(steps=steps, sampler=args.sampler)
            timed(f"diffusion-{steps}", lambda i, x: gen.decode(tokens[i], sampling, seed=i))
        timed("cv", lambda i, x: cv.decode(cv.encode(x)).clamp(-1, 1))
    feats, real = {name: features(vids) for name, vids in decoded.items()}, features(truth)  # once per decoding
    rows = {name: score(vids, truth, feats[name], real) | {"seconds_per_clip": seconds[name]}
            for name, vids in decoded.items()}  # fmt: skip
    if args.bootstrap:
        for name, spread in bootstrap_fd_change(feats, real, args.bootstrap).items():
            rows[name]["fd_change_bootstrap"] = spread
    params = sum(p.numel() for p in gen.model.parameters())
    return {"decoder": str(args.decoder), "episodes": len(truth), "frames": args.frames, "size": gen.size,
            "dv": dv.cfg.name, "dv_codes": dv.fsq.codebook_size, "cv": cv.cfg.name, "decoder_params": params,
            "threads": args.threads, "sampler": args.sampler, "bootstrap": args.bootstrap, "rows": rows}  # fmt: skip


def markdown(r: dict) -> str:
    dv = r["rows"]["dv"]
    lines = [BEGIN, f"## Diffusion decoder vs the DV tokenizer's decoder (`python benchmarks/{NAME}.py`)", "",
             f"Machine: {machine()}; torch threads: {r['threads']}; load average at the end {os.getloadavg()[0]:.1f}. "
             f"{r['episodes']} held-out arm episodes (seeds never trained on), first {r['frames']} frames at "
             f"{r['size']}x{r['size']}; tokens of the {r['dv']} tokenizer ({r['dv_codes']:,} codes) decoded each way; "
             f"decoder `{Path(r['decoder']).name}` ({r['decoder_params'] / 1e6:.2f}M parameters, {r['sampler']} "
             f"sampler) generates {r['cv']} latents. PSNR / SSIM: mean ± standard error over episodes; FD: Fréchet "
             f"distance of EfficientNet-lite0 features of all decoded frames against all true frames; its change "
             f"against the DV decoder's also as mean ± std over {r.get('bootstrap', 0)} paired bootstrap draws of the "
             f"episodes, with the share of draws at -20 % or below. Goal: FD >= 20 % lower than the DV decoder's, "
             f"PSNR not lower.", "",
             "| decoding | PSNR dB | SSIM | FD | FD vs DV decoder | bootstrap: change, share <= -20 % | s / clip |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    labels = {"dv": "DV tokenizer's own decoder", "cv": f"{r['cv']} reconstruction of the truth (ceiling)"}
    for name, m in r["rows"].items():
        label = labels[name] if name in labels else f"diffusion decoder, {name.split('-')[1]} steps"
        b = m.get("fd_change_bootstrap")
        spread = f"{b['mean'] * 100:+.1f} ± {b['std'] * 100:.1f} %, {b['goal_share'] * 100:.0f} %" if b else "-"
        lines.append(f"| {label} | {m['psnr']:.2f} ± {m['psnr_sem']:.2f} | {m['ssim']:.3f} | {m['fd']:.1f} | "
                     f"{(m['fd'] / dv['fd'] - 1) * 100:+.1f} % | {spread} | {m['seconds_per_clip']:.3f} |")  # fmt: skip
    return "\n".join(lines + [END])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decoder", required=True, help="decoder run directory (`worldsmith train decoder`)")
    parser.add_argument("--data", required=True, help="held-out clip shards")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 3, 4, 8, 15])
    parser.add_argument("--sampler", default="euler", help="the decoder's default (DecoderSamplingConfig)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bootstrap", type=int, default=200, help="paired bootstrap draws of the episodes for the "
                        "FD change's spread (0: none)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-results", action="store_true", help="do not update benchmarks/RESULTS.md")
    parser.add_argument("--from-json", type=Path, help="publish the results of an earlier --json run")
    args = parser.parse_args()
    result = json.loads(args.from_json.read_text()) if args.from_json else run(args)
    publish(NAME, markdown(result), result, args.json, not args.no_results)


if __name__ == "__main__":
    main()
