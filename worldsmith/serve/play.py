"""Play sessions: a person's actions step a world model one frame at a time, and the simulator beside it.

A session owns one thread (with ``threads`` intra-op torch threads, 1 by default: a torch call from a thread that
is not the main one runs slower on 2 OpenMP threads than on 1, 75 against 45 ms a step here; the server gets its
parallelism from running sessions and jobs side by side instead) (every call of its world model, its simulator and its recording runs there: MuJoCo's GL
context belongs to the thread that made it) and a ``BatchedWorldModelEnv`` of one rollout on the server's shared
generator. Started from a held-out simulator episode, the simulator takes the same actions, so the page's reality
check shows where the model is wrong; started from an uploaded image there is no simulator. A camera model
(``ServedModel.camera``) is played the same way with the orbit world's camera velocities as its actions: the session
integrates them into poses (``worlds.orbit.move_camera``) and steps a ``CameraRollout``; from an orbit seed the
simulator renders the same poses beside it. Frames travel as PNG
data URLs (lossless: the page shows exactly the model's pixels). The session records every frame pair up to the
server's limit; ``recording()`` encodes them side by side as mp4.
"""

from __future__ import annotations

import base64
import io
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from PIL import Image

from worldsmith.diffusion.stepwise import CameraRollout
from worldsmith.envs.world_model import BatchedWorldModelEnv, Start, simulator_start
from worldsmith.errors import ConfigError
from worldsmith.io.encode import encode_mp4_bytes
from worldsmith.io.frames import fit_frames, fit_intrinsics, pinhole_intrinsics
from worldsmith.serve.jobs import Busy
from worldsmith.serve.models import ServedModel
from worldsmith.worlds.arm import ArmWorld
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.orbit import OrbitWorld, camera_c2w, move_camera, velocity_bounds
from worldsmith.worlds.tasks import make_task

ID = re.compile(r"^[0-9a-f]{32}$")
GAP = 2  # px between the model and the simulator in a recording


