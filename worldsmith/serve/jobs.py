"""Generation jobs: a bounded queue served by a few worker threads, each job's progress, cancel and time limit.

A job is validated when it is submitted (so a bad request fails at once with a 4xx), then waits in the queue; a
full queue refuses new jobs with ``Busy`` (the API's 429 with Retry-After, estimated from recent job durations).
Workers report progress through worldsmith.progress (each sampler step, each frame); the same hook raises
``Cancelled`` when the job is cancelled or runs past its time limit, so a job stops within one sampler step.
Each job writes ``job.json`` and its results (``video.mp4``, ``truth.mp4`` for a simulator start with a policy,
``sheet.png``) under ``work/jobs/<id>/``; the oldest finished jobs are deleted past ``keep``.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import re
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from worldsmith import progress
from worldsmith.atomic import atomic_write_text
from worldsmith.envs.policies import make_policy
from worldsmith.errors import ConfigError, WorldsmithError
from worldsmith.family import GenerationRequest
from worldsmith.io.contact_sheet import contact_sheet
from worldsmith.io.encode import encode_mp4
from worldsmith.jobs import sampling_config
from worldsmith.serve import guard
from worldsmith.serve.models import ServedModel
from worldsmith.serve.settings import ServeSettings
from worldsmith.serve.uploads import Uploads
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.gym_env import WorldEnv
from worldsmith.worlds.tasks import make_task

log = logging.getLogger("worldsmith.serve")
ID = re.compile(r"^[0-9a-f]{32}$")
STATES = ("queued", "running", "done", "failed", "cancelled")
DEFAULT_ACTION_FRAMES = 16


class JobRequest(BaseModel):
    """A generation job. ``text2world``: a prompt alone; ``video2world``: continue an upload or a simulator start;
    ``action``: roll an action-conditioned model out from a first frame under ``actions`` (one per frame
    transition) or under a ``policy`` acting in the simulator from ``start_seed`` (whose own video then comes back
    as the ground truth)."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="A served model's name (GET /api/models).")
    kind: Literal["text2world", "video2world", "action"]
    prompt: str = Field("", description="What happens in the video.")
    input: str | None = Field(None, description="An upload id (POST /api/uploads) to start from.")
    start_seed: int | None = Field(None, ge=0, lt=2**31, description="Start from this simulator episode's first "
                                   "frame (models of a built-in world; GET /api/starts).")  # fmt: skip
    frames: int | None = Field(None, ge=2, description="Frames in the output, the given ones included.")
    seed: int = Field(0, ge=0, lt=2**31)
    steps: int | None = Field(None, ge=1, description="Sampler steps (diffusion).")
    guidance: float | None = Field(None, ge=0.0, description="Classifier-free guidance (1 = none).")
    actions: list[list[float]] | None = Field(None, description="One action per frame transition.")
    policy: str | None = Field(None, description="Instead of actions: a policy acting in the simulator from "
                               "start_seed (scripted, scripted:noise=S, scripted:delay=K, random).")  # fmt: skip
    task: str = Field("reach", description="The task the policy pursues: reach, push or pick_place.")


class Busy(WorldsmithError):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Job:
    id: str
    request: dict[str, Any]
    folder: Path
    state: str = "queued"
    progress: float = 0.0
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    outputs: list[str] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "progress": round(self.progress, 4), "error": self.error,
                "created": self.created, "started": self.started, "finished": self.finished,
                "request": self.request, "outputs": {name: f"/api/jobs/{self.id}/{name}" for name in self.outputs}}  # fmt: skip

    def save(self) -> None:
        atomic_write_text(self.folder / "job.json", json.dumps(self.public(), indent=2))


