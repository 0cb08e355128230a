"""Prompt upsampler: entity recall, latency, and whether upsampled prompts make better Text2World videos.

1. Recall and latency over ``PROMPTS`` (52 prompts of the kinds users type for physical-AI video): every kind's final
   entity recall (must be 100 %), the raw LLM's recall before repair (first answer), how often the LLM kept every
   entity at the first answer / after retries / needed repair, and seconds per prompt (LLM load excluded, reported
   apart).
2. Text2World (``--model RUN --heldout DIR``, DIR holding ``{world}/`` shards of held-out simulator clips): for each
   built-in world, videos from ``T2W_PROMPTS`` (short prompts), from their retrieval- and LLM-upsampled versions,
   and, as a reference, from the held-out clips' own captions; the Fréchet distance of EfficientNet-lite0 frame
   features (frames resized to 128 px) between each set and the world's held-out clips. Lower is better. The model
   comes from ``benchmarks/upsample_model.py`` (a tiny Text2World diffusion model trained on all four worlds).

    python benchmarks/upsample_model.py --work /tmp/ups-t2w
    python benchmarks/upsample.py [--limit N] [--skip llm] [--model /tmp/ups-t2w/diffusion \\
        --heldout /tmp/ups-t2w/heldout] [--out upsample.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from worldsmith.atomic import atomic_write_text
from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_shard
from worldsmith.diffusion.config import SamplingConfig
from worldsmith.eval.features import frame_features, frechet_distance
from worldsmith.families import load_generator
from worldsmith.upsample.entities import entity_recall, extract_entities, missing_entities
from worldsmith.upsample.llm import shared_llm
from worldsmith.upsample.prompts import word_count
from worldsmith.upsample.upsampler import UpsampleConfig, upsample

PROMPTS = [
    "a robot picks up a cup", "a car turns left at the intersection", "three red balls bounce off a wall",
    "a robot arm stacks a blue block on a red block", "a drone flies over a parking lot",
    "a humanoid robot opens the fridge door", "a forklift lifts a pallet in a warehouse",
    "the camera orbits around a wooden table", "a self-driving car stops at a red light",
    "two cubes slide across a tiled floor", "a truck overtakes a bus on the highway", "a dog chases a ball in a park",
    "a robot pours water into a glass", "a gripper grasps a small screw", "a person walks across a crosswalk",
    "a cyclist rides along a bike lane", "a yellow taxi waits at the curb", "a robot vacuum cleans the kitchen floor",
    "the robot arm pushes a green ball to the left", "a ball rolls down a ramp", "a stack of boxes falls over",
    "a delivery robot drives on the sidewalk", "the camera pans across a living room with a sofa",
    "a car drives through the rain at night", "a robot sorts apples and oranges into two bins",
    "a mobile robot navigates around traffic cones", "an orange cylinder tumbles off a table",
    "a robot hand opens a drawer", "the ego car follows a white van on a curvy road",
    "a robot folds a towel", "two robots carry a long plank", "a pedestrian crosses the street in front of a bus",
    "a drone lands on a rooftop", "a quadruped robot climbs the stairs", "a blue car parks next to a red truck",
    "a glass bottle falls and breaks on the floor", "the camera moves toward a shelf with three books",
    "a robot arm inserts a peg into a hole", "a tractor plows a field", "a train passes a level crossing",
    "a motorcycle weaves between cars in traffic", "a purple ball hits a yellow cube",
    "a robot wipes a table with a sponge", "a car merges onto the highway behind a truck",
    "a boat sails past a lighthouse", "a crane lifts a steel beam at a construction site",
    "a robot places a banana in a bowl", "the camera rises above a room with four cubes",
    "snow falls on a parked car", "a robot arm moves above a pink capsule",
    "a child kicks a soccer ball toward a goal", "a warehouse robot picks a box from a shelf",
]  # fmt: skip
T2W_PROMPTS = {
    "arm": ["a robot arm picks up a cube", "a robot pushes a ball", "the robot arm stacks a block"],
    "drive": ["a car drives down a road", "a car passes a truck", "driving on a curvy road"],
    "orbit": ["the camera moves around a room with objects", "a camera pans across a room", "a room with a few toys"],
    "bounce": ["balls fall and roll on the floor", "a cube slides and hits a ball", "objects bounce in a box"],
}  # fmt: skip


def recall_benchmark(kinds: list[str], limit: int, max_words: int) -> dict[str, Any]:
    prompts = PROMPTS[:limit]
    out: dict[str, Any] = {"prompts": len(prompts), "entities": sum(len(extract_entities(p)) for p in prompts)}
    for kind in kinds:
        cfg = UpsampleConfig(kind=kind, max_words=max_words)
        start = time.perf_counter()
        if kind == "llm":
            shared_llm()
        elif kind == "retrieval":
            upsample("warm up the text encoder", cfg)
        load = time.perf_counter() - start
        rows = []
        for i, p in enumerate(prompts):
            r = upsample(p, cfg, seed=0)
            rows.append({"prompt": p, "text": r.text, "source": r.source, "seconds": r.seconds, "attempts": r.attempts,
                         "repaired": r.repaired, "raw_missing": r.raw_missing, "words": word_count(r.text),
                         "recall": entity_recall(p, r.text), "missing": [e.text for e in missing_entities(p, r.text)]})  # fmt: skip
            print(f"[{kind} {i + 1}/{len(prompts)} {r.seconds:.1f} s] {p} -> {r.text}", flush=True)
        secs = [r["seconds"] for r in rows]
        entities = [len(extract_entities(r["prompt"])) for r in rows]
        summary = {
            "load_seconds": load, "mean_seconds": statistics.mean(secs), "median_seconds": statistics.median(secs),
            "max_seconds": max(secs), "entity_recall": statistics.mean(r["recall"] for r in rows),
            "prompts_all_kept": sum(not r["missing"] for r in rows), "max_words": max(r["words"] for r in rows),
        }  # fmt: skip
        if kind in ("llm", "endpoint"):
            raw_kept = sum(n - len(r["raw_missing"]) for r, n in zip(rows, entities))
            summary |= {
                "raw_entity_recall": raw_kept / max(1, sum(entities)),
                "raw_first_answer_all_kept": sum(not r["raw_missing"] for r in rows),
                "kept_after_retries": sum(bool(r["raw_missing"]) and not r["repaired"] and r["source"] == kind
                                          for r in rows),
                "repaired": sum(r["repaired"] for r in rows), "fell_back_to_retrieval": sum(r["source"] == "retrieval" for r in rows),
                "mean_attempts": statistics.mean(r["attempts"] for r in rows),
            }  # fmt: skip
        out[kind] = {"summary": summary, "rows": rows}
        print(kind, json.dumps(summary, indent=1), flush=True)
    return out


def heldout_clips(heldout: Path, world: str) -> tuple[torch.Tensor, list[str]]:
    """Frames (N, 3, H, W) in [-1, 1] of the world's held-out clips, and their captions."""
    frames, captions = [], []
    for shard in list_shards(heldout / world):
        for clip in iter_shard(shard):
            frames.append(torch.from_numpy(clip.frames).permute(0, 3, 1, 2))
            captions.append(clip.caption)
    return torch.cat(frames).float() / 127.5 - 1, captions


