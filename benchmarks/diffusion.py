"""Diffusion world model vs diffusers' Cosmos: backbone speed, clip generation time, samplers, arm-world rollouts.

1. Backbone: forward latency (no grad) and one training step (forward, backward, AdamW) of worldsmith's ``DiT``
   and diffusers' ``CosmosTransformer3DModel`` at an identical configuration (layers, width, heads, patch 1x2x2,
   AdaLN-LoRA rank, MLP ratio, text width, condition-mask channel; RoPE only, no extra absolute embedding on
   either side; random init) at 3 token counts. The two are timed alternately, median of ``--repeats``.
   Goal: ours >= 1.3x faster.
2. Clip generation, end to end (prompt -> uint8 frames): worldsmith's ``DiffusionGenerator`` vs diffusers'
   ``CosmosTextToWorldPipeline`` built from random-init parts of the same sizes: the same transformer config, an
   ``AutoencoderKLCosmos`` configured like our tokenizer, a 6-layer 384-wide T5 encoder (MiniLM's size; the real
   T5-XXL and the guardrail models cannot be downloaded here, so the guardrail is a pass-through stub) fed by
   MiniLM's tokenizer. Both run EDM Euler at the same steps with guidance and a negative prompt; ours also with
   DPM-Solver++(2M) at 10 steps.
3. Arm world (``--skip arm`` to leave out): simulate episodes, train a tokenizer and a small diffusion model (the
   training command is printed), then Video2World rollouts from the first frame of held-out episodes scored
   against the simulator's continuation (PSNR, SSIM, Fréchet distance of EfficientNet-lite0 features), and the
   samplers compared on the same rollouts: DPM-Solver++(2M) at 10 steps vs Heun at 35 (and Euler).

4. Efficiency (``--skip efficiency`` to leave out): the DiT training step's share of a bare GEMM and its time split,
   and ours vs diffusers at the small and base presets' widths in fp32, bf16 and each project's default
   (dit_speed.py; its own "dit-speed" section of RESULTS.md).

Results go to stdout, to the "diffusion" section of benchmarks/RESULTS.md and optionally to JSON. Needs diffusers.

    python benchmarks/diffusion.py [--threads 1] [--repeats 5] [--skip arm] [--work DIR] [--json f]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from results_md import machine as cpu_and_python  # benchmarks/results_md.py
from results_md import markers, publish
from timing import interleaved  # benchmarks/timing.py
from dit_speed import bench_efficiency, cosmos_transformer
from dit_speed import section as efficiency_section
from worldsmith.diffusion.condition import Condition
from worldsmith.diffusion.dit import DiT
from worldsmith.diffusion.config import DiTConfig

BEGIN, END = markers("diffusion")
BACKBONE = dict(width=384, heads=6, depth=8, adaln_lora_dim=64)  # Dh = 64, as Cosmos
DIT_ARGS = dict(width=384, depth=8, heads=6, lora=64)  # the same, in dit_speed.py's argument names
GRIDS = ((2, 16, 16), (4, 32, 32), (8, 32, 32))  # latent (T', H', W') -> 128, 1,024, 2,048 tokens


def params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------------------------------------------------------
# 1. backbone
# ---------------------------------------------------------------------------------------------------------------
def bench_backbone(repeats: int, text_len: int = 16) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    ours = DiT(DiTConfig(**BACKBONE, abs_pos=False, cond_mask_channel=True))
    theirs = cosmos_transformer(**DIT_ARGS, in_channels=17)  # latents + the condition mask, as ours
    for m in (ours, theirs):  # wake the zero-initialized parts so both do the same work
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.02)
    rows = []
    for t, h, w in GRIDS:
        x, text = torch.randn(1, 16, t, h, w), torch.randn(1, text_len, 384)
        mask = torch.zeros(1, 1, t, h, w)
        cond = Condition(text, torch.ones(1, text_len, dtype=torch.bool), fps=torch.tensor([24.0]), mask=mask[:, :, :, :1, :1])
        runs = {
            "ours": lambda: ours(x, torch.full((1, 1), 0.3), cond),
            "diffusers": lambda: theirs(x, torch.full((1,), 0.3), text, fps=24, condition_mask=mask, return_dict=False)[0],
        }  # fmt: skip
        assert runs["ours"]().shape == runs["diffusers"]().shape
        with torch.no_grad():
            fwd = interleaved(runs, repeats)
        opts = {"ours": torch.optim.AdamW(ours.parameters(), 1e-5), "diffusers": torch.optim.AdamW(theirs.parameters(), 1e-5)}

        def step(name: str) -> Callable[[], None]:
            def run() -> None:
                runs[name]().square().mean().backward()
                opts[name].step()
                opts[name].zero_grad(set_to_none=True)

            return run

        train = interleaved({k: step(k) for k in runs}, repeats)
        rows.append({"latent": [16, t, h, w], "tokens": t * (h // 2) * (w // 2), "forward_s": fwd, "train_step_s": train,
                     "forward_speedup": fwd["diffusers"] / fwd["ours"], "train_speedup": train["diffusers"] / train["ours"]})  # fmt: skip
        print(f"backbone {rows[-1]['tokens']:>5} tokens: forward {fwd['ours']:.3f}s vs {fwd['diffusers']:.3f}s, "
              f"train step {train['ours']:.3f}s vs {train['diffusers']:.3f}s", flush=True)  # fmt: skip
    return [{"params": {"ours": params(ours), "diffusers": params(theirs)}, **r} for r in rows]


# ---------------------------------------------------------------------------------------------------------------
# 2. clip generation end to end
# ---------------------------------------------------------------------------------------------------------------
class PassThroughGuardrail:
    """Stands in for cosmos_guardrail's checker (its models cannot be downloaded here): lets everything through."""

    def to(self, *args, **kwargs):
        return self

    def check_text_safety(self, prompt: str) -> bool:
        return True

    def check_video_safety(self, video: np.ndarray) -> np.ndarray:
        return video


