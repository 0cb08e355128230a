"""The README's contact sheet of the simulated worlds: a few episodes of each, frames left to right, with the
episode's caption above. Drive episodes show the three synchronized cameras side by side (left | front | right).

    python benchmarks/worlds_sheet.py [--out docs/worlds.png] [--episodes 2] [--frames 40]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import worldsmith  # noqa: F401  (MUJOCO_GL before mujoco)
from worldsmith.atomic import atomic_open
from worldsmith.io.contact_sheet import BACKGROUND, contact_sheet
from worldsmith.worlds.base import WorldConfig, record_episode
from worldsmith.worlds.registry import make_world, world_names

SIZES = {"drive": 80}  # three views side by side: keep the row about as wide as the others
COLS = {"drive": 3}


def world_block(name: str, episodes: int, frames: int, seed: int, size: int) -> np.ndarray:
    world = make_world(name, WorldConfig(size=SIZES.get(name, size)))
    videos, labels = [], []
    try:
        for episode in range(episodes):
            clip = record_episode(world, seed + episode, frames)
            video = clip.frames
            if name == "drive":  # views: front, front_left, front_right -> left | front | right
                video = np.concatenate([clip.views[0], clip.frames, clip.views[1]], axis=2)
            videos.append(video)
            text = f"{name}: {clip.caption}"
            labels.append(text if len(text) <= 125 else text[:122] + "...")
    finally:
        world.close()
    cols = COLS.get(name, 8)
    return contact_sheet(videos, None, cols=cols, max_frames=cols, labels=labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs" / "worlds.png")
    parser.add_argument("--worlds", nargs="+", default=world_names(), choices=world_names())
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    blocks = [world_block(name, args.episodes, args.frames, args.seed, args.size) for name in args.worlds]
    sheet = np.empty((sum(b.shape[0] for b in blocks), max(b.shape[1] for b in blocks), 3), np.uint8)
    sheet[:] = BACKGROUND
    y = 0
    for block in blocks:
        sheet[y : y + block.shape[0], : block.shape[1]] = block
        y += block.shape[0]
    with atomic_open(args.out, "wb") as f:
        Image.fromarray(sheet).save(f, format="PNG")
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
