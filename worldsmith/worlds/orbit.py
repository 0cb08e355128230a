"""orbit: a static 3-D scene filmed by a camera moving along a smooth trajectory (orbit, dolly, pan or crane).

Each episode builds a room (textured floor and walls, random lights) with 4-8 random objects, and picks a camera
move with cosine easing: ``s(t) = (1 - cos(pi t / D)) / 2`` goes 0 -> 1 over ``D`` seconds and then back
(ping-pong), so any episode length gives smooth motion. The camera state is (x, y, z, yaw, pitch) (no roll); the
action is its velocity ``(v_forward, v_right, v_up, yaw_rate, pitch_rate)`` in m/s and rad/s, forward/right taken
in the camera's heading (horizontal) frame, integrated with one Euler step per frame. The scripted policy sends
the velocity that reaches the trajectory's next pose exactly.

Ground truth per frame: ``intrinsics`` (3, 3) and OpenCV ``c2w`` (4, 4) of the camera ((V, 3, 3) / (V, 4, 4)
with ``views`` > 1: a rig of cameras turned 40 degrees apart), the object centres ``states`` (N, 3) and their
pixels in the main view ``pixels`` (N, 2). With ``first_identity=True`` every pose is re-expressed relative to the
first frame's main camera (``c2w[0] = I``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldsmith.errors import ConfigError
from worldsmith.worlds import camera, captions, mjcf, render
from worldsmith.worlds.base import MujocoWorld, WorldConfig

mujoco = render.mujoco

MOVES = ("orbit", "dolly", "pan", "crane")


def velocity_bounds(c: "OrbitConfig | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """The action's bounds: |v| <= max_speed per axis, |yaw_rate|, |pitch_rate| <= max_rate."""
    c = c or OrbitConfig()
    high = np.array([c.max_speed] * 3 + [c.max_rate] * 2, dtype=np.float32)
    return -high, high