def cosmos_pipeline(tok_cfg, size: int):
    from diffusers import AutoencoderKLCosmos, CosmosTextToWorldPipeline, EDMEulerScheduler
    from transformers import AutoTokenizer, T5Config, T5EncoderModel

    from worldsmith.conditioning.text import minilm_path

    widths = (tok_cfg.channels[0], *tok_cfg.channels)
    vae = AutoencoderKLCosmos(latent_channels=16, encoder_block_out_channels=widths, decode_block_out_channels=widths,
                              attention_resolutions=(), resolution=size, num_layers=tok_cfg.num_res_blocks,
                              patch_size=tok_cfg.patch_size, spatial_compression_ratio=tok_cfg.spatial_compression,
                              temporal_compression_ratio=tok_cfg.temporal_compression, latents_mean=None,
                              latents_std=None)  # fmt: skip
    t5 = T5EncoderModel(T5Config(vocab_size=30522, d_model=384, d_kv=64, d_ff=1536, num_layers=6, num_heads=6))
    pipe = CosmosTextToWorldPipeline(text_encoder=t5.eval(), tokenizer=AutoTokenizer.from_pretrained(minilm_path()),
                                     transformer=cosmos_transformer(**DIT_ARGS, in_channels=16).eval(), vae=vae.eval(),
                                     scheduler=EDMEulerScheduler(sigma_max=80.0, sigma_min=0.002, sigma_data=0.5),
                                     safety_checker=PassThroughGuardrail())  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def bench_clip(repeats: int, size: int = 128, frames: int = 17, steps: int = 35) -> dict[str, Any]:
    from worldsmith.conditioning.text import default_text_encoder
    from worldsmith.diffusion.config import SamplingConfig, WorldModelConfig
    from worldsmith.diffusion.generate import DiffusionGenerator
    from worldsmith.diffusion.model import DiffusionWorldModel
    from worldsmith.tokenizer.config import PRESETS
    from worldsmith.tokenizer.model import CausalVideoTokenizer

    torch.manual_seed(0)
    tok_cfg = PRESETS["cv4x8x8-small"]()
    model = DiffusionWorldModel(WorldModelConfig(dit=DiTConfig(**BACKBONE, abs_pos=False)))
    gen = DiffusionGenerator(model, CausalVideoTokenizer(tok_cfg), default_text_encoder(), frames=frames, size=size,
                             fps=10.0)  # fmt: skip
    pipe = cosmos_pipeline(tok_cfg, size)
    prompt, negative = "a robot arm picks up the red cube and places it on the plate", "blurry, static, distorted"

    def ours(steps: int, sampler: str):
        sampling = SamplingConfig(steps=steps, sampler=sampler, guidance=7.0, negative_prompt=negative)
        return gen.generate_videos([prompt], size=(size, size), sampling=sampling)[0]

    runs = {
        f"ours euler {steps}": lambda: ours(steps, "euler"),
        f"diffusers euler {steps}": lambda: pipe(prompt=prompt, negative_prompt=negative, height=size, width=size,
                                                num_frames=frames, num_inference_steps=steps, guidance_scale=7.0, fps=10,
                                                output_type="np", max_sequence_length=64).frames[0],  # fmt: skip
        "ours dpm++2m 10": lambda: ours(10, "dpm++2m"),
    }
    shapes = {k: np.asarray(f()).shape for k, f in runs.items()}
    with torch.no_grad():
        seconds = interleaved(runs, repeats)
    for k, v in seconds.items():
        print(f"clip {frames}x{size}x{size}: {k}: {v:.2f} s", flush=True)
    return {"frames": frames, "size": size, "tokens": 5 * (size // 16) ** 2, "shapes": {k: list(v) for k, v in shapes.items()},
            "seconds": seconds, "speedup_equal_steps": seconds[f"diffusers euler {steps}"] / seconds[f"ours euler {steps}"],
            "speedup_dpm10": seconds[f"diffusers euler {steps}"] / seconds["ours dpm++2m 10"]}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# 3. arm world: train, then Video2World rollouts and samplers against the simulator
# ---------------------------------------------------------------------------------------------------------------
SAMPLER_RUNS = (("dpm++2m", 10), ("heun", 35), ("euler", 35), ("euler", 10))


def train_arm(work: Path, a: argparse.Namespace) -> tuple[Path, str, dict[str, float]]:
    from worldsmith.families import FAMILIES
    from worldsmith.worlds.generate import simulate

    quiet = ["train.progress=false", "train.tensorboard=false"]
    sim = dict(frames=a.episode_frames, size=64, fps=10.0, progress=False)
    simulate("arm", episodes=a.episodes, out=work / "train", seed=0, **sim)
    simulate("arm", episodes=a.heldout, out=work / "heldout", seed=1_000_003, **sim)
    seconds = {}
    tok_dir = Path(a.tokenizer) if a.tokenizer else work / "tokenizer"
    if not a.tokenizer:
        start = time.perf_counter()
        sets = [f"train.steps={a.tokenizer_steps}", "data.frames=17", "data.size=64", f"train.ckpt_every={a.tokenizer_steps}"]
        family = FAMILIES["tokenizer"]
        family.train(family.resolve("cv4x8x8-small", overrides=sets + quiet, flags={"data": {"shards": str(work / "train")}}),
                     tok_dir)  # fmt: skip
        seconds["tokenizer_train"] = time.perf_counter() - start
    sets = ["data.frames=17", "data.size=64", "data.cache_latents=true", "data.cache_crops=4", f"train.steps={a.steps}",
            "train.batch_size=16", "train.lr=1e-3", "train.warmup_steps=100", "train.ema_decay=0.995",
            f"train.ckpt_every={a.steps}"]  # fmt: skip
    command = (f"worldsmith train diffusion --out RUN --data {work / 'train'} --tokenizer {tok_dir} --preset small "
               + " ".join(f"--set {s}" for s in sets))  # fmt: skip
    start = time.perf_counter()
    flags = {"data": {"shards": str(work / "train"), "tokenizer": str(tok_dir)}}
    FAMILIES["diffusion"].train(FAMILIES["diffusion"].resolve("small", overrides=sets + quiet, flags=flags), work / "diffusion")
    seconds["diffusion_train"] = time.perf_counter() - start
    return work / "diffusion", command, seconds


def bench_arm(work: Path, a: argparse.Namespace) -> dict[str, Any]:
    from worldsmith.data.manifest import list_shards
    from worldsmith.data.shards import iter_shard
    from worldsmith.diffusion.config import SamplingConfig
    from worldsmith.diffusion.generate import DiffusionGenerator
    from worldsmith.eval.features import frame_features, frechet_distance
    from worldsmith.family import GenerationRequest
    from worldsmith.eval.metrics import psnr, ssim
    from worldsmith.config import load_yaml
    from worldsmith.io.video import to_tensor, to_uint8

    run_dir, command, train_seconds = train_arm(work, a)
    gen = DiffusionGenerator.from_run(run_dir)
    tok_dir = Path(json.loads((run_dir / "generation.json").read_text())["tokenizer"])
    clips = [c for shard in list_shards(str(work / "heldout")) for c in iter_shard(shard)]
    truth = np.stack([c.frames[: a.rollout] for c in clips])  # (N, T, 64, 64, 3)
    t_truth = to_tensor(truth)  # (N, 3, T, H, W)
    feats_truth = frame_features(t_truth[:, :, 1:].transpose(1, 2).reshape(-1, 3, 64, 64))

    with torch.no_grad():  # the tokenizer's own reconstruction of the truth: what a perfect world model could reach
        recon = torch.cat([gen.tokenizer.decode(gen.tokenizer.encode(v[None])).clamp(-1, 1) for v in t_truth])

    def score(video: np.ndarray) -> dict[str, float]:
        v = to_tensor(video)[:, :, 1:]  # the generated frames (the first one is given)
        return {"psnr": float(psnr(v, t_truth[:, :, 1:])), "ssim": float(ssim(v, t_truth[:, :, 1:])),
                "fd": frechet_distance(frame_features(v.transpose(1, 2).reshape(-1, 3, 64, 64)), feats_truth),
                "psnr_vs_recon": float(psnr(v, recon[:, :, 1:]))}  # fmt: skip

    tok_steps = load_yaml(tok_dir / "config.yaml")["train"]["steps"]
    results = {"command": command, "train_seconds": train_seconds, "episodes": a.episodes, "heldout": len(clips),
               "rollout_frames": a.rollout, "steps": a.steps, "tokenizer_steps": tok_steps, "episode_frames": a.episode_frames,
               "tokenizer": score(to_uint8(recon)), "copy_first_frame": score(np.repeat(truth[:, :1], a.rollout, axis=1)),
               "samplers": {}}  # fmt: skip
    outputs = {}
    for sampler, steps in SAMPLER_RUNS:
        start = time.perf_counter()
        sampling = SamplingConfig(steps=steps, sampler=sampler)
        videos = np.stack([gen.generate(GenerationRequest(c.caption, c.frames[:1], a.rollout, seed=i), sampling)
                           for i, c in enumerate(clips)])  # fmt: skip
        outputs[(sampler, steps)] = videos
        results["samplers"][f"{sampler} {steps}"] = {**score(videos), "seconds_per_clip": (time.perf_counter() - start) / len(clips)}
        print(f"arm {sampler} {steps}: {results['samplers'][f'{sampler} {steps}']}", flush=True)
    ref = to_tensor(outputs[("heun", 35)])
    for (sampler, steps), videos in outputs.items():
        results["samplers"][f"{sampler} {steps}"]["psnr_vs_heun35"] = float(psnr(to_tensor(videos)[:, :, 1:], ref[:, :, 1:]))
    return results


def render_arm(r: dict[str, Any]) -> list[str]:
    t = r["train_seconds"]
    lines = [f"Arm world: {r['episodes']} simulated training episodes of {r.get('episode_frames', 41)} frames (64x64, 10 fps); "
             f"tokenizer trained with `worldsmith train tokenizer --preset cv4x8x8-small --set train.steps="
             f"{r['tokenizer_steps']} --set data.frames=17 --set data.size=64`; diffusion preset small trained {r['steps']} steps "
             f"({t.get('diffusion_train', 0) / 60:.1f} min on this CPU, latents cached) with:", "",
             f"    {r['command']}", "",
             f"Video2World from the first frame of {r['heldout']} held-out episodes, {r['rollout_frames']} frames (a "
             f"chunk of 17, then chunk-by-chunk extension), scored on the generated frames against the simulator's "
             f"continuation. FD: Fréchet distance of EfficientNet-lite0 features over all generated frames (small "
             f"sets bias it up). \"vs recon\": PSNR against the tokenizer's reconstruction of the truth, i.e. the "
             f"world model's own error without the tokenizer's. Reference rows: the tokenizer reconstruction itself "
             f"(the ceiling) and copying the first frame (the floor of a static scene).", "",
             "| rollout | steps | network calls | PSNR vs truth | SSIM | FD | PSNR vs recon | PSNR vs Heun 35 | s per clip |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for label, m in (("tokenizer reconstruction", r["tokenizer"]), ("copy first frame", r["copy_first_frame"])):
        lines.append(f"| {label} | - | - | {m['psnr']:.2f} dB | {m['ssim']:.3f} | {m['fd']:.1f} | {m['psnr_vs_recon']:.2f} dB | - | - |")
    for name, m in r["samplers"].items():
        sampler, steps = name.split()
        calls = 2 * int(steps) - 1 if sampler == "heun" else int(steps)
        vs = "-" if name == "heun 35" else f"{m['psnr_vs_heun35']:.2f} dB"
        lines.append(f"| {sampler} | {steps} | {calls} | {m['psnr']:.2f} dB | {m['ssim']:.3f} | {m['fd']:.1f} "
                     f"| {m['psnr_vs_recon']:.2f} dB | {vs} | {m['seconds_per_clip']:.2f} |")  # fmt: skip
    return lines + [""]


def arm_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, default=128, help="arm: training episodes")
    parser.add_argument("--heldout", type=int, default=16, help="arm: held-out episodes for the rollouts")
    parser.add_argument("--episode-frames", type=int, default=41, help="arm: frames per simulated episode")
    parser.add_argument("--rollout", type=int, default=33, help="arm: frames per rollout (first frame given)")
    parser.add_argument("--tokenizer", default="", help="arm: reuse this trained cv4x8x8 tokenizer run")
    parser.add_argument("--tokenizer-steps", type=int, default=1500, help="arm: tokenizer training steps")
    parser.add_argument("--steps", type=int, default=3000, help="arm: diffusion training steps")


# ---------------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------------
def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [BEGIN, "## Diffusion world model (`python benchmarks/diffusion.py`)", "",
             f"Machine: {m['cpu']}, {m['threads']} torch thread(s), torch {m['torch']}, diffusers {m['diffusers']}. "
             f"Shared machine: other jobs ran alongside, so the timings are medians of alternating runs.", ""]  # fmt: skip
    if "backbone" in results:
        b = BACKBONE
        p = results["backbone"][0]["params"]
        lines += [f"Backbone vs diffusers `CosmosTransformer3DModel`, identical config: {b['depth']} layers, width "
                  f"{b['width']}, {b['heads']} heads, patch 1x2x2, AdaLN-LoRA {b['adaln_lora_dim']}, MLP 4x, 16 text "
                  f"tokens of 384, condition-mask channel, RoPE only, fp32, batch 1 ({p['ours'] / 1e6:.2f}M vs "
                  f"{p['diffusers'] / 1e6:.2f}M parameters). Goal: >= 1.3x faster.", "",
                  "| latent (C, T', H', W') | tokens | forward ours | forward diffusers | speedup | train step ours "
                  "| train step diffusers | speedup |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in results["backbone"]:
            f, t = r["forward_s"], r["train_step_s"]
            lines.append(f"| {tuple(r['latent'])} | {r['tokens']:,} | {f['ours'] * 1e3:.0f} ms | {f['diffusers'] * 1e3:.0f} ms "
                         f"| {r['forward_speedup']:.2f}x | {t['ours'] * 1e3:.0f} ms | {t['diffusers'] * 1e3:.0f} ms "
                         f"| {r['train_speedup']:.2f}x |")  # fmt: skip
        lines.append("")
    if "clip" in results:
        c = results["clip"]
        lines += [f"Seconds per generated clip, end to end (prompt -> uint8 frames), {c['frames']} frames of "
                  f"{c['size']}x{c['size']} ({c['tokens']} latent tokens), guidance 7 with a negative prompt, the "
                  f"backbone above, random init. diffusers: `CosmosTextToWorldPipeline` with a random-init 6x384 T5 "
                  f"(T5-XXL cannot be downloaded) on MiniLM's tokenizer, an `AutoencoderKLCosmos` shaped like our "
                  f"cv4x8x8-small tokenizer, and a pass-through stand-in for the guardrail.", "",
                  "| run | seconds per clip |", "|---|---|"]  # fmt: skip
        lines += [f"| {k} | {v:.2f} |" for k, v in c["seconds"].items()]
        lines += ["", f"Equal steps: {c['speedup_equal_steps']:.2f}x; DPM-Solver++(2M) at 10 steps vs diffusers' "
                      f"Euler at 35: {c['speedup_dpm10']:.2f}x.", ""]  # fmt: skip
    if "arm" in results:
        lines += render_arm(results["arm"])
    return "\n".join(lines + [END])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is steadiest when shared)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip", nargs="*", default=[], choices=["backbone", "efficiency", "clip", "arm"])
    parser.add_argument("--work", type=Path, default=Path("runs/bench_diffusion"), help="arm: data and runs")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-results", action="store_true", help="do not update benchmarks/RESULTS.md")
    arm_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import diffusers

    results: dict[str, Any] = {"machine": {"cpu": cpu_and_python(), "threads": args.threads, "torch": torch.__version__,
                                           "diffusers": diffusers.__version__}}  # fmt: skip
    if "backbone" not in args.skip:
        results["backbone"] = bench_backbone(args.repeats)
    if "efficiency" not in args.skip:  # its own section, "dit-speed" (also `python benchmarks/dit_speed.py`)
        efficiency = {"machine": results["machine"], **bench_efficiency(args.repeats)}
        publish("dit-speed", efficiency_section(efficiency), efficiency, None, not args.no_results)
    if "clip" not in args.skip:
        results["clip"] = bench_clip(max(2, args.repeats // 2))
    if "arm" not in args.skip:
        results["arm"] = bench_arm(args.work, args)
    publish("diffusion", render(results), results, args.json, not args.no_results)


if __name__ == "__main__":
    main()