def validate(req: JobRequest, models: dict[str, ServedModel], uploads: Uploads, s: ServeSettings,
             guards: list) -> dict[str, Any]:  # fmt: skip
    """The request checked against the model and the server's bounds (ConfigError: one sentence), as a dict."""
    m = models.get(req.model)
    if m is None:
        raise ConfigError(f"no model named {req.model!r} is served here; GET /api/models lists them.")
    if req.kind not in m.kinds:
        raise ConfigError(f"{m.name} does not do {req.kind}; it does: {', '.join(m.kinds)}.")
    if len(req.prompt) > s.max_prompt_chars:
        raise ConfigError(f"the prompt is {len(req.prompt)} characters; the limit is {s.max_prompt_chars}.")
    if req.frames is not None and req.frames > s.max_frames:
        raise ConfigError(f"frames={req.frames} is over the server's limit of {s.max_frames}.")
    if req.steps is not None and req.steps > s.max_steps:
        raise ConfigError(f"steps={req.steps} is over the server's limit of {s.max_steps}.")
    if req.guidance is not None and req.guidance > s.max_guidance:
        raise ConfigError(f"guidance={req.guidance} is over the server's limit of {s.max_guidance}.")
    if req.input is not None and req.start_seed is not None:
        raise ConfigError("give either input (an upload) or start_seed (a simulator start), not both.")
    if req.input is not None and uploads.meta(req.input) is None:
        raise ConfigError(f"no upload has the id {req.input!r}; upload the file first (POST /api/uploads).")
    if req.start_seed is not None and m.world is None:
        raise ConfigError(f"{m.name} was not trained on a built-in world, so it has no simulator starts; give an "
                          f"upload as input.")  # fmt: skip
    if req.kind == "text2world" and (req.input is not None or req.start_seed is not None):
        raise ConfigError("text2world starts from the prompt alone; use video2world to continue an image or video.")
    if req.kind in ("video2world", "action") and req.input is None and req.start_seed is None:
        raise ConfigError(f"{req.kind} needs a first frame: input (an upload id) or start_seed.")
    if req.kind == "action":
        if (req.actions is None) == (req.policy is None):
            raise ConfigError("an action job takes either actions (one per frame transition) or a policy.")
        if req.actions is not None:
            a = np.asarray(req.actions, dtype=np.float64) if req.actions else np.zeros((0, 0))
            if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] != m.action_dim or not np.isfinite(a).all():
                raise ConfigError(f"actions must be a non-empty list of finite rows of {m.action_dim} numbers.")
            if a.shape[0] + 1 > s.max_frames:
                raise ConfigError(f"{a.shape[0]} actions make {a.shape[0] + 1} frames, over the server's limit of "
                                  f"{s.max_frames}.")  # fmt: skip
        else:
            if req.start_seed is None:
                raise ConfigError("a policy acts in the simulator: give start_seed (not an upload).")
            make_policy(req.policy, req.task)  # ConfigError names the valid specs and tasks
    elif req.actions is not None or req.policy is not None:
        raise ConfigError(f"{req.kind} takes no actions or policy; use kind 'action' with an action model.")
    sampling = {k: v for k, v in (("steps", req.steps), ("guidance", req.guidance)) if v is not None}
    sampling_config(m.generator, sampling)  # ConfigError for a setting this family does not have
    guard.check_prompt(guards, req.prompt)
    return req.model_dump()


