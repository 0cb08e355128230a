"""Synthetic data: a policy's rollouts inside a world model, written as normal clip shards.

Each clip starts from a simulator start state (its first frame is real) and continues with the world model's frames
under the actions the policy took, acting on the model's estimated state (envs/world_model.py). Arrays:
``actions`` (T-1, 7) as in simulated clips, and the state reader's estimates ``gripper_px`` (T, 2) and
``objects_px`` (T, N, 2); ``meta`` says ``synthetic: true`` with the model, policy and task. The same training
commands (``worldsmith posttrain action``, ``worldsmith train ...``) read them like any shard.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from worldsmith.data.clip import Clip
from worldsmith.data.manifest import read_manifest
from worldsmith.data.shard_writer import ShardWriter
from worldsmith.envs.policies import make_policy
from worldsmith.worlds.generate import episode_seed


def synthesize(envs, policy: str, out: str | Path, *, episodes: int, frames: int, base_seed: int,
               batch: int = 32, progress: bool = True) -> int:  # fmt: skip
    """Write ``episodes`` rollouts of ``frames`` frames to shards in ``out``; returns the number written. Episodes
    already in ``out`` (same keys) are skipped, so running the same command again resumes."""
    out = Path(out)
    done = set(read_manifest(out).column("key").to_pylist()) if (out / "manifest.parquet").exists() else set()
    todo = [e for e in range(episodes) if f"synth-{envs.task.name}-s{base_seed}-e{e:06d}" not in done]
    make_policy(policy, envs.task)  # a bad spec fails before any rollout
    written = 0
    bar = tqdm(total=len(todo), desc="synthetic rollouts", unit="clip", disable=not progress)
    with ShardWriter(out, prefix="synth", max_clips_per_shard=64) as writer:
        for i in range(0, len(todo), batch):
            chunk = todo[i : i + batch]
            first, infos = envs.reset(seeds=[episode_seed(base_seed, e) for e in chunk])
            pols = [make_policy(policy, envs.task) for _ in chunk]
            for p, view, start in zip(pols, envs.views, envs.starts):
                p.reset(view, start.goal, np.random.default_rng(int(start.seed)))
            video, acts = [first], []
            grips, objs = [[info["gripper_px"]] for info in infos], [[info["objects_px"]] for info in infos]
            for _ in range(frames - 1):
                a = np.stack([p.act(v) for p, v in zip(pols, envs.views)])
                fr, _, _, _, infos = envs.step(a)
                video.append(fr)
                acts.append(a)
                for j, info in enumerate(infos):
                    grips[j].append(info["gripper_px"])
                    objs[j].append(info["objects_px"])
            for j, e in enumerate(chunk):
                start = envs.starts[j]
                writer.write(Clip(
                    key=f"synth-{envs.task.name}-s{base_seed}-e{e:06d}",
                    frames=np.stack([v[j] for v in video]), fps=float(start.fps), caption="",
                    meta={"synthetic": True, "policy": policy, "task": envs.task.name, "seed": int(start.seed),
                          "episode": int(e), "world": "arm"},
                    arrays={"actions": np.stack([a[j] for a in acts]).astype(np.float32),
                            "gripper_px": np.stack(grips[j]).astype(np.float32),
                            "objects_px": np.stack(objs[j]).astype(np.float32)},
                ))  # fmt: skip
                written += 1
                bar.update(1)
    bar.close()
    return written
