"""The caption bank of the retrieval upsampler: training captions of the built-in worlds, plus each world's setting.

``data/captions.tsv`` holds ``world<TAB>caption`` lines: the captions of episodes 0..N-1 (base seed 0, 32 frames at
16x16, one view: the caption of an episode depends on its physics, not on the image size) of every built-in world,
without repeats. It is made by this module:

    python -m worldsmith.upsample.bank [--episodes 160] [--out worldsmith/upsample/data/captions.tsv]

which also writes ``data/captions_minilm.npz``: the captions' MiniLM vectors (float16) with the SHA-256 of the bank
text, so retrieval starts without encoding the bank; they are recomputed (seconds) when the bank text changed.

``SETTINGS`` says for each world what its captions leave implicit (layout, camera, lighting), in the same plain
style, from how the world is built (worldsmith/worlds/*.py); the retrieval upsampler adds it after the caption.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from worldsmith.atomic import atomic_open, atomic_write_text
from worldsmith.conditioning.text import default_text_encoder
from worldsmith.errors import DataError
from worldsmith.worlds.base import WorldConfig, record_episode
from worldsmith.worlds.generate import episode_seed
from worldsmith.worlds.registry import make_world, world_names

BANK_PATH = Path(__file__).parent / "data" / "captions.tsv"
VECTORS_PATH = BANK_PATH.with_name("captions_minilm.npz")  # float16 MiniLM vectors + the SHA-256 of the bank
BANK_FRAMES = 32  # frames per episode (worldsmith sim's default), so captions describe the usual clip length

SETTINGS = {
    "arm": "A six-joint robot arm with a two-finger gripper stands at a table with a few coloured objects on it. "
           "A fixed camera in front of the table films the whole arm and the objects, under even indoor light.",
    "drive": "The road has two lanes with painted markings, trees and buildings on both sides. The camera is "
             "mounted on the ego car and looks ahead along the road, in daylight.",
    "orbit": "The room has textured walls and a few objects standing apart on the floor. The camera moves "
             "smoothly at head height and keeps the objects in view, under soft light from above.",
    "bounce": "The objects are in a walled arena on a flat floor. A fixed camera looks down at the arena from "
              "the side, under even light from above.",
}  # fmt: skip


@dataclass(frozen=True)
class BankEntry:
    world: str
    caption: str


def build_captions(episodes: int, seed: int = 0) -> list[BankEntry]:
    """Captions of ``episodes`` episodes of every built-in world, without repeats, in world then episode order."""
    entries: dict[tuple[str, str], BankEntry] = {}
    for name in world_names():
        world = make_world(name, WorldConfig(size=16, fps=10.0, views=1))
        try:
            for i in range(episodes):
                caption = record_episode(world, episode_seed(seed, i), BANK_FRAMES).caption
                entries.setdefault((name, caption), BankEntry(name, caption))
        finally:
            world.close()
    return list(entries.values())


def write_bank(entries: list[BankEntry], path: str | Path = BANK_PATH) -> None:
    atomic_write_text(path, "".join(f"{e.world}\t{e.caption}\n" for e in entries))


@lru_cache(maxsize=4)
def read_bank(path: str | Path = BANK_PATH) -> tuple[BankEntry, ...]:
    """The bank's entries; a DataError when the file is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"the caption bank {path} is missing; rebuild it with python -m worldsmith.upsample.bank.")
    entries = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        world, sep, caption = line.partition("\t")
        if not sep or world not in SETTINGS or not caption.strip():
            raise DataError(f"line {n} of the caption bank {path} is not 'world<TAB>caption'; rebuild the bank.")
        entries.append(BankEntry(world, caption.strip()))
    if not entries:
        raise DataError(f"the caption bank {path} is empty; rebuild it with python -m worldsmith.upsample.bank.")
    return tuple(entries)


def bank_text_sha() -> str:
    return hashlib.sha256(BANK_PATH.read_bytes()).hexdigest()


def write_vectors() -> None:
    """Encode the bank with MiniLM and write the vectors next to it (run by ``python -m ...bank``)."""
    entries = read_bank(BANK_PATH)
    pooled = default_text_encoder().encode([e.caption for e in entries]).pooled.numpy().astype(np.float16)
    with atomic_open(VECTORS_PATH, "wb") as f:
        np.savez_compressed(f, pooled=pooled, sha=np.array(bank_text_sha()))


_VECTORS: dict[str, torch.Tensor] = {}


def bank_vectors() -> torch.Tensor:
    """(N, 384) float32 unit vectors of the bank's captions (shipped, or computed once per process)."""
    sha = bank_text_sha()
    if sha not in _VECTORS:
        vectors = None
        if VECTORS_PATH.is_file():
            with np.load(VECTORS_PATH) as z:
                if str(z["sha"]) == sha:
                    vectors = torch.nn.functional.normalize(torch.from_numpy(z["pooled"].astype(np.float32)), dim=-1)
        if vectors is None:
            vectors = default_text_encoder().encode([e.caption for e in read_bank(BANK_PATH)]).pooled
        _VECTORS[sha] = vectors
    return _VECTORS[sha]


def main() -> None:
    p = argparse.ArgumentParser(description="Write the upsampler's caption bank from the built-in worlds.")
    p.add_argument("--episodes", type=int, default=160, help="episodes per world")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=BANK_PATH)
    a = p.parse_args()
    entries = build_captions(a.episodes, a.seed)
    write_bank(entries, a.out)
    if a.out == BANK_PATH:
        write_vectors()
    print(f"{len(entries)} captions -> {a.out} ({a.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