def move_camera(cam: np.ndarray, action: np.ndarray, fps: float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The camera state (x, y, z, yaw, pitch) one frame after ``cam`` under ``action`` (the velocity, clipped to
    [lo, hi]; see the module docstring): what ``OrbitWorld.step`` does, and play sessions without the simulator."""
    v = np.clip(np.asarray(action, dtype=np.float64).reshape(5), lo, hi)
    dt, out = 1.0 / fps, np.asarray(cam, dtype=np.float64).copy()
    fwd, right = np.array([np.cos(out[3]), np.sin(out[3]), 0.0]), np.array([np.sin(out[3]), -np.cos(out[3]), 0.0])
    out[:3] += dt * (v[0] * fwd + v[1] * right + v[2] * np.array([0.0, 0.0, 1.0]))
    out[3] += dt * v[3]
    out[4] = np.clip(out[4] + dt * v[4], -np.deg2rad(89), np.deg2rad(89))
    return out


def camera_c2w(cam: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world (4, 4) of a camera state (x, y, z, yaw, pitch), as the simulator renders it."""
    c2w = np.eye(4)
    c2w[:3, :3] = camera.yaw_pitch_matrix(cam[3], cam[4]) @ np.diag([1.0, -1.0, -1.0])  # MuJoCo -> OpenCV axes
    c2w[:3, 3] = cam[:3]
    return c2w


@dataclass
class OrbitConfig:
    num_objects: tuple[int, int] = (4, 8)
    object_scale: tuple[float, float] = (0.1, 0.22)
    room: float = 4.0  # half size of the room (m)
    duration: tuple[float, float] = (2.5, 5.0)  # seconds for one leg of the move
    max_speed: float = 4.0  # |v| bound per axis (m/s)
    max_rate: float = 3.0  # |yaw_rate|, |pitch_rate| bound (rad/s)
    view_step_deg: float = 40.0  # yaw between rig cameras


class OrbitWorld(MujocoWorld):
    name = "orbit"
    action_dim = 5

    def __init__(
        self, cfg: WorldConfig | None = None, orbit: OrbitConfig | None = None, *, first_identity: bool = False
    ) -> None:
        super().__init__(cfg)
        self.ocfg = orbit or OrbitConfig()
        self.first_identity = first_identity

    def action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return velocity_bounds(self.ocfg)

    # -- episode construction ----------------------------------------------------------------------------------
    def _build(self, rng: np.random.Generator) -> mjcf.MJCF:
        c, rand = self.ocfg, self.cfg.randomize
        mj = mjcf.MJCF("orbit", headlight=mjcf.headlight_xml(rng if rand else None))
        self.ground_kind = list(mjcf.GROUND_KINDS)[int(rng.integers(len(mjcf.GROUND_KINDS)))] if rand else "checker"
        mj.assets += mjcf.ground_assets(rng, "floor", repeat=2.0, kind=self.ground_kind)
        mj.assets += mjcf.ground_assets(rng, "wall", repeat=1.0)
        floor = mjcf.tag("geom", name="floor", type="plane", size=(c.room, c.room, c.room / 2), material="floor")
        mj.worldbody += [floor, *mjcf.square_walls(c.room, 0.05, 2.5, "wall")]
        default_light = mjcf.tag("light", directional="true", dir=(0, 0.3, -1), castshadow="false")
        mj.worldbody += mjcf.random_lights(rng) if rand else [default_light]
        n = int(rng.integers(c.num_objects[0], c.num_objects[1] + 1))
        colors = mjcf.distinct_colors(rng, n)
        self.objects, placed = [], []
        for i in range(n):
            obj = mjcf.random_object(rng, f"obj{i}", scale=c.object_scale, color=colors[i])
            for _ in range(200):
                xy = rng.uniform(-1.2, 1.2, size=2)
                if all(np.linalg.norm(xy - q) > obj.radius + r + 0.05 for q, r in placed):
                    break
            placed.append((xy, obj.radius))
            yaw = rng.uniform(0, 2 * np.pi)
            mj.assets.append(obj.material_xml(rng if rand else None))
            mj.worldbody.append(obj.body_xml((xy[0], xy[1], obj.half_height), free=False,
                                             quat=(np.cos(yaw / 2), 0, 0, np.sin(yaw / 2))))  # fmt: skip
            self.objects.append(obj)
        self.fovy = float(rng.uniform(40.0, 60.0)) if rand else 50.0
        for k in range(self.num_views):
            mj.worldbody.append(f'<camera name="cam{k}" pos="0 0 1" fovy="{self.fovy:.6g}"/>')
        return mj

    def _trajectory(self, rng: np.random.Generator) -> None:
        """Pick the move: ``self._pose(s)`` gives the camera state (x, y, z, yaw, pitch) at progress s in [0, 1]."""
        self.move = MOVES[int(rng.integers(len(MOVES)))]
        self.target = np.array([*rng.uniform(-0.3, 0.3, size=2), rng.uniform(0.1, 0.3)])
        self.radius = rng.uniform(2.0, 3.0)
        self.azim0 = rng.uniform(0, 2 * np.pi)
        self.elev0 = np.deg2rad(rng.uniform(15, 40))
        self.period = rng.uniform(*self.ocfg.duration)
        sign = 1.0 if rng.random() < 0.5 else -1.0
        self.amount = {
            "orbit": sign * np.deg2rad(rng.uniform(40, 100)),  # azimuth change
            "dolly": rng.uniform(0.5, 0.7) if sign > 0 else rng.uniform(1.2, 1.35),  # radius factor
            "pan": sign * np.deg2rad(rng.uniform(25, 50)),  # yaw change
            "crane": sign * np.deg2rad(rng.uniform(15, 30)),  # elevation change
        }[self.move]

    def _pose(self, s: float) -> np.ndarray:
        azim, elev, radius, pan = self.azim0, self.elev0, self.radius, 0.0
        if self.move == "orbit":
            azim += self.amount * s
        elif self.move == "dolly":
            radius *= 1.0 + (self.amount - 1.0) * s
        elif self.move == "pan":
            pan = self.amount * s
        else:
            elev = np.clip(elev + self.amount * s, np.deg2rad(5), np.deg2rad(75))
        pos = self.target + radius * np.array([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev)])
        d = self.target - pos
        yaw = np.arctan2(d[1], d[0]) + pan
        pitch = np.arctan2(d[2], np.hypot(d[0], d[1]))
        return np.array([*pos, yaw, pitch])

    def progress(self, t: float) -> float:
        return 0.5 - 0.5 * np.cos(np.pi * t / self.period)

    # -- environment -------------------------------------------------------------------------------------------
    def reset(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        self._load(self._build(rng).compile())
        self._trajectory(rng)
        mujoco.mj_forward(self.model, self.data)
        self.K = render.camera_K(self.model, 0, self.cfg.size, self.cfg.size)
        self.rig = np.deg2rad(camera.rig_yaws(self.num_views, self.ocfg.view_step_deg))
        self.frame_index = 0
        self.cam = self._pose(0.0)
        self.history = []
        self.first_c2w = None
        return self._update()

    def step(self, action: np.ndarray) -> np.ndarray:
        self.cam = move_camera(self.cam, action, self.cfg.fps, *self.action_bounds())
        self.frame_index += 1
        return self._update()

    def _update(self) -> np.ndarray:
        """Move the rig to ``self.cam``, render every view, record the truth; return the main view."""
        m = self.model
        for k, dyaw in enumerate(self.rig):
            m.cam_pos[k] = self.cam[:3]
            m.cam_quat[k] = camera.mat_to_quat(camera.yaw_pitch_matrix(self.cam[3] + dyaw, self.cam[4]))
        mujoco.mj_camlight(m, self.data)
        self._views = [self._render(k) for k in range(self.num_views)]
        c2w = np.stack([render.camera_c2w(self.data, k) for k in range(self.num_views)])  # (V, 4, 4)
        if self.first_c2w is None:
            self.first_c2w = c2w[0]
        self.history.append(self.cam.copy())
        self._c2w = np.linalg.inv(self.first_c2w)[None] @ c2w if self.first_identity else c2w
        return self._views[0]

    def render_views(self) -> list[np.ndarray]:
        return list(self._views)

    def truth(self) -> dict[str, np.ndarray]:
        centres = np.array([self.data.geom_xpos[m] for m in self._object_geoms()])  # (N, 3) world frame
        uv, _ = render.project(centres, self.K, self.c2w_world(0))
        if self.first_identity:
            centres = centres @ np.linalg.inv(self.first_c2w)[:3, :3].T + np.linalg.inv(self.first_c2w)[:3, 3]
        one = self.num_views == 1
        return {
            "intrinsics": (self.K if one else np.repeat(self.K[None], self.num_views, 0)).astype(np.float32),
            "c2w": (self._c2w[0] if one else self._c2w).astype(np.float32),
            "states": centres.astype(np.float32),
            "pixels": uv.astype(np.float32),
        }

    def c2w_world(self, view: int = 0) -> np.ndarray:
        """World-frame OpenCV c2w (4, 4) of ``view`` now (whatever ``first_identity`` says)."""
        return render.camera_c2w(self.data, view)

    def render_path(self, seed: int, c2w_rel: np.ndarray) -> tuple[np.ndarray, dict]:
        """Render episode ``seed``'s scene (as ``reset(seed)``) along a commanded camera path (main view only).

        ``c2w_rel`` (T, 4, 4): OpenCV poses relative to the episode's first camera (``worldsmith.worlds.camera_paths``
        makes them); frame i is seen from ``c2w_world(0) @ c2w_rel[i]`` (taken after the reset), roll included.
        Returns uint8 frames (T, S, S, 3) and {"intrinsics": K (3, 3) float32, "c2w": the rendered poses read back
        relative to the first (T, 4, 4) float32, "c2w_world": (T, 4, 4) float64}. Afterwards the camera is left at
        the last pose but ``step``, ``truth`` and ``caption`` still describe the reset state: call ``reset`` next.
        """
        rel = np.asarray(c2w_rel, dtype=np.float64)
        if rel.ndim != 3 or rel.shape[1:] != (4, 4) or len(rel) == 0:
            raise ConfigError(f"render_path needs relative camera poses of shape (T, 4, 4), got {rel.shape}.")
        self.reset(seed)
        first, m = self.c2w_world(0), self.model
        frames, world = [], []
        for pose in rel:
            c2w = first @ pose
            m.cam_pos[0] = c2w[:3, 3]
            m.cam_quat[0] = camera.mat_to_quat(c2w[:3, :3] @ np.diag([1.0, -1.0, -1.0]))  # OpenCV -> MuJoCo axes
            mujoco.mj_camlight(m, self.data)
            frames.append(self._render(0))
            world.append(self.c2w_world(0))
        world = np.stack(world)
        c2w = np.linalg.inv(world[0])[None] @ world
        return np.stack(frames), {"intrinsics": self.K.astype(np.float32), "c2w": c2w.astype(np.float32),
                                  "c2w_world": world}  # fmt: skip

    def _object_geoms(self) -> list[int]:
        return [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, f"{o.name}_geom") for o in self.objects]

    # -- policy ------------------------------------------------------------------------------------------------
    def policy(self, rng: np.random.Generator):
        """Follow the episode's trajectory: the velocity that lands exactly on the next eased pose."""
        dt = 1.0 / self.cfg.fps

        def act(t: int) -> np.ndarray:
            nxt = self._pose(self.progress((t + 1) * dt))
            d = (nxt - self.cam) / dt
            yaw = self.cam[3]
            d[3] = (np.angle(np.exp(1j * (nxt[3] - self.cam[3])))) / dt  # shortest way round
            fwd, right = np.array([np.cos(yaw), np.sin(yaw)]), np.array([np.sin(yaw), -np.cos(yaw)])
            return np.array([d[:2] @ fwd, d[:2] @ right, d[2], d[3], d[4]], dtype=np.float32)

        return act

    # -- captions ----------------------------------------------------------------------------------------------
    def caption(self) -> str:
        h = np.stack(self.history)  # (T, 5) x, y, z, yaw, pitch
        things = captions.join_phrases([captions.with_article(o.description) for o in self.objects])
        floor = captions.with_article(f"{mjcf.GROUND_KINDS[self.ground_kind]} floor")
        motion, back = self._motion_words(h)
        return captions.sentence(f"the camera {motion} a room with {things} on {floor}{', then returns' if back else ''}")

    def _motion_words(self, h: np.ndarray) -> tuple[str, bool]:
        """What the camera did, measured on its recorded states, and whether it came back."""
        rel = h[:, :3] - self.target
        if self.move == "orbit":
            az = np.unwrap(np.arctan2(rel[:, 1], rel[:, 0]))
            v, words = az - az[0], ("orbits to the right around", "orbits to the left around")
        elif self.move == "dolly":
            dist = np.linalg.norm(rel, axis=1)
            v, words = dist[0] - dist, ("moves in toward", "pulls back from")
        elif self.move == "pan":
            v, words = np.unwrap(h[:, 3]) - h[0, 3], ("pans to the left across", "pans to the right across")
        else:
            v, words = h[:, 2] - h[0, 2], ("rises above", "descends toward")
        k = int(np.argmax(np.abs(v)))
        if abs(v[k]) < 1e-3:
            return "looks at", False
        return words[0] if v[k] > 0 else words[1], abs(v[-1]) < 0.7 * abs(v[k])

    def episode_meta(self) -> dict:
        return {
            "world": self.name,
            "move": self.move,
            "first_identity": self.first_identity,
            "objects": [{"name": o.name, "shape": o.shape, "color": o.color} for o in self.objects],
            "views": ["main"] + [f"yaw{np.rad2deg(y):+.0f}" for y in self.rig[1:]],
        }