def simulate_policy(spec: str, task: str, seed: int, frames: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The simulator's video (frames, S, S, 3) and actions (frames - 1, 7) of ``spec`` pursuing ``task`` from
    episode ``seed`` (the policy keeps acting after success, so the video has every frame asked for)."""
    env = WorldEnv("arm", WorldConfig(size=size), task=task)
    try:
        frame, _ = env.reset(seed=seed)
        policy = make_policy(spec, make_task(task))
        policy.reset(env.world, env.goal, np.random.default_rng(seed))
        video, actions = [frame], []
        for _ in range(frames - 1):
            a = np.asarray(policy.act(env.world), np.float32)
            frame, *_ = env.step(a)
            video.append(frame)
            actions.append(a)
        return np.stack(video), np.stack(actions)
    finally:
        env.close()


def first_frame(seed: int, size: int) -> np.ndarray:
    env = WorldEnv("arm", WorldConfig(size=size))
    try:
        return env.reset(seed=seed)[0][None]
    finally:
        env.close()


def run_generation(job: Job, models: dict[str, ServedModel], uploads: Uploads, guards: list) -> list[str]:
    """Generate what ``job.request`` asks; write the results into ``job.folder``; return their names."""
    r = job.request
    m = models[r["model"]]
    gen = m.generator
    video_in = truth = None
    actions = np.asarray(r["actions"], np.float32) if r["actions"] is not None else None
    if r["input"] is not None:
        if r["kind"] == "action":  # a rollout starts from one frame: the upload's first
            video_in = uploads.frames(r["input"], first=1)
        else:  # Video2World continues the upload's last frames
            video_in = uploads.frames(r["input"], last=_context_frames(gen))
    elif r["start_seed"] is not None:
        if r["policy"] is not None:
            frames = r["frames"] or DEFAULT_ACTION_FRAMES
            truth, actions = simulate_policy(r["policy"], r["task"], r["start_seed"], frames, m.size)
            video_in = truth[:1]
        else:
            video_in = first_frame(r["start_seed"], m.size)
    request = GenerationRequest(prompt=r["prompt"], video=video_in, frames=r["frames"], seed=r["seed"],
                                fps=m.fps, actions=actions)  # fmt: skip
    sampling = sampling_config(gen, {k: r[k] for k in ("steps", "guidance") if r[k] is not None})
    video = gen.generate(request, sampling)
    video = guard.check_video(guards, video)
    outputs = ["video"]
    encode_mp4(video, job.folder / "video.mp4", fps=m.fps)
    clips, labels = [video], [f"{m.name}: {r['kind']}"]
    if truth is not None:
        encode_mp4(truth, job.folder / "truth.mp4", fps=m.fps)
        clips.append(truth[: len(video)])
        labels.append("simulator (ground truth)")
        outputs.append("truth")
    contact_sheet(clips, job.folder / "sheet.png", labels=labels, max_frames=8, cols=8, scale=max(1, 128 // m.size))
    outputs.append("sheet")
    return outputs


def _context_frames(gen) -> int:
    """Frames of an uploaded video that a Video2World job continues from (its last ones)."""
    if hasattr(gen, "context_frames"):
        return gen.context_frames(10**6)
    return gen.context_limit


class JobQueue:
    """``workers`` threads take jobs from a queue of at most ``capacity`` waiting jobs."""

    def __init__(self, root: Path, run: Callable[[Job], list[str]], *, workers: int, capacity: int,
                 timeout_s: float, keep: int, threads: int = 1) -> None:  # fmt: skip
        self.root, self.threads = Path(root), threads
        self.root.mkdir(parents=True, exist_ok=True)
        self.run, self.workers, self.capacity, self.timeout_s, self.keep = run, workers, capacity, timeout_s, keep
        self.jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._durations: deque[float] = deque(maxlen=20)

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"worldsmith-job-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        with self._lock:
            for job in self.jobs.values():
                if job.state in ("queued", "running"):
                    job.cancel.set()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=30)
        self._threads.clear()

    # -- requests -------------------------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self._lock:
            states = [j.state for j in self.jobs.values()]
        return {s: states.count(s) for s in STATES}

    def submit(self, request: dict[str, Any]) -> Job:
        with self._lock:
            waiting = sum(j.state == "queued" for j in self.jobs.values())
            if waiting >= self.capacity:
                raise Busy(f"the job queue is full ({waiting} jobs waiting); try again in a moment.",
                           self._retry_after(waiting))  # fmt: skip
            job_id = uuid.uuid4().hex
            job = Job(id=job_id, request=request, folder=self.root / job_id)
            job.folder.mkdir(parents=True)
            self.jobs[job_id] = job
        job.save()
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id) if isinstance(job_id, str) and ID.match(job_id) else None

    def list(self) -> list[Job]:
        with self._lock:
            return sorted(self.jobs.values(), key=lambda j: j.created, reverse=True)

    def cancel(self, job: Job) -> Job:
        with self._lock:
            if job.state == "queued":
                job.state, job.finished = "cancelled", time.time()
            if job.state == "running":
                job.cancel.set()  # the worker stops at the job's next progress report
        job.save()
        return job

    def _retry_after(self, waiting: int) -> int:
        typical = sum(self._durations) / len(self._durations) if self._durations else 5.0
        return int(min(300, max(1, math.ceil(typical * (waiting + self.workers) / self.workers / 2))))

    # -- workers --------------------------------------------------------------------------------------------------
    def _work(self) -> None:
        torch.set_num_threads(self.threads)  # this thread's OpenMP team (see serve/play.py)
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.state != "queued":
                    continue
                job.state, job.started = "running", time.time()
            job.save()
            self._execute(job)
            job.save()
            self._prune()

    def _execute(self, job: Job) -> None:
        deadline = time.monotonic() + self.timeout_s
        timed_out = False

        def hook(fraction: float) -> None:
            nonlocal timed_out
            if job.cancel.is_set():
                raise progress.Cancelled("the job was cancelled.")
            if time.monotonic() > deadline:
                timed_out = True
                raise progress.Cancelled(f"the job ran past the server's time limit of {self.timeout_s:g} s; ask "
                                         f"for fewer frames or steps.")  # fmt: skip
            job.progress = fraction

        start = time.monotonic()
        try:
            with progress.reporting(hook):
                outputs = self.run(job)
            state, error = "done", None
            job.progress = 1.0
        except progress.Cancelled as e:
            state, error, outputs = ("failed" if timed_out else "cancelled"), str(e), []
        except WorldsmithError as e:
            state, error, outputs = "failed", str(e), []
        except Exception:  # a bug: logged with its traceback, reported to the client in one sentence
            log.exception("job %s failed", job.id)
            state, error, outputs = "failed", "the job failed on an internal error; the server's log has the details.", []
        self._durations.append(time.monotonic() - start)
        with self._lock:
            job.state, job.error, job.outputs, job.finished = state, error, outputs, time.time()

    def _prune(self) -> None:
        with self._lock:
            finished = sorted((j for j in self.jobs.values() if j.state in ("done", "failed", "cancelled")),
                              key=lambda j: j.finished or 0)  # fmt: skip
            old = finished[: max(0, len(finished) - self.keep)]
            for job in old:
                del self.jobs[job.id]
        for job in old:
            shutil.rmtree(job.folder, ignore_errors=True)
