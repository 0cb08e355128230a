"""Dataset generation from the simulated worlds (``worldsmith sim``): episodes -> clips -> shards.

Episode ``i`` of a run with base seed ``S`` uses the seed ``episode_seed(S, i)`` and the key
``{world}-s{S}-e{i:06d}``, so a clip depends only on (world, size, fps, views, rig, frames, S, i): not on the number
of worker processes nor on which episodes ran before. Workers are spawned processes (each owns its own world and
GL context, which must not cross a fork); the parent writes the clips in episode order through ``ShardWriter``.
To resume after an interruption, run the same command again: episodes whose keys are already in the
manifest are skipped.
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tqdm import tqdm

from worldsmith.atomic import atomic_write_text
from worldsmith.data.clip import Clip
from worldsmith.data.manifest import read_manifest
from worldsmith.data.shard_writer import ShardWriter
from worldsmith.errors import ConfigError
from worldsmith.worlds import base
from worldsmith.worlds.base import World, WorldConfig
from worldsmith.worlds.drive import DriveConfig
from worldsmith.worlds.registry import WORLDS, make_world

OPTIONAL_SETTINGS = {"branches": 1, "rig": "wide", "behaviour": "lane"}  # sim.json keys a run may lack (default, or older); value then


def episode_seed(seed: int, episode: int) -> int:
    """The 31-bit seed of episode ``episode`` of a run with base seed ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1, np.uint32)[0] >> 1)


def episode_key(world: str, seed: int, episode: int) -> str:
    return f"{world}-s{seed}-e{episode:06d}"


def world_options(world: str, rig: str | None = None, behaviour: str | None = None) -> dict[str, Any]:
    """Constructor options of ``world`` for the data settings beyond WorldConfig: the drive world's driver
    ``behaviour`` (a name of ``worldsmith.worlds.drive.BEHAVIOURS``; None = "lane") and camera ``rig`` (a name
    of ``worldsmith.worlds.drive.RIGS``; None = the default), which no other world has."""
    if rig is None and behaviour is None:
        return {}
    if world != "drive":
        what = "camera rig" if rig is not None else "behaviour"
        raise ConfigError(f"the {what} option applies to the drive world only, not {world!r}; leave out "
                          f"--{'rig' if rig is not None else 'behaviour'}.")  # fmt: skip
    return {"drive": DriveConfig(rig=rig or "wide", behaviour=behaviour or "lane")}


def record_episode(
    world: str | World,
    seed: int,
    frames: int,
    *,
    size: int = 64,
    fps: float = 10.0,
    views: int | None = None,
    rig: str | None = None,
    behaviour: str | None = None,
    key: str | None = None,
    meta: dict[str, Any] | None = None,
) -> Clip:
    """One episode of ``world`` (a name, or a World whose own config then applies) as a ``Clip``; ``rig``: drive's
    camera rig."""
    if isinstance(world, World):
        return base.record_episode(world, seed, frames, key=key, meta=meta)
    w = make_world(world, WorldConfig(size=size, fps=fps, views=views), **world_options(world, rig, behaviour))
    try:
        return base.record_episode(w, seed, frames, key=key, meta=meta)
    finally:
        w.close()


# -- worker processes ------------------------------------------------------------------------------------------
_WORLD: World | None = None  # the world of this worker process


def _init_worker(name: str, cfg: WorldConfig, options: dict[str, Any]) -> None:
    global _WORLD
    _WORLD = make_world(name, cfg, **options)  # its renderer is freed at exit (see worldsmith.worlds.base)


def _run_episode(job: tuple[int, int, int, str, dict, int]) -> Clip:
    episode, seed, frames, key, meta, branch = job
    assert _WORLD is not None, "worker not initialised"
    return base.record_episode(_WORLD, seed, frames, key=key, meta={**meta, "episode": episode}, branch=branch)


def _run_local(name: str, cfg: WorldConfig, options: dict[str, Any], jobs: list[tuple]) -> Iterator[Clip]:
    world = make_world(name, cfg, **options)
    try:
        for episode, seed, frames, key, meta, branch in jobs:
            yield base.record_episode(world, seed, frames, key=key, meta={**meta, "episode": episode}, branch=branch)
    finally:
        world.close()


def _run_pool(name: str, cfg: WorldConfig, options: dict[str, Any], jobs: list[tuple], workers: int
              ) -> Iterator[Clip]:  # fmt: skip
    """Clips in job order, computed by ``workers`` spawned processes with a bounded number in flight."""
    ctx = multiprocessing.get_context("spawn")
    init = (name, cfg, options)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=init) as pool:
        pending: collections.deque[Future] = collections.deque()
        todo = iter(jobs)
        try:
            for job in todo:
                pending.append(pool.submit(_run_episode, job))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


