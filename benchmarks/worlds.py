"""Simulation speed of every world: frames per second per CPU core at 64x64 and 128x128 (goal: arm >= 150 at 64).

A "frame" is one video time step: the physics for one frame period, the scripted policy, the ground truth and the
render of every camera (drive renders 3 views per frame). Each measurement runs whole episodes through
``record_episode`` (reset and caption included) in this single process after one warm-up episode, and divides
the frames by the process CPU time, so other jobs on the machine do not skew it; wall-clock frames/s is shown
too. Results go to stdout, to the "worlds" section of benchmarks/RESULTS.md and optionally to JSON.

    python benchmarks/worlds.py [--worlds bounce orbit] [--sizes 64 128] [--episodes 4] [--frames 32] [--json f]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import worldsmith  # noqa: F401  (MUJOCO_GL before mujoco)
from worldsmith.atomic import atomic_write_text
from worldsmith.worlds.base import WorldConfig, record_episode
from worldsmith.worlds.registry import make_world, world_names
from results_md import machine, markers, update_section  # benchmarks/results_md.py

BEGIN, END = markers("worlds")


def bench(name: str, size: int, episodes: int, frames: int) -> dict:
    world = make_world(name, WorldConfig(size=size))
    try:
        record_episode(world, 10_000, frames)  # warm-up: GL context, shader and JIT compilation
        cpu, wall = time.process_time(), time.perf_counter()
        for seed in range(episodes):
            record_episode(world, seed, frames)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        views = world.num_views
    finally:
        world.close()
    n = episodes * frames
    return {
        "world": name, "size": size, "views": views, "frames": n,
        "frames_per_cpu_s": n / cpu, "frames_per_wall_s": n / wall, "images_per_cpu_s": n * views / cpu,
    }  # fmt: skip


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [
        BEGIN,
        "## Simulated worlds (`python benchmarks/worlds.py`)",
        "",
        f"Frames/s per CPU core (one process, process CPU time; {args.episodes} episodes x {args.frames} frames "
        f"after a warm-up, reset and captions included; Mesa llvmpipe, one render thread). "
        f"Machine: {machine()}. Goal: arm >= 150 frames/s per core at 64x64.",
        "",
        "| world | size | views | frames/s per core | images/s per core | frames/s wall |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['world']} | {r['size']} | {r['views']} | {r['frames_per_cpu_s']:.0f} | {r['images_per_cpu_s']:.0f} | "
        f"{r['frames_per_wall_s']:.0f} |"
        for r in rows
    ]
    return "\n".join(lines + ["", END])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worlds", nargs="+", default=world_names(), choices=world_names())
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 128])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-results", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = parser.parse_args()
    rows = []
    for name in args.worlds:
        for size in args.sizes:
            r = bench(name, size, args.episodes, args.frames)
            rows.append(r)
            views = f"{r['views']} view{'s' if r['views'] > 1 else ''}"
            print(f"{name:7s} {size:4d}px  {r['frames_per_cpu_s']:7.1f} frames/s per core  "
                  f"({views}, {r['frames_per_wall_s']:.1f} frames/s wall)", flush=True)  # fmt: skip
    if not args.no_results:
        update_section("worlds", markdown(rows, args))
    if args.json:
        atomic_write_text(args.json, json.dumps({"machine": machine(), "results": rows}, indent=2))


if __name__ == "__main__":
    main()
