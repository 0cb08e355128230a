"""Does a world model's short imagination move a pushed object? (the diagnosis behind push planning)

The planner imagines two steps ahead from the true frames, so what matters for pushing is whether, two steps after
a true frame, an imagined pushed object has moved as the real one did. The scripted pusher runs in the simulator on
the planning episodes; at every step where the pushed object truly moves at least 1 px over the next two frames,
the model imagines those two frames from the two true frames before (the true actions, the family's planning
sampling) and the state reader reads the object (tracked from its true pixel) on the imagined frames and, for
comparison, on the true ones. Prints the mean displacements, the imagined object's error to the truth against the
error of an object that stays put (also against the object read on the true frames, which takes the reader's own
error out), the share of windows where the object is read to move, and how well the direction of the read move
agrees with the true one (mean cosine; the share within 45 degrees).

    python benchmarks/push_imagination.py [--model arm-action] [--episodes 16] [--steps N]

``--steps N`` imagines with N Euler steps instead of the planner's sampling (1 step): a one-step sample is the
model's mean next frame, which blurs an outcome the model is unsure of; more steps show whether the model holds
a direction that the mean hides.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from worldsmith.envs.plan import PLAN_SEED
from worldsmith.envs.policies import make_policy
from worldsmith.envs.world_model import TRACK_RADIUS, load_reader, track
from worldsmith.families import load_generator
from worldsmith.io.video import to_tensor
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.generate import episode_seed
from worldsmith.worlds.gym_env import WorldEnv
from worldsmith.worlds.tasks import make_task


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="arm-action")
    p.add_argument("--episodes", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=0, help="Euler steps per imagined frame (0: the planner's sampling)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    gen, reader, task = load_generator(a.model), load_reader("arm-reader", "cpu"), make_task("push")
    sampling = gen.planning_sampling()
    if a.steps:
        sampling = dataclasses.replace(sampling, steps=a.steps)
    env = WorldEnv("arm", WorldConfig(size=gen.size), task="push")

    def read(frame: np.ndarray, previous: np.ndarray) -> np.ndarray:
        _, cands, heat = (v.cpu().numpy().astype(np.float64) for v in reader.read(to_tensor(frame[None])[:, 0][None]))
        return track(previous, cands[0], heat[0], TRACK_RADIUS * gen.size / 64)

    rows = []
    with torch.no_grad():
        for e in range(a.episodes):
            seed = episode_seed(PLAN_SEED, e)
            frame, info = env.reset(seed=seed)
            policy = make_policy("scripted", task)
            policy.reset(env.world, env.goal, np.random.default_rng(seed))
            frames, actions, px = [frame], [], [info["objects_px"].astype(np.float64)]
            for _ in range(task.max_steps):
                action = np.asarray(policy.act(env.world), np.float32)
                frame, _, done, trunc, info = env.step(action)
                frames.append(frame), actions.append(action), px.append(info["objects_px"].astype(np.float64))
                if done or trunc:
                    break
            o = env.goal.object
            for t in range(1, len(actions) - 1):
                if np.linalg.norm(px[t + 2][o] - px[t][o]) < 1.0:
                    continue
                state = gen.start_rollout(to_tensor(np.stack(frames[t - 1 : t + 1]))[None], [""],
                                          sampling, [seed + t],
                                          torch.from_numpy(actions[t - 1][None, None]))  # fmt: skip
                imagined, real = px[t], px[t]
                for h in range(2):
                    x = gen.step_rollout(state, torch.from_numpy(actions[t + h][None, None]))[0, :, 0]
                    imagined = read(((x.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8),
                                    imagined)  # fmt: skip
                    real = read(frames[t + 1 + h], real)
                true_move, seen, dreamt = px[t + 2][o] - px[t][o], real[o] - px[t][o], imagined[o] - px[t][o]
                rows.append([np.linalg.norm(true_move), np.linalg.norm(seen), np.linalg.norm(dreamt),
                             np.linalg.norm(imagined[o] - px[t + 2][o]), np.linalg.norm(imagined[o] - real[o]),
                             cosine(dreamt, true_move), cosine(seen, true_move)])  # fmt: skip
            print(f"episode {e + 1}/{a.episodes}: {len(rows)} windows so far", flush=True)
    env.close()
    r = np.array(rows)
    print(f"{a.model} ({sampling.steps} {sampling.sampler} steps), {a.episodes} scripted pushes, {len(r)} two-step "
          f"windows where the pushed object moves >= 1 px:")
    print(f"  displacement over the two steps: truth {r[:, 0].mean():.2f} px, read on the true frames "
          f"{r[:, 1].mean():.2f}, read on the imagined frames {r[:, 2].mean():.2f}")
    print(f"  imagined object's distance to the truth {r[:, 3].mean():.2f} px (an object that stays put: "
          f"{r[:, 0].mean():.2f})")
    print(f"  windows read to move >= 1 px: imagined {(r[:, 2] >= 1).mean():.0%}, true frames {(r[:, 1] >= 1).mean():.0%}")
    print(f"  imagined object's distance to the object read on the true frames {r[:, 4].mean():.2f} px (staying put: "
          f"{r[:, 1].mean():.2f})")
    for name, col in (("imagined", 5), ("true frames", 6)):
        c = r[np.isfinite(r[:, col]), col]
        print(f"  direction of the read move against the true move ({name}, windows read to move >= 0.5 px: "
              f"{len(c)}): mean cosine {c.mean():+.2f}, within 45 degrees {(c >= np.cos(np.pi / 4)).mean():.0%}")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine between two moves (NaN when the first is under 0.5 px: no direction to speak of)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b / (na * nb)) if na >= 0.5 and nb > 0 else float("nan")


if __name__ == "__main__":
    main()