def features(frames: torch.Tensor) -> torch.Tensor:
    return frame_features(F.interpolate(frames, size=(128, 128), mode="bilinear", align_corners=False))


def t2w_benchmark(model: Path, heldout: Path, kinds: list[str], clips: int, guidance: float,
                  max_words: int) -> dict[str, Any]:  # fmt: skip
    gen = load_generator(model)
    sampling = SamplingConfig(steps=10, guidance=guidance, negative_prompt="" if guidance != 1 else None)
    results: dict[str, Any] = {"model": str(model), "clips_per_prompt": clips, "guidance": guidance, "worlds": {}}
    for world, shorts in T2W_PROMPTS.items():
        ref, captions = heldout_clips(heldout, world)
        ref_feat = features(ref)
        variants = {"short": shorts, "heldout caption": captions[: len(shorts)]}
        for kind in kinds:
            cfg = UpsampleConfig(kind=kind, max_words=max_words)
            variants[kind] = [upsample(p, cfg, seed=0).text for p in shorts]
        row = {}
        for name, prompts in variants.items():
            batch = [p for p in prompts for _ in range(clips)]
            seeds = [i % clips for i in range(len(batch))]
            videos = torch.cat([gen.generate_videos([p], seed=s, frames=gen.chunk_frames, sampling=sampling)
                                for p, s in zip(batch, seeds)])  # (B, 3, T, H, W)  # fmt: skip
            frames = videos.permute(0, 2, 1, 3, 4).reshape(-1, *videos.shape[1:2], *videos.shape[3:])
            row[name] = {"fd": frechet_distance(features(frames.clamp(-1, 1)), ref_feat), "prompts": prompts}
            print(f"{world} {name}: FD {row[name]['fd']:.1f}", flush=True)
        results["worlds"][world] = row
    names = list(next(iter(results["worlds"].values())))
    results["mean_fd"] = {n: statistics.mean(results["worlds"][w][n]["fd"] for w in results["worlds"]) for n in names}
    print("mean FD", json.dumps(results["mean_fd"], indent=1), flush=True)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--limit", type=int, default=len(PROMPTS), help="first N prompts of the recall test set")
    p.add_argument("--skip", nargs="*", default=[], choices=["llm", "retrieval", "recall"])
    p.add_argument("--max-words", type=int, default=UpsampleConfig().max_words)
    p.add_argument("--model", type=Path, default=None, help="a Text2World run (benchmarks/upsample_model.py)")
    p.add_argument("--heldout", type=Path, default=None, help="held-out simulator shards, one folder per world")
    p.add_argument("--clips", type=int, default=4, help="videos per prompt (seeds) in the Text2World test")
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    kinds = [k for k in ("retrieval", "llm") if k not in a.skip]
    results: dict[str, Any] = {"machine": {"torch_threads": a.threads, "cpus": torch.get_num_threads()}}
    if "recall" not in a.skip:
        results["recall"] = recall_benchmark(kinds, a.limit, a.max_words)
    if a.model is not None:
        if a.heldout is None:
            p.error("--model needs --heldout (the held-out simulator clips, one folder per world)")
        results["text2world"] = t2w_benchmark(a.model, a.heldout, kinds, a.clips, a.guidance, a.max_words)
    else:
        results["text2world"] = "not measured: pass --model RUN --heldout DIR (see benchmarks/upsample_model.py)"
    if a.out:
        atomic_write_text(a.out, json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
