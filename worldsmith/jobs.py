"""Generation jobs for any family: files in (an image or video, a JSONL of jobs), mp4 files out.

What ``worldsmith generate`` and ``worldsmith batch`` run, through the Generator protocol only (family.py), so one
piece of code serves every family. Sampling settings (steps, guidance, temperature ...) are the fields of the
generator's ``Sampling`` dataclass, checked by name and type like every config.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from worldsmith import config as C
from worldsmith.errors import ConfigError, DataError
from worldsmith.family import GenerationRequest, Generator
from worldsmith.guard.rails import Blocked, Guardrails
from worldsmith.io.frames import pinhole_intrinsics
from worldsmith.io.video import decode, encode_mp4, probe
from worldsmith.upsample.upsampler import UpsampleConfig
from worldsmith.upsample.upsampler import upsample as upsample_prompt
from worldsmith.worlds.camera_paths import load_path
from worldsmith.worlds.manoeuvres import load_trajectory

REQUEST_KEYS = ("prompt", "input", "frames", "seed", "name", "actions", "camera", "fov", "input_views", "trajectory")  # a JSONL job's keys besides sampling settings


def sampling_config(generator: Generator, values: dict[str, Any], base: Any = None) -> Any:
    """The generator's Sampling dataclass (``base``, else the run's own defaults where it has some) with ``values``
    applied; one sentence names the valid settings."""
    fields = [f.name for f in dataclasses.fields(generator.Sampling)]
    unknown = [k for k in values if k not in fields]
    if unknown:
        family = type(generator).__name__.removesuffix("Generator") or "this"
        valid = ", ".join(fields) or "none"
        raise ConfigError(f"{unknown[0]!r} is not a sampling setting of {family} models; theirs are: {valid}.")
    if base is None:
        base = generator.default_sampling() if hasattr(generator, "default_sampling") else generator.Sampling()
    return C.merge(base, values)


def read_input(path: str | Path) -> tuple[np.ndarray, float]:
    """An image or video file as uint8 (T, H, W, 3) and its frame rate."""
    return decode(path), probe(path).fps


def run_request(generator: Generator, request: GenerationRequest, sampling: Any, out: str | Path,
                rails: Guardrails | None = None, upsample: UpsampleConfig | None = None) -> Path:  # fmt: skip
    """Generate one video into ``out`` (mp4, written atomically) at the model's frame rate or the input's. With
    ``rails``, the prompt passes the pre-guard first and the video the post-guard before it is written (``Blocked``
    otherwise: nothing is written). With ``upsample``, the prompt is rewritten in detail first (and the pre-guard
    sees both the prompt and its upsampled form)."""
    kind = "prompt"
    if upsample is not None and request.prompt.strip():
        if rails is not None:
            rails.check_prompt(request.prompt)
        request = dataclasses.replace(request, prompt=upsample_prompt(request.prompt, upsample, request.seed).text)
        kind = "upsampled_prompt"
    if rails is not None:
        rails.check_prompt(request.prompt, kind)
    video = generator.generate(request, sampling)
    if rails is not None:
        video = rails.filter_video(video, request.prompt)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fps = generator.fps or request.fps or 10.0
    encode_mp4(video, out, fps=fps)
    if request.views is not None:  # multi-view: the tiled video above, and one file per view beside it
        for i, view in enumerate(np.split(video, 1 + len(request.views), axis=2)):
            encode_mp4(view, out.with_name(f"{out.stem}.view{i}{out.suffix}"), fps=fps)
    return out


def read_actions(source: str | Path | list) -> np.ndarray:
    """Actions float32 (N, A) from a .npy file, a .json file or a JSON list of lists (one action per transition)."""
    if isinstance(source, list):
        values = source
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{path} does not exist; pass a .npy or .json file of actions, one row per frame transition.")
        if path.suffix == ".npy":
            values = np.load(path, allow_pickle=False)
        else:
            try:
                values = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise DataError(f"{path} is not valid JSON ({e.msg}); write the actions as [[a0, a1, ...], ...].") from None
    actions = np.asarray(values, dtype=np.float32)
    if actions.ndim != 2 or len(actions) == 0 or not np.isfinite(actions).all():
        raise DataError(f"actions must be a finite (N, A) array, one row per frame transition; got shape {actions.shape}.")
    return actions


CAMERA_FRAMES = 17  # frames of a camera path when --frames does not say


def request_for(prompt: str = "", input_path: str | Path | None = None, frames: int | None = None,
                seed: int = 0, actions: str | Path | list | None = None, camera: str | None = None,
                fov: float | None = None, input_views: str | None = None,
                trajectory: str | None = None) -> GenerationRequest:  # fmt: skip
    """A request from CLI / job values; ``camera``: a named path (``orbit_left``, ``dolly_in:0.5`` ...) or a JSON
    file of poses (worldsmith/worlds/camera_paths.py), ``frames`` poses long (default 17); ``fov``: the input's
    vertical field of view in degrees (default 50). Multi-view models: ``input_views`` "front.png,left.png,..." (the
    front view first, instead of ``input_path``) and ``trajectory`` a named manoeuvre (straight, left, right, stop)
    or a JSON file (worldsmith/worlds/manoeuvres.py), ``frames`` states long (default 17)."""
    views = None
    if input_views is not None:
        if input_path is not None:
            raise ConfigError("give either --input (one camera) or --input-views (every camera, front first), not both.")
        paths = [p.strip() for p in str(input_views).split(",") if p.strip()]
        if not paths:
            raise ConfigError("--input-views needs comma-separated image or video files, front view first.")
        input_path, views = paths[0], [read_input(p)[0] for p in paths[1:]]
    video, fps = read_input(input_path) if input_path else (None, None)
    ego = load_trajectory(str(trajectory), frames or CAMERA_FRAMES) if trajectory is not None else None
    acts = read_actions(actions) if actions is not None else None
    c2w = load_path(str(camera), frames or CAMERA_FRAMES) if camera is not None else None
    K = None
    if fov is not None:
        if video is None or not 1.0 <= fov <= 170.0:
            raise ConfigError(f"--fov needs an --input and a vertical field of view in degrees in [1, 170], got {fov}.")
        K = pinhole_intrinsics(fov, *video.shape[1:3])
    return GenerationRequest(prompt=prompt, video=video, frames=frames, seed=seed, fps=fps, actions=acts,
                             camera=c2w, intrinsics=K, views=views, trajectory=ego)  # fmt: skip


def read_jobs(jsonl: str | Path) -> list[dict]:
    """Lines of a JSONL file of jobs: each an object with a string "prompt" (other keys are checked when run)."""
    path = Path(jsonl)
    if not path.is_file():
        raise DataError(f"{path} does not exist; pass a JSONL file with one {{\"prompt\": ...}} object per line.")
    jobs = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            job = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} line {i} is not valid JSON ({e.msg}).") from None
        if not isinstance(job, dict) or not isinstance(job.get("prompt"), str):
            raise DataError(f"{path} line {i} must be an object with a string \"prompt\".")
        jobs.append(job | {"name": str(job.get("name", f"{len(jobs):05d}")), "line": i})
    return jobs


def run_jobs(generator: Generator, jsonl: str | Path, out_dir: str | Path, defaults: dict[str, Any],
             rails: Guardrails | None = None, upsample: UpsampleConfig | None = None) -> list[dict]:  # fmt: skip
    """Every job of ``jsonl`` into ``out_dir/<name>.mp4``; existing outputs are kept (run again to resume).
    ``defaults``: sampling settings for jobs that do not set their own. All jobs are checked before any runs. A job
    the guardrails refuse is reported (``blocked``: the reason) and the batch goes on."""
    jobs, planned = read_jobs(jsonl), []
    for job in jobs:
        settings = {k: v for k, v in job.items() if k not in (*REQUEST_KEYS, "line")}
        try:
            planned.append((job, sampling_config(generator, defaults | settings)))
        except ConfigError as e:
            raise DataError(f"{jsonl} line {job['line']}: {e}") from None
    results = []
    for job, sampling in planned:
        out = Path(out_dir) / f"{job['name']}.mp4"
        if not out.is_file():
            request = request_for(job["prompt"], job.get("input"), job.get("frames"), int(job.get("seed", 0)),
                                  job.get("actions"), job.get("camera"), job.get("fov"), job.get("input_views"),
                                  job.get("trajectory"))  # fmt: skip
            try:
                run_request(generator, request, sampling, out, rails, upsample)
            except Blocked as e:
                results.append({"name": job["name"], "blocked": str(e)})
                continue
        results.append({"name": job["name"], "file": str(out)})
    return results