def png_data_url(frame: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in info.items():
        if isinstance(v, np.ndarray):
            v = np.round(v.astype(float), 2).tolist()
        elif isinstance(v, (np.floating, np.integer, np.bool_)):
            v = v.item()
        out[k] = v
    return out


class PlaySession:
    def __init__(self, model: ServedModel, *, seed: int | None = None, image: np.ndarray | None = None,
                 task: str | None = None, reader: Any = None, max_record: int = 3000, threads: int = 1) -> None:  # fmt: skip
        if not model.playable:
            raise ConfigError(f"{model.name} cannot be played: {model.why_not_playable}")
        if (seed is None) == (image is None):
            raise ConfigError("a play session starts from a simulator seed or from an uploaded image (one of them).")
        if seed is not None and model.world is None:
            raise ConfigError(f"{model.name} has no simulator to start from; upload an image instead.")
        if task is not None and model.camera:
            raise ConfigError(f"{model.name} is a camera model: it has no tasks; leave task empty.")
        if task is not None and seed is None:
            raise ConfigError("a task needs a simulator start (its scene and goal); leave task empty for an image.")
        self.id = uuid.uuid4().hex
        self.model, self.seed, self.image, self.max_record = model, seed, image, max_record
        self.task = make_task(task) if task else None
        self.reader = reader
        self.created = self.last_active = time.monotonic()
        self.connected = False
        self.steps = 0
        self.closed = False
        self.record_model: list[np.ndarray] = []
        self.record_sim: list[np.ndarray] = []
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"play-{self.id[:8]}", initializer=torch.set_num_threads,
                                           initargs=(threads,))  # fmt: skip
        self.env: BatchedWorldModelEnv | CameraRollout | None = None
        self.sim: ArmWorld | OrbitWorld | None = None
        self.cam: np.ndarray | None = None  # a camera model's camera state (x, y, z, yaw, pitch)
        self.first = self.call(self._start)

    # -- on the session's thread ----------------------------------------------------------------------------------
    def call(self, fn, *args):
        """Run ``fn`` on the session's thread and wait for it (for the API's synchronous parts and tests)."""
        return self.executor.submit(fn, *args).result()

    def _start(self) -> dict[str, Any]:
        if self.model.camera:
            return self._start_camera()
        size = self.model.size
        if self.env is None:
            self.env = BatchedWorldModelEnv(self.model.generator, self.task, reader=self.reader if self.task else None)
        if self.seed is not None:
            if self.sim is None:
                self.sim = ArmWorld(WorldConfig(size=size))
            start = simulator_start(self.seed, self.task, size, world=self.sim)  # leaves the simulator at the start
            sim_frame = start.frame
        else:
            start, sim_frame = Start(0, self.image), None
        frames, infos = self.env.reset(starts=[start])
        self.steps = 0
        with self._lock:
            self.record_model, self.record_sim = [frames[0]], ([sim_frame] if sim_frame is not None else [])
        return self._message("ready", None, frames[0], sim_frame, 0.0, infos[0])

    def _start_camera(self) -> dict[str, Any]:
        """A camera model's start: an orbit scene's first frame and camera, or the uploaded image seen by a camera
        at the model's typical height and pitch above the floor (as named paths start)."""
        gen, size = self.model.generator, self.model.size
        if self.env is None:
            self.env = CameraRollout(gen)
        if self.seed is not None:
            if self.sim is None:
                self.sim = OrbitWorld(WorldConfig(size=size, fps=self.model.fps, views=1))
            frame = sim_frame = self.sim.reset(self.seed)
            K, self.cam = self.sim.K, self.sim.cam.copy()
        else:
            h, w = self.image.shape[:2]
            frame, sim_frame = fit_frames(self.image[None], size, gen.cs, square=True)[0], None
            K = fit_intrinsics(pinhole_intrinsics(50.0, h, w), h, w, size, gen.cs, square=True)
            cfg = gen.model.cfg
            self.cam = np.array([0.0, 0.0, max(cfg.warp_height, 0.0), 0.0, np.deg2rad(cfg.warp_pitch)])
        self.env.reset(frame, K, camera_c2w(self.cam))
        self.steps = 0
        with self._lock:
            self.record_model, self.record_sim = [frame], ([sim_frame] if sim_frame is not None else [])
        return self._message("ready", None, frame, sim_frame, 0.0, {"camera": self.cam})

    def step(self, action: np.ndarray, step_id: int | None = None) -> dict[str, Any]:
        t0 = time.perf_counter()
        if self.model.camera:  # the velocities move the camera; the model draws what it sees from there
            self.cam = move_camera(self.cam, action, self.model.fps, *velocity_bounds())
            frame, info = self.env.step(camera_c2w(self.cam)), {"camera": self.cam}
        else:
            frames, rewards, _, _, infos = self.env.step(action[None])
            frame = frames[0]
            info = infos[0] | ({"reward": float(rewards[0])} if self.task is not None else {})
        sim_frame = self.sim.step(action) if self.sim is not None else None
        self.steps += 1
        with self._lock:
            if len(self.record_model) < self.max_record:
                self.record_model.append(frame)
                if sim_frame is not None:
                    self.record_sim.append(sim_frame)
        return self._message("frame", step_id, frame, sim_frame, (time.perf_counter() - t0) * 1000, info)

    def reset(self) -> dict[str, Any]:
        return self._start()

    def _message(self, kind: str, step_id: int | None, frame: np.ndarray, sim: np.ndarray | None, ms: float,
                 info: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        self.last_message = {"type": kind, "id": step_id, "step": self.steps, "frame": png_data_url(frame),
                             "sim": png_data_url(sim) if sim is not None else None, "compute_ms": round(ms, 2),
                             "info": _jsonable(info)}  # fmt: skip
        return self.last_message

    # -- anywhere -------------------------------------------------------------------------------------------------
    def parse_action(self, values: Any) -> np.ndarray:
        a = np.asarray(values, dtype=np.float64) if isinstance(values, list) else None
        if a is None or a.shape != (self.model.play_dim,) or not np.isfinite(a).all():
            raise ConfigError(f"an action is a list of {self.model.play_dim} finite numbers.")
        return a.astype(np.float32)

    def recording(self) -> bytes:
        """The frames so far as mp4: the model, and the simulator to its right when there is one."""
        with self._lock:
            model, sim = list(self.record_model), list(self.record_sim)
        if sim:
            gap = np.full((model[0].shape[0], GAP, 3), 255, np.uint8)
            frames = [np.concatenate([m, gap, s], axis=1) for m, s in zip(model, sim)]
        else:
            frames = model
        return encode_mp4_bytes(np.stack(frames), self.model.fps, crf=12)

    def describe(self) -> dict[str, Any]:
        return {"session": self.id, "model": self.model.name, "seed": self.seed, "size": self.model.size,
                "fps": self.model.fps, "action_dim": self.model.play_dim, "controls": self.model.controls,
                "simulator": self.seed is not None, "task": self.task.name if self.task else None,
                "goal_px": (self.env.starts[0].goal.pixel.tolist() if self.task and self.env.starts[0].goal else None)}  # fmt: skip

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True

        def shut() -> None:
            if self.sim is not None:
                self.sim.close()

        try:
            self.executor.submit(shut).result(timeout=30)
        finally:
            self.executor.shutdown(wait=False)


class Sessions:
    """The open play sessions, at most ``limit``; idle or too old ones are closed by ``reap``."""

    def __init__(self, limit: int, idle_s: float, max_s: float) -> None:
        self.limit, self.idle_s, self.max_s = limit, idle_s, max_s
        self.open: dict[str, PlaySession] = {}
        self._lock = threading.Lock()
        self._reserved = 0

    def reserve(self) -> None:
        """Claim a place (before the slow start), or Busy when every place is taken."""
        with self._lock:
            if len(self.open) + self._reserved >= self.limit:
                raise Busy(f"all {self.limit} play sessions are in use; try again in a moment.", 10)
            self._reserved += 1

    def add(self, session: PlaySession | None) -> None:
        with self._lock:
            self._reserved -= 1
            if session is not None:
                self.open[session.id] = session

    def get(self, sid: str) -> PlaySession | None:
        return self.open.get(sid) if isinstance(sid, str) and ID.match(sid) else None

    def close(self, sid: str) -> bool:
        with self._lock:
            session = self.open.pop(sid, None)
        if session is not None:
            session.close()
        return session is not None

    def reap(self) -> list[str]:
        now = time.monotonic()
        stale = [s.id for s in list(self.open.values())
                 if now - s.last_active > self.idle_s or now - s.created > self.max_s]  # fmt: skip
        for sid in stale:
            self.close(sid)
        return stale

    def close_all(self) -> None:
        for sid in list(self.open):
            self.close(sid)