# -- the run ---------------------------------------------------------------------------------------------------
def _check(world: str, episodes: int, frames: int, workers: int | None, shard_size: int, seed: int) -> None:
    if world not in WORLDS:
        raise ConfigError(f"unknown world {world!r}; choose one of: {', '.join(WORLDS)}.")
    for name, value, low in (("episodes", episodes, 1), ("frames", frames, 1), ("shard_size", shard_size, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}.")
    if workers is not None and (not isinstance(workers, (int, np.integer)) or workers < 1):
        raise ConfigError(f"workers must be an integer >= 1 (or None for one per core), got {workers!r}.")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}.")


def _check_same_run(out: Path, settings: dict[str, Any]) -> None:
    """Record a run's settings in ``out/sim.json``; refuse to resume into a directory made with other settings
    (a key of ``OPTIONAL_SETTINGS`` missing on either side has its default value there)."""
    path = out / "sim.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        keys = list(settings) + [k for k in OPTIONAL_SETTINGS if k in saved and k not in settings]
        before = {k: saved.get(k, OPTIONAL_SETTINGS.get(k)) for k in keys}
        diff = [k for k in keys if before[k] != settings.get(k, OPTIONAL_SETTINGS.get(k))]
        if diff:
            was = ", ".join(f"{k}={before[k]!r}" for k in diff)
            raise ConfigError(
                f"{out} already holds a simulation made with {was}; use a new --out directory, or the same "
                "settings to resume it."
            )
    else:
        atomic_write_text(path, json.dumps(settings, indent=2))


def simulate(
    world: str,
    *,
    episodes: int,
    frames: int,
    size: int = 64,
    fps: float = 10.0,
    out: str | Path,
    seed: int = 0,
    views: int | None = None,
    rig: str | None = None,
    behaviour: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    shard_size: int = 64,
    branches: int = 1,
) -> dict[str, Any]:
    """Simulate ``episodes`` episodes of ``frames`` frames and write them as shards under ``out``; with
    ``branches`` > 1 every episode's scene is played that many times with independent policies (same first frame,
    other actions), as clips ``<key>-b<branch>``. ``rig``: the drive world's camera rig (a name of
    ``worldsmith.worlds.drive.RIGS``; None = "wide"); a ConfigError for the other worlds.

    Returns a summary: world, episodes, written, skipped (already in the manifest), frames written, seconds,
    frames_per_second, out and the shards written by this run.
    """
    _check(world, episodes, frames, workers, shard_size, seed)
    cfg = WorldConfig(size=size, fps=float(fps), views=views)
    options = world_options(world, rig, behaviour)
    make_world(world, cfg, **options).close()  # fail early, in this process, on a config the world rejects
    out = Path(out)
    if branches < 1:
        raise ConfigError(f"branches must be >= 1, got {branches}.")
    settings = {"world": world, "frames": int(frames), "size": int(size), "fps": float(fps), "views": views,
                "seed": int(seed)} | ({"branches": int(branches)} if branches > 1 else {})  # fmt: skip
    if world == "drive":  # written even when default, so sim.json says which rig made the clips
        settings["rig"] = options["drive"].rig if options else DriveConfig().rig
        settings["behaviour"] = options["drive"].behaviour if options else DriveConfig().behaviour
    _check_same_run(out, settings)
    started = time.perf_counter()
    with ShardWriter(out, prefix=world, max_clips_per_shard=shard_size) as writer:
        done = set(read_manifest(out).column("key").to_pylist()) if (out / "manifest.parquet").exists() else set()
        meta = {"world_seed": int(seed), "size": int(size), "fps": float(fps)}
        keys = {(i, b): episode_key(world, seed, i) + (f"-b{b}" if branches > 1 else "")
                for i in range(episodes) for b in range(branches)}  # fmt: skip
        jobs = [(i, episode_seed(seed, i), int(frames), key, meta, b) for (i, b), key in keys.items() if key not in done]
        n_workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
        clips = _run_local(world, cfg, options, jobs) if n_workers == 1 else _run_pool(world, cfg, options, jobs,
                                                                                      n_workers)  # fmt: skip
        bar = tqdm(total=len(jobs), disable=not progress, unit="clip", desc=f"sim {world}")
        n_frames = 0
        try:
            for clip in clips:
                writer.write(clip)
                n_frames += clip.num_frames
                bar.update(1)
                bar.set_postfix(frames_per_s=f"{n_frames / max(time.perf_counter() - started, 1e-9):.0f}")
        finally:
            bar.close()
            clips.close()
    seconds = time.perf_counter() - started
    return {
        "world": world,
        "episodes": int(episodes),
        "written": len(jobs),
        "skipped": int(episodes) * branches - len(jobs),
        "frames": n_frames,
        "seconds": round(seconds, 3),
        "frames_per_second": round(n_frames / seconds, 2) if seconds > 0 else 0.0,
        "workers": n_workers,
        "out": str(out),
        "shards": [str(p) for p in writer.shards],
    }
