"""bounce: rigid objects falling, rolling and colliding in a walled arena; one agent object is pushed by a force.

Each episode has 3-6 objects of random shape, size and colour (all colours distinct, so "the red ball" names one
object); some start in the air and fall. The action is a 3-D force on the agent, in units of the agent's weight
times ``BounceConfig.force_gain``. Ground truth per frame: every object's position + quaternion (``states``,
(N, 7)) and the pixel of its centre in the main camera (``pixels``, (N, 2)), plus the static camera's
``intrinsics`` and ``c2w`` ((V, 3, 3) / (V, 4, 4) with ``views`` > 1: extra cameras spaced evenly around the
arena). Physics steps at <= 1 ms with a timestep that divides the frame period exactly, so a free fall
follows z0 - g t^2 / 2 to within 1 % after 0.1 s (semi-implicit Euler lags by one step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldsmith.worlds import camera, mjcf, render
from worldsmith.worlds.base import MujocoWorld, WorldConfig
from worldsmith.worlds.captions import direction_words, join_phrases, sentence

mujoco = render.mujoco

MOVE_THRESHOLD = 0.02  # metres: an object that gets this far from its start "moved" (captions say so)


@dataclass
class BounceConfig:
    max_timestep: float = 0.001  # seconds; the timestep is the frame period divided into whole steps below this
    force_gain: float = 1.5  # |action| = 1 pushes with this many times the agent's weight
    arena: tuple[float, float] = (0.35, 0.5)  # half size of the square arena (m)
    num_objects: tuple[int, int] = (3, 6)
    object_scale: tuple[float, float] = (0.045, 0.08)  # characteristic half size (m)
    friction: float = 0.5
    contact_check_steps: int = 5  # physics steps between contact checks (collision events for captions)


class BounceWorld(MujocoWorld):
    name = "bounce"
    action_dim = 3

    def __init__(self, cfg: WorldConfig | None = None, bounce: BounceConfig | None = None) -> None:
        super().__init__(cfg)
        self.bcfg = bounce or BounceConfig()
        self.objects: list[mjcf.ObjectSpec] = []

    # -- episode construction ----------------------------------------------------------------------------------
    def _build(self, rng: np.random.Generator) -> mjcf.MJCF:
        c, randomize = self.bcfg, self.cfg.randomize
        half = float(rng.uniform(*c.arena)) if randomize else float(np.mean(c.arena))
        n = int(rng.integers(c.num_objects[0], c.num_objects[1] + 1))
        colors = mjcf.distinct_colors(rng, n) if randomize else list(mjcf.COLORS)[:n]
        shapes = tuple(mjcf.SHAPES) if randomize else ("ball", "cube")
        self.objects = [
            mjcf.random_object(rng, f"obj{i}", shapes=("ball", "cube") if i == 0 else shapes, scale=c.object_scale,
                                color=colors[i])  # fmt: skip
            for i in range(n)
        ]
        self.half = half
        n_steps = int(np.ceil(1.0 / (self.cfg.fps * c.max_timestep)))
        self.substeps = n_steps
        mj = mjcf.MJCF("bounce", timestep=1.0 / (self.cfg.fps * n_steps), integrator="Euler",
                        headlight=mjcf.headlight_xml(rng if randomize else None))  # fmt: skip
        mj.sections.append(
            f'<default><geom friction="{c.friction} 0.005 0.0001" condim="6" solref="0.004 0.4"/></default>'
        )
        mj.assets += mjcf.ground_assets(rng, "floor", repeat=2.0 * half)
        wall_rgb = mjcf.random_muted_rgb(rng, 0.3, 0.9)
        mj.assets.append(f'<material name="wall" rgba="{mjcf.fmt(wall_rgb)} 1"/>')
        mj.worldbody.append(mjcf.tag("geom", name="floor", type="plane", size=[half + 1.5] * 3, material="floor"))
        mj.worldbody += mjcf.square_walls(half, 0.02, float(rng.uniform(0.05, 0.1)), "wall")
        mj.worldbody += mjcf.random_lights(rng) if randomize else []
        for obj, (pos, quat) in zip(self.objects, self._placements(rng)):
            mj.assets.append(obj.material_xml(rng if randomize else None))
            mj.worldbody.append(obj.body_xml(pos, quat=quat))
        # the main camera behind the arena looking down at its centre, slightly jittered; extra views around it
        elev = np.deg2rad(rng.uniform(40, 55) if randomize else 48.0)
        dist = 3.3 * half
        for k in range(self.num_views):
            azim = np.deg2rad(-90 + 360 * k / self.num_views + (rng.uniform(-12, 12) if randomize else 0.0))
            center = np.array([0.1 * half * np.cos(azim + np.pi), 0.1 * half * np.sin(azim + np.pi), 0.1])
            pos = center + dist * np.array([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev)])
            if randomize:
                pos, target, fovy = camera.jitter_camera(rng, pos, center, pos_std=0.02 * dist, target_std=0.02)
            else:
                target, fovy = center, 45.0
            mj.worldbody.append(mjcf.camera_xml(f"cam{k}", pos, target, fovy))
        return mj

    def _placements(self, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
        """Non-overlapping (in the plane) start poses; the agent and about half the others start on the floor."""
        placed: list[tuple[np.ndarray, float]] = []
        out = []
        for i, obj in enumerate(self.objects):
            r = obj.radius
            for _ in range(200):
                xy = rng.uniform(-self.half + r + 0.01, self.half - r - 0.01, size=2)
                if all(np.linalg.norm(xy - q) > r + rq + 0.02 for q, rq in placed):
                    break
            placed.append((xy, r))
            airborne = i > 0 and rng.random() < 0.5
            z = obj.half_height + (rng.uniform(0.1, 0.35) if airborne else 0.001)
            yaw = rng.uniform(0, 2 * np.pi)
            out.append((np.array([xy[0], xy[1], z]), np.array([np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)])))
        return out

    # -- environment -------------------------------------------------------------------------------------------
    def reset(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        self._load(self._build(rng).compile())
        m = self.model
        self._body = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, o.name) for o in self.objects])
        self._qadr = np.array([m.jnt_qposadr[m.body_jntadr[b]] for b in self._body])
        self._vadr = np.array([m.jnt_dofadr[m.body_jntadr[b]] for b in self._body])
        geom_owner = np.full(m.ngeom, -1)
        geom_owner[[m.body_geomadr[b] for b in self._body]] = np.arange(len(self.objects))
        self._geom_owner = geom_owner
        self._agent_weight = float(m.body_subtreemass[self._body[0]]) * 9.81
        mujoco.mj_forward(m, self.data)
        views = range(self.num_views)
        self.Ks = np.stack([render.camera_K(m, k, self.cfg.size, self.cfg.size) for k in views])  # (V, 3, 3)
        self.c2ws = np.stack([render.camera_c2w(self.data, k) for k in views])  # (V, 4, 4), static cameras
        self.K, self.c2w = self.Ks[0], self.c2ws[0]
        self.frame_index = 0
        self._touching: set[tuple[int, int]] = set()
        self.events: list[tuple[int, int, int]] = []  # (frame, hitter, hit): onsets of object-object contacts
        self.history = [self._states()]
        self._views = [self._render(k) for k in range(self.num_views)]
        return self._views[0]

    def step(self, action: np.ndarray) -> np.ndarray:
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(3), -1.0, 1.0)
        self.data.xfrc_applied[self._body[0], :3] = a * self.bcfg.force_gain * self._agent_weight
        self.frame_index += 1
        k = max(1, self.bcfg.contact_check_steps)
        done = 0
        while done < self.substeps:
            n = min(k, self.substeps - done)
            mujoco.mj_step(self.model, self.data, nstep=n)
            done += n
            self._check_contacts()
        self.history.append(self._states())
        self._views = [self._render(k) for k in range(self.num_views)]
        return self._views[0]

    def _check_contacts(self) -> None:
        """Record the onsets of object-object contacts (who hit whom) for the caption."""
        d, now = self.data, set()
        if d.ncon:
            owners = self._geom_owner[d.contact.geom[: d.ncon]]  # (ncon, 2) object index or -1
            both = owners[(owners >= 0).all(axis=1)]
            if len(both):
                now = set(map(tuple, np.sort(both, axis=1).tolist()))
        for i, j in sorted(now - self._touching):
            speed = [np.linalg.norm(d.qvel[self._vadr[o] : self._vadr[o] + 3]) for o in (i, j)]
            hitter, hit = (i, j) if speed[0] >= speed[1] else (j, i)
            self.events.append((self.frame_index, int(hitter), int(hit)))
        self._touching = now

    def _states(self) -> np.ndarray:
        q = self.data.qpos
        return np.stack([q[a : a + 7] for a in self._qadr]).astype(np.float64)  # (N, 7) pos + quat (w x y z)

    def render_views(self) -> list[np.ndarray]:
        return list(self._views)

    def truth(self) -> dict[str, np.ndarray]:
        states = self.history[-1]
        uv, _ = render.project(states[:, :3], self.K, self.c2w)
        return {
            "states": states.astype(np.float32),  # (N, 7)
            "pixels": uv.astype(np.float32),  # (N, 2)
            "intrinsics": (self.K if self.num_views == 1 else self.Ks).astype(np.float32),
            "c2w": (self.c2w if self.num_views == 1 else self.c2ws).astype(np.float32),
        }

    def set_object_pose(self, index: int, pos, quat=(1.0, 0.0, 0.0, 0.0), vel=(0.0, 0.0, 0.0)) -> None:
        """Teleport object ``index`` (experiments, tests); the history restarts from the new state."""
        a, v = self._qadr[index], self._vadr[index]
        self.data.qpos[a : a + 7] = [*pos, *quat]
        self.data.qvel[v : v + 6] = [*vel, 0.0, 0.0, 0.0]
        mujoco.mj_forward(self.model, self.data)
        self.history = [self._states()]
        self._views = [self._render(k) for k in range(self.num_views)]

    # -- policy ------------------------------------------------------------------------------------------------
    def policy(self, rng: np.random.Generator):
        """Push the agent toward a randomly chosen object at a cruising speed, with smooth noise and rare hops."""
        speed = rng.uniform(0.25, 0.6)
        rolls = self.objects[0].shape in mjcf.ROLLING_SHAPES
        state = {"target": 1 + int(rng.integers(len(self.objects) - 1)), "until": 0, "noise": np.zeros(2)}

        def act(t: int) -> np.ndarray:
            if t >= state["until"]:
                state["target"] = 1 + int(rng.integers(len(self.objects) - 1))
                state["until"] = t + int(rng.integers(6, 20))
            s = self.history[-1]
            to = s[state["target"], :2] - s[0, :2]
            u = to / max(np.linalg.norm(to), 1e-6)
            v = self.data.qvel[self._vadr[0] : self._vadr[0] + 2]
            state["noise"] = 0.8 * state["noise"] + rng.normal(0.0, 0.15, size=2)
            push = 2.0 * (speed * u - v) / 9.81 / self.bcfg.force_gain + state["noise"]
            if not rolls:  # overcome sliding friction
                push += u * self.bcfg.friction / self.bcfg.force_gain
            up = 1.0 if rng.random() < 0.03 else 0.0
            return np.clip(np.array([push[0], push[1], up]), -1.0, 1.0).astype(np.float32)

        return act

    # -- captions ----------------------------------------------------------------------------------------------
    def moved(self) -> np.ndarray:
        """bool (N,): which objects got at least MOVE_THRESHOLD metres from where they started."""
        h = np.stack(self.history)[:, :, :3]  # (T, N, 3)
        return np.linalg.norm(h - h[:1], axis=-1).max(axis=0) > MOVE_THRESHOLD

    def caption(self) -> str:
        h = np.stack(self.history)  # (T, N, 7)
        pos = h[:, :, :3]
        moved = self.moved()
        first_move = np.argmax(np.linalg.norm(pos - pos[:1], axis=-1) > MOVE_THRESHOLD, axis=0)  # (N,) frame index
        right, away = self.c2w[:3, 0], self.c2w[:3, 2]
        sentences = []
        for i in sorted(np.flatnonzero(moved), key=lambda i: (first_move[i], i)):
            sentences.append(sentence(self._motion_phrase(i, pos[:, i], h[:, i, 3:], first_move[i], right, away)))
        still = [f"the {self.objects[i].description}" for i in np.flatnonzero(~moved)]
        if still:
            sentences.append(sentence(f"{join_phrases(still)} {'stays' if len(still) == 1 else 'stay'} still"))
        return " ".join(sentences)

    def _motion_phrase(self, i: int, p: np.ndarray, quat: np.ndarray, start: int, right, away) -> str:
        obj = self.objects[i]
        name = f"the {obj.description}"
        airborne = p[0, 2] > obj.half_height + 0.03
        land = int(np.argmax(p[:, 2] < p[0, 2] - 0.5 * (p[0, 2] - obj.half_height))) if airborne else 0
        shift = p[-1, :2] - p[land, :2]
        where = direction_words(shift, right, away) if np.linalg.norm(shift) > MOVE_THRESHOLD else ""
        tumbled = abs(float(np.dot(quat[0], quat[-1]))) < np.cos(np.deg2rad(30))
        verb = "rolls" if obj.shape in mjcf.ROLLING_SHAPES else ("tumbles" if tumbled else "slides")
        if airborne:
            below = self.resting_on(i)
            onto = "the floor" if below is None else f"the {self.objects[below].description}"
            base = f"{name} falls onto {onto}"
            return f"{base} and {verb} {where}" if where else base
        motion = f"{verb} {where}" if where else "moves back and forth"
        if i == 0:
            return f"{name} is pushed and {motion}"
        hits = [e for e in self.events if e[2] == i and e[0] <= start + 1]
        if hits:
            return f"the {self.objects[hits[0][1]].description} hits {name}, which {motion}"
        return f"{name} {motion}"

    def resting_on(self, i: int) -> int | None:
        """The object that object ``i`` now lies on (a contact with a near-vertical normal, ``i`` on top)."""
        d = self.data
        for c in d.contact[: d.ncon] if d.ncon else []:
            a, b = self._geom_owner[c.geom[0]], self._geom_owner[c.geom[1]]
            if i in (a, b) and a >= 0 and b >= 0 and abs(c.frame[2]) > 0.7:
                other = int(b if a == i else a)
                if self.history[-1][i, 2] > self.history[-1][other, 2]:
                    return other
        return None

    def episode_meta(self) -> dict:
        return {
            "world": self.name,
            "objects": [
                {"name": o.name, "shape": o.shape, "color": o.color, "size": [round(s, 4) for s in o.size],
                 "agent": i == 0}  # fmt: skip
                for i, o in enumerate(self.objects)
            ],
            "agent": self.objects[0].description if self.objects else "",
            "substeps": self.substeps,
            "views": ["main"] + [f"azim{360 * k // self.num_views:+d}" for k in range(1, self.num_views)],
        }
