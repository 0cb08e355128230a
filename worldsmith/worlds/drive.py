"""drive: an ego car on a two-lane loop road, filmed by N synchronized cameras mounted on it.

Each episode builds a closed road (a stadium of straights and bends, or a wavy loop) with lane markings, other
cars in both lanes (right-hand traffic: the ego lane runs counter-clockwise, oncoming traffic the other way),
parked vehicles, cones and barriers on the shoulders, trees and buildings around. All motion is kinematic
(MuJoCo mocap bodies), so every camera of a frame sees the same state.

Ego model (kinematic bicycle, one Euler step per frame, dt = 1 / fps; the state is the rear-axle point; one
function, ``bicycle_step``, shared by ``DriveWorld.step`` and ``worldsmith.worlds.manoeuvres.integrate``):
    delta = steer * max_steer,  a = throttle * max_accel          (action = (steer, throttle) in [-1, 1]^2)
    v'    = clip(v + a dt, 0, max_speed)
    x'    = x + v' cos(yaw) dt,  y' = y + v' sin(yaw) dt
    yaw'  = yaw + v' tan(delta) / wheelbase dt                    (yaw is continuous, never wrapped)
Ground truth per frame: ``ego`` (4,) = (x, y, yaw, speed); ``vehicles`` (M, 4) likewise for the other cars;
``c2w`` / ``intrinsics`` per view ((V, 4, 4) / (V, 3, 3) when V > 1). Views: front, front_left, front_right,
rear, rear_left, rear_right (the first ``views``; default 3), mounted at the yaws of the rig ``DriveConfig.rig``
(``RIGS``): "wide" (the default) spreads the front cameras out at +-50 degrees; "overlap" puts them at +-30 degrees
so that, with the 60-degree field of view, neighbouring views share half their image (for multi-view consistency).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from worldsmith.errors import ConfigError
from worldsmith.worlds import camera, captions, mjcf, render
from worldsmith.worlds.base import MujocoWorld, WorldConfig
from worldsmith.worlds.road import Road, road_meshes, vehicle_xml

mujoco = render.mujoco

VIEWS = {  # camera name -> yaw on the car (degrees, + = left): the "wide" rig
    "front": 0.0, "front_left": 50.0, "front_right": -50.0, "rear": 180.0, "rear_left": 130.0, "rear_right": -130.0,
}  # fmt: skip
RIGS = {  # rig name -> camera yaws (same names and order as VIEWS)
    "wide": VIEWS,
    "overlap": {"front": 0.0, "front_left": 30.0, "front_right": -30.0, "rear": 180.0, "rear_left": 150.0,
                "rear_right": -150.0},
}  # fmt: skip
OBSTACLES = ("car", "truck", "van", "cone", "barrier")
BEHAVIOURS = ("lane", "mixed")


@dataclass
class DriveConfig:
    lane_width: float = 3.5
    wheelbase: float = 2.7
    max_steer: float = 0.5  # rad at |steer| = 1
    max_accel: float = 4.0  # m/s^2 at |throttle| = 1 (negative throttle brakes)
    max_speed: float = 20.0  # m/s
    cam_height: float = 1.4
    cam_forward: float = 1.5  # metres ahead of the rear axle
    cam_pitch_deg: float = -5.0
    cam_fovy: float = 60.0
    num_same_lane: tuple[int, int] = (0, 2)
    num_oncoming: tuple[int, int] = (1, 3)
    num_obstacles: tuple[int, int] = (3, 6)
    rig: str = "wide"  # camera yaws: a name of RIGS
    # the scripted driver: "lane" follows its lane; "mixed": half the episodes (drawn per episode) free manoeuvres
    # instead, left and right turns of random strength and length, speed changes and stops, on and off the road,
    # so a trajectory-conditioned model sees steering that the road does not predict (right turns included: the
    # loop roads only bend left)
    behaviour: str = "lane"

    def __post_init__(self) -> None:
        if self.rig not in RIGS:
            raise ConfigError(f"unknown drive camera rig {self.rig!r}; choose one of: {', '.join(RIGS)}.")
        if self.behaviour not in BEHAVIOURS:
            raise ConfigError(f"unknown drive behaviour {self.behaviour!r}; choose one of: {', '.join(BEHAVIOURS)}.")


def bicycle_step(ego: np.ndarray, action: np.ndarray, cfg: DriveConfig, dt: float) -> np.ndarray:
    """One Euler step of the kinematic bicycle (module docstring): ego (x, y, yaw, speed) -> the next ego (float64).

    ``action`` = (steer, throttle) is clipped to [-1, 1]; speed stays in [0, cfg.max_speed]."""
    steer, throttle = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
    x, y, yaw, v = ego
    v = float(np.clip(v + throttle * cfg.max_accel * dt, 0.0, cfg.max_speed))
    return np.array([
        x + v * np.cos(yaw) * dt,
        y + v * np.sin(yaw) * dt,
        yaw + v * np.tan(steer * cfg.max_steer) / cfg.wheelbase * dt,
        v,
    ])  # fmt: skip


class DriveWorld(MujocoWorld):
    name = "drive"
    action_dim = 2

    def __init__(self, cfg: WorldConfig | None = None, drive: DriveConfig | None = None) -> None:
        super().__init__(cfg)
        self.dcfg = drive or DriveConfig()
        if self.num_views > len(VIEWS):
            raise ConfigError(
                f"drive has at most {len(VIEWS)} cameras ({', '.join(VIEWS)}); got views={self.cfg.views}."
            )
        self.view_names = list(VIEWS)[: self.num_views]
        self.view_yaws = [RIGS[self.dcfg.rig][name] for name in self.view_names]  # degrees, + = left

    @property
    def num_views(self) -> int:
        return self.cfg.views or 3

    # -- episode construction ----------------------------------------------------------------------------------
    def _build(self, rng: np.random.Generator) -> mjcf.MJCF:
        c = self.dcfg
        self.road = Road.random(rng, c.lane_width)
        mj = mjcf.MJCF("drive", headlight=mjcf.headlight_xml(rng))
        mj.sections.append('<default><geom contype="0" conaffinity="0"/></default>')  # kinematic: no contacts
        sky = np.clip(np.array([0.45, 0.65, 0.95]) * rng.uniform(0.8, 1.1), 0, 1)
        mj.assets.append(mjcf.tag("texture", type="skybox", builtin="gradient", rgb1=sky, rgb2=(0.92, 0.94, 0.98),
                                   width=32, height=32))  # fmt: skip
        mj.assets += mjcf.ground_assets(rng, "ground", repeat=60.0)
        size = self.road.extent + 60.0
        mj.worldbody.append(mjcf.tag("geom", name="ground", type="plane", size=(size, size, size / 4),
                                      material="ground"))  # fmt: skip
        mj.worldbody += mjcf.random_lights(rng, n=(1, 2), height=100.0)
        assets, geoms = road_meshes(self.road, rng)
        mj.assets += assets
        mj.worldbody += geoms + self._scenery(rng)
        pitch = np.deg2rad(c.cam_pitch_deg)
        cams = "".join(  # the rig rides on the ego car, a mocap body moved by the bicycle model
            mjcf.tag("camera", name=name, pos=(c.cam_forward, 0, c.cam_height), fovy=c.cam_fovy,
                      quat=camera.mat_to_quat(camera.yaw_pitch_matrix(np.deg2rad(yaw), pitch)))  # fmt: skip
            for name, yaw in zip(self.view_names, self.view_yaws)
        )
        mj.worldbody.append(mjcf.tag("body", cams, name="ego", mocap="true"))
        self._ego_s0 = rng.uniform(0, self.road.length)
        self.ego_speed0, self.cruise = rng.uniform(5.0, 10.0), rng.uniform(7.0, 13.0)
        colors = mjcf.distinct_colors(rng, len(mjcf.COLORS))
        mj.worldbody += self._traffic(rng, colors) + self._obstacles(rng, colors)
        return mj

    def _traffic(self, rng: np.random.Generator, colors: list[str]) -> list[str]:
        """Cars ahead in the ego lane (lane +1) and oncoming (lane -1): mocap bodies ``veh{i}``."""
        c, bodies, self.vehicles = self.dcfg, [], []
        n_same = int(rng.integers(c.num_same_lane[0], c.num_same_lane[1] + 1))
        n_oncoming = int(rng.integers(c.num_oncoming[0], c.num_oncoming[1] + 1))
        s = self._ego_s0
        for i in range(n_same + n_oncoming):
            same = i < n_same
            s = s + rng.uniform(15, 40) if same else self._ego_s0 + rng.uniform(20, 120)
            kind = ("car", "car", "van", "truck")[int(rng.integers(4))]
            speed = rng.uniform(0.5, 0.9) * self.cruise if same else rng.uniform(6.0, 12.0)
            color = colors.pop()
            self.vehicles.append({"kind": kind, "color": color, "lane": 1 if same else -1, "s": s, "v": speed})
            geoms = vehicle_xml(kind, mjcf.COLORS[color], f"veh{i}")
            bodies.append(mjcf.tag("body", geoms, name=f"veh{i}", mocap="true"))
        return bodies

    def _obstacles(self, rng: np.random.Generator, colors: list[str]) -> list[str]:
        """Parked vehicles, cones and barriers on the shoulders ahead (bodies ``obs{i}``), at least 8 m apart."""
        c, bodies, self.obstacles = self.dcfg, [], []
        for _ in range(int(rng.integers(c.num_obstacles[0], c.num_obstacles[1] + 1))):
            kind = OBSTACLES[int(rng.integers(len(OBSTACLES)))]
            side = 1 if rng.random() < 0.5 else -1  # +1: right of the ego lane (outer shoulder), -1: left
            s = self._ego_s0 + rng.uniform(15, 150)
            if any(abs(s - o["s"]) < 8.0 for o in self.obstacles):
                continue
            x, y, heading = self.road.point(s, -side * (c.lane_width + 1.8))
            color = {"cone": "orange", "barrier": "gray"}.get(kind) or colors.pop()
            yaw = heading + (rng.uniform(-0.1, 0.1) if kind != "barrier" else 0.0)
            name = f"obs{len(self.obstacles)}"
            geoms = vehicle_xml(kind, mjcf.COLORS[color], name)
            quat = (np.cos(yaw / 2), 0, 0, np.sin(yaw / 2))
            bodies.append(mjcf.tag("body", geoms, name=name, pos=(x, y, 0), quat=quat))
            self.obstacles.append({"kind": kind, "color": color, "side": "right" if side > 0 else "left", "xy": [x, y],
                                   "s": s})  # fmt: skip
        return bodies

    def _scenery(self, rng: np.random.Generator) -> list[str]:
        """Trees and buildings beside the road (never on it)."""
        out = []
        for _ in range(int(rng.integers(15, 30))):
            s, off = rng.uniform(0, self.road.length), rng.choice([-1, 1]) * rng.uniform(9, 25)
            x, y, _ = self.road.point(s, off)
            if self.road.distance(np.array([x, y])) < 8.0:
                continue
            if rng.random() < 0.7:  # a tree: trunk and crown
                r, h = rng.uniform(1.5, 3.0), rng.uniform(3.0, 6.0)
                green = (*(np.array([0.1, 0.4, 0.1]) * rng.uniform(0.7, 1.3)), 1)
                bark = (0.35, 0.22, 0.1, 1)
                out.append(mjcf.tag("geom", type="cylinder", pos=(x, y, h / 2), size=(0.3, h / 2), rgba=bark))
                out.append(mjcf.tag("geom", type="sphere", pos=(x, y, h), size=(r,), rgba=green))
            else:  # a building
                size = rng.uniform([3, 3, 3], [8, 8, 12])
                rgba = (*mjcf.random_muted_rgb(rng, 0.3, 0.9), 1)
                out.append(mjcf.tag("geom", type="box", pos=(x, y, size[2]), size=size, rgba=rgba,
                                     euler=(0, 0, rng.uniform(0, 180))))  # fmt: skip
        return out

    # -- environment -------------------------------------------------------------------------------------------
    def reset(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        self._load(self._build(rng).compile())
        c = self.dcfg
        x, y, yaw = self.road.point(self._ego_s0, -c.lane_width / 2)
        self.ego = np.array([x, y, yaw, self.ego_speed0])
        self.frame_index = 0
        self.K = render.intrinsics(c.cam_fovy, self.cfg.size, self.cfg.size)
        self.history, self.vehicle_history = [], []
        return self._update()

    def step(self, action: np.ndarray) -> np.ndarray:
        dt = 1.0 / self.cfg.fps
        self.ego = bicycle_step(self.ego, action, self.dcfg, dt)
        self._move_traffic(dt)
        self.frame_index += 1
        return self._update()

    def _move_traffic(self, dt: float) -> None:
        """Other cars follow their lane at their speed, slowing to keep a gap to whoever is ahead (ego included)."""
        ego_s = self.road.project(self.ego[:2])
        for lane in (1, -1):
            cars = [veh for veh in self.vehicles if veh["lane"] == lane]
            ahead_of = [(veh["s"] * lane, veh) for veh in cars]
            others = [s for s, _ in ahead_of] + ([ego_s] if lane == 1 else [])
            for s, veh in ahead_of:
                gaps = [(o - s) % self.road.length for o in others if o != s]
                gap = min(gaps, default=np.inf)
                v = min(veh["v"], max(0.0, (gap - 10.0) / 1.5))
                veh["s"] += lane * v * dt
                veh["speed"] = v

    def _update(self) -> np.ndarray:
        d, c = self.data, self.dcfg
        d.mocap_pos[0] = [self.ego[0], self.ego[1], 0.0]
        d.mocap_quat[0] = [np.cos(self.ego[2] / 2), 0, 0, np.sin(self.ego[2] / 2)]
        states = []
        for i, veh in enumerate(self.vehicles):
            x, y, h = self.road.point(veh["s"], -veh["lane"] * c.lane_width / 2)
            h = h if veh["lane"] == 1 else h + np.pi
            d.mocap_pos[i + 1] = [x, y, 0.0]
            d.mocap_quat[i + 1] = [np.cos(h / 2), 0, 0, np.sin(h / 2)]
            states.append([x, y, h, veh.get("speed", veh["v"])])
        mujoco.mj_kinematics(self.model, d)
        mujoco.mj_camlight(self.model, d)
        self._views = [self._render(k) for k in range(self.num_views)]
        self.history.append(self.ego.copy())
        self.vehicle_history.append(np.array(states, dtype=np.float64).reshape(-1, 4))
        return self._views[0]

    def render_views(self) -> list[np.ndarray]:
        return list(self._views)

    def truth(self) -> dict[str, np.ndarray]:
        c2w = np.stack([render.camera_c2w(self.data, k) for k in range(self.num_views)])
        K = np.repeat(self.K[None], self.num_views, 0)
        one = self.num_views == 1
        return {
            "ego": self.ego.astype(np.float32),
            "vehicles": self.vehicle_history[-1].astype(np.float32),
            "c2w": (c2w[0] if one else c2w).astype(np.float32),
            "intrinsics": (K[0] if one else K).astype(np.float32),
        }

    # -- policy ------------------------------------------------------------------------------------------------
    def policy(self, rng: np.random.Generator):
        """Pure pursuit on the ego lane with a slowly wandering lateral offset; cruise control that slows for
        bends and keeps a gap to the car ahead; small noise on both commands. With ``behaviour="mixed"`` half the
        episodes drive ``free_policy`` instead."""
        c = self.dcfg
        if c.behaviour == "mixed" and rng.random() < 0.5:
            return self.free_policy(rng)
        state = {"offset": 0.0, "steer_noise": 0.0}

        def act(t: int) -> np.ndarray:
            x, y, yaw, v = self.ego
            s = self.road.project(self.ego[:2])
            state["offset"] = float(np.clip(0.95 * state["offset"] + rng.normal(0, 0.08), -0.5, 0.5))
            look = float(np.clip(0.8 * v + 4.0, 5.0, 20.0))
            tx, ty, _ = self.road.point(s + look, -c.lane_width / 2 + state["offset"])
            alpha = np.arctan2(ty - y, tx - x) - yaw
            delta = np.arctan2(2.0 * c.wheelbase * np.sin(alpha), look)
            state["steer_noise"] = 0.7 * state["steer_noise"] + rng.normal(0, 0.02)
            steer = delta / c.max_steer + state["steer_noise"]
            target = min(self.cruise, np.sqrt(3.0 / max(self.road.curvature(s + look), 1e-4)))
            for veh in self.vehicles:
                gap = (veh["s"] - s) % self.road.length
                if veh["lane"] == 1 and gap < 60.0:
                    target = min(target, veh.get("speed", veh["v"]) + (gap - 14.0) / 2.0)
            throttle = 0.6 * (max(target, 0.0) - v) + rng.normal(0, 0.05)
            return np.clip([steer, throttle], -1.0, 1.0).astype(np.float32)

        return act

    def free_policy(self, rng: np.random.Generator):
        """Free manoeuvres, segment after segment (4-12 frames each): a steer target uniform in [-0.8, 0.8] (a
        third of the segments straight), approached at 30 % a frame; a target speed in [3, 13] m/s (one segment
        in eight brakes to a stop) held by the cruise controller; small noise on both commands."""
        state = {"left": 0, "steer": 0.0, "target_steer": 0.0, "speed": float(self.ego[3])}

        def act(t: int) -> np.ndarray:
            if state["left"] <= 0:
                state["left"] = int(rng.integers(4, 13))
                state["target_steer"] = 0.0 if rng.random() < 1 / 3 else float(rng.uniform(-0.8, 0.8))
                state["speed"] = 0.0 if rng.random() < 1 / 8 else float(rng.uniform(3.0, 13.0))
            state["left"] -= 1
            state["steer"] += 0.3 * (state["target_steer"] - state["steer"])
            steer = state["steer"] + rng.normal(0, 0.02)
            throttle = 0.6 * (state["speed"] - self.ego[3]) + rng.normal(0, 0.05)
            return np.clip([steer, throttle], -1.0, 1.0).astype(np.float32)

        return act

    # -- captions ----------------------------------------------------------------------------------------------
    def caption(self) -> str:
        ego = np.stack(self.history)  # (T, 4)
        turn = ego[-1, 2] - ego[0, 2]
        road = f"a road curving to the {'left' if turn > 0 else 'right'}"
        road = "a straight road" if abs(turn) < np.deg2rad(10) else road
        mean_v = ego[:, 3].mean()
        verb = "drives slowly" if mean_v < 6 else ("drives fast" if mean_v > 11 else "drives at a steady speed")
        if ego[-1, 3] - ego[0, 3] > 2:
            verb = "speeds up"
        elif ego[-1, 3] - ego[0, 3] < -2:
            verb = "slows down"
        text = f"the ego car {verb} along {road}"
        lead = self.lead_vehicles()
        if lead:
            text += " behind " + captions.join_phrases([captions.with_article(self._desc(self.vehicles[i])) for i in lead])
        cars = np.stack(self.vehicle_history)[:, :, :2]  # (T, M, 2)
        passed = [("oncoming " + self._desc(self.vehicles[i]), "") for i in self._passed(cars, 12.0)]
        obs_xy = np.array([o["xy"] for o in self.obstacles]).reshape(1, -1, 2).repeat(len(ego), 0)
        for i in self._passed(obs_xy, 12.0):
            o = self.obstacles[i]
            parked = "parked " if o["kind"] in ("car", "truck", "van") else ""
            passed.append((parked + self._desc(o), f" on the {o['side']}"))
        passes = [f"{captions.count_phrase(n, noun)}{where}" for (noun, where), n in Counter(passed).items()]
        if passes:
            text += ", passing " + captions.join_phrases(passes)
        return captions.sentence(text)

    @staticmethod
    def _desc(thing: dict) -> str:
        named = {"cone": "traffic cone", "barrier": "concrete barrier"}
        return named.get(thing["kind"], f"{thing['color']} {thing['kind']}")

    def _relative(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (T, M, 2) in the ego frame over the episode: (ahead, left) each (T, M)."""
        ego = np.stack(self.history)
        d = xy - ego[:, None, :2]
        c, s = np.cos(ego[:, 2])[:, None], np.sin(ego[:, 2])[:, None]
        return d[..., 0] * c + d[..., 1] * s, -d[..., 0] * s + d[..., 1] * c

    def lead_vehicles(self) -> list[int]:
        """Ego-lane cars that stay ahead within 40 m for the whole episode."""
        if not self.vehicles:
            return []
        ahead, left = self._relative(np.stack(self.vehicle_history)[:, :, :2])
        ok = ((ahead > 0) & (ahead < 40) & (np.abs(left) < 2.5)).all(axis=0)
        return [i for i in np.flatnonzero(ok) if self.vehicles[i]["lane"] == 1]

    def _passed(self, xy: np.ndarray, max_side: float) -> list[int]:
        """Things that go from ahead of the ego to beside or behind it, within ``max_side`` metres sideways."""
        if xy.shape[1] == 0:
            return []
        ahead, left = self._relative(xy)
        near = np.abs(left) < max_side
        return [int(i) for i in range(xy.shape[1]) if ahead[0, i] > 0 and (near[:, i] & (ahead[:, i] < 0)).any()]

    def episode_meta(self) -> dict:
        return {
            "world": self.name,
            "road": self.road.kind,
            "views": self.view_names,
            "rig": self.dcfg.rig,
            "behaviour": self.dcfg.behaviour,
            "vehicles": [{k: v[k] for k in ("kind", "color", "lane")} for v in self.vehicles],
            "obstacles": [{k: o[k] for k in ("kind", "color", "side")} for o in self.obstacles],
        }
