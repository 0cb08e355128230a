"""Scripted, noisy arm behaviours that emit the same 7-D gripper-frame delta actions the world takes.

One behaviour per episode, chosen by the policy's rng unless forced:
  reach       move above an object and hover there (nothing moves)
  push        lower the closed gripper behind an object and push it 6-12 cm across the table
  pick_place  grasp an object, lift it, carry it to a free spot on the table, put it down, let go
  stack       the same, but put it down on top of a flat-topped object (cube, block, cylinder)
  explore     random waypoints anywhere in the workspace, some low, with random gripper commands (bumps happen)

A behaviour is a generator of ``Waypoint``s evaluated lazily: each waypoint is computed from the state at the
moment it becomes active (e.g. the place height from where the object really sits between the fingers). The policy
steers the *commanded* gripper pose toward the active waypoint at a capped speed, adds noise, and returns the
action in the gripper frame, clipped to the world's bounds, so the recorded action is exactly the applied one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

from worldsmith.errors import ConfigError
from worldsmith.worlds.arm_control import (
    AZIMUTH, MAX_ROTATION, REACH, Z_RANGE, clamp_workspace, clip_action, mat_to_rotvec, top_down_rotation,
)
from worldsmith.worlds.arm_model import EE_TO_TIP, FLAT_TOPPED, WORKSPACE_ANGLE, WORKSPACE_RADIUS

if TYPE_CHECKING:
    from worldsmith.worlds.arm import ArmWorld

BEHAVIORS = ("reach", "push", "pick_place", "stack", "explore")
_WEIGHTS = (0.15, 0.2, 0.25, 0.25, 0.15)
FAST, DESCEND, SLOW, PUSH = 0.035, 0.03, 0.02, 0.015  # m per frame at 10 fps: free motion, straight down or
# up around an object, lowering onto a support, pushing
REFERENCE_FPS = 10.0  # speeds are per frame at this rate; at higher fps they shrink to keep metres per second
GRIP_RATE = 1.0  # gripper command change per frame: open or close at once, then hold while the fingers move
NOISE_POS, NOISE_ROT = 0.001, 0.01  # per-frame action noise (m, rad), scaled per episode
CLEARANCE = 0.035  # m between the fingertips and the tallest object when moving above the table


@dataclass
class Waypoint:
    pos: np.ndarray  # (3,) target ee position in the world (clamped to the workspace)
    yaw: float  # top-down gripper yaw about world z (rad)
    grip: float  # gripper command target: 0 closed, 1 open
    speed: float = FAST  # max translation per frame (m)
    tol: float = 0.006  # arrival tolerance (m), a few times the action noise
    hold: int = 0  # frames to stay after arriving (e.g. while the fingers close)

    def __post_init__(self) -> None:
        self.pos = clamp_workspace(np.asarray(self.pos, float))


def push_end(p: np.ndarray, rng: np.random.Generator, directions: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """A push of an object at table xy ``p``: unit direction (2,) and distance (m) that keep it in reach.
    ``directions``: candidate unit directions (K, 2) to choose from (default: any)."""
    for _ in range(50):
        if directions is None:
            ang = rng.uniform(-np.pi, np.pi)
            u = np.array([np.cos(ang), np.sin(ang)])
        else:
            u = directions[int(rng.integers(len(directions)))]
        dist = rng.uniform(0.06, 0.12)
        end = p + u * dist
        r, az = np.hypot(*end), np.arctan2(end[1], end[0])
        if REACH[0] + 0.08 < r < REACH[1] - 0.06 and abs(az) < AZIMUTH - 0.5:
            break
    return u, dist


class ScriptedPolicy:
    """``act(t) -> float32 (7,)`` for one episode of ``world``; ``t`` (the frame index) is not needed: the policy
    reads the world's state and remembers its progress, so call it once per frame, in order."""

    def __init__(self, world: ArmWorld, rng: np.random.Generator, behavior: str | None = None, *,
                 target: int | None = None, goal: np.ndarray | None = None) -> None:  # fmt: skip
        """``target``: the object to act on (else random); ``goal``: where it goes, world xy (push, pick_place)
        or the fingertip point (3,) to reach (reach). ``world`` is the simulator, or anything with the same
        ``ctrl`` (pos, rot, grip), ``object_pose(i)``, ``scene.objects`` and ``cfg.fps`` (a world model's
        estimate of the state: worldsmith.envs)."""
        if behavior is not None and behavior not in BEHAVIORS:
            raise ConfigError(f"unknown arm behaviour {behavior!r}; choose one of: {', '.join(BEHAVIORS)}.")
        self.world, self.rng = world, rng
        self.target, self.goal = target, None if goal is None else np.asarray(goal, float)
        self.behavior = behavior or str(rng.choice(BEHAVIORS, p=_WEIGHTS))
        if self.behavior == "stack" and not self._stack_pairs():
            self.behavior = "pick_place"  # one object, or nothing flat-topped to stack on
        self.noise = float(rng.uniform(0.5, 1.5))
        self.frame_scale = min(1.0, REFERENCE_FPS / world.cfg.fps)  # shorter frames: smaller steps, longer holds
        self.pace = float(rng.uniform(0.8, 1.0)) * self.frame_scale
        plans = {"reach": self._reach, "push": self._push, "pick_place": self._pick_place, "stack": self._stack,
                 "explore": self._explore}  # fmt: skip
        self._plan: Iterator[Waypoint] = plans[self.behavior]()
        self._wp: Waypoint | None = None
        self._age = self._dwell = 0  # frames since the waypoint became active / since it was reached
        self._advance()

    # -- following -------------------------------------------------------------------------------------------
    def __call__(self, t: int | None = None) -> np.ndarray:
        ctrl = self.world.ctrl
        if self._wp is not None and self._arrived():
            self._dwell += 1
            if self._dwell > np.ceil(self._wp.hold / self.frame_scale):
                self._advance()
        wp = self._wp
        if wp is None:  # behaviour finished: stay put
            return np.zeros(7, dtype=np.float32)
        self._age += 1
        dp = wp.pos - ctrl.pos
        step = dp * min(1.0, wp.speed * self.pace / max(float(np.linalg.norm(dp)), 1e-9))
        step = step + self.rng.normal(0.0, NOISE_POS * self.noise, 3)
        rot = mat_to_rotvec(ctrl.rot.T @ top_down_rotation(wp.yaw))  # gripper frame
        rot = rot * min(1.0, 0.8 * MAX_ROTATION / max(float(np.linalg.norm(rot)), 1e-9))
        rot = rot + self.rng.normal(0.0, NOISE_ROT * self.noise, 3)
        grip = float(np.clip(wp.grip - ctrl.grip, -GRIP_RATE, GRIP_RATE))
        action = np.concatenate([ctrl.rot.T @ step, rot, [grip]])
        return clip_action(action).astype(np.float32)

    def _arrived(self) -> bool:
        ctrl, wp = self.world.ctrl, self._wp
        near = np.linalg.norm(wp.pos - ctrl.pos) < wp.tol
        aligned = np.linalg.norm(mat_to_rotvec(ctrl.rot.T @ top_down_rotation(wp.yaw))) < 0.05
        timeout = self._age > 15 + 3 * np.linalg.norm(wp.pos - ctrl.pos) / SLOW  # unreachable: move on
        return bool((near and aligned and abs(wp.grip - ctrl.grip) < 1e-6) or timeout)

    def _advance(self) -> None:
        self._wp, self._age, self._dwell = next(self._plan, None), 0, 0

    # -- state helpers ---------------------------------------------------------------------------------------
    def _obj(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.world.object_pose(i)

    def _top(self, i: int) -> float:
        return float(self._obj(i)[0][2] + self.world.scene.objects[i].half_height)

    def _yaw(self) -> float:
        R = self.world.ctrl.rot
        return float(np.arctan2(R[1, 2], R[0, 2]))  # direction of the gripper z axis on the table

    def _hover_z(self) -> float:
        """ee height that keeps the fingertips clear of every object."""
        top = max(self._top(i) for i in range(len(self.world.scene.objects)))
        return top + EE_TO_TIP + CLEARANCE

    def _grasp_yaw(self, i: int) -> float:
        """Yaw that puts the fingers across the object's narrow horizontal axis, closest to the current yaw."""
        obj, (_, R) = self.world.scene.objects[i], self._obj(i)
        if obj.shape not in ("cube", "block") or abs(R[2, 2]) < 0.9:  # round, or a box lying on its side
            return self._yaw()
        period = np.pi / 2 if obj.shape == "cube" else np.pi
        yaw0 = np.arctan2(R[1, 0], R[0, 0])  # object x axis; fingers close along the object's y axis
        k = np.round((self._yaw() - yaw0) / period)
        return float(yaw0 + k * period)

    def _grasp_z(self, i: int) -> float:
        return max(float(self._obj(i)[0][2]) + 0.003, Z_RANGE[0] + 0.002)

    def _jitter(self, std: float) -> np.ndarray:
        return np.append(self.rng.normal(0.0, std, 2), 0.0)

    def _free_spot(self, i: int) -> np.ndarray:
        """A random table xy 8-20 cm from object ``i``, in the workspace and clear of the other objects."""
        objs = self.world.scene.objects
        start = self._obj(i)[0][:2]
        others = [j for j in range(len(objs)) if j != i]
        for _ in range(200):
            ang, dist = self.rng.uniform(-np.pi, np.pi), self.rng.uniform(0.08, 0.2)
            xy = start + dist * np.array([np.cos(ang), np.sin(ang)])
            r, a = np.hypot(*xy), np.arctan2(xy[1], xy[0])
            inside = WORKSPACE_RADIUS[0] <= r <= WORKSPACE_RADIUS[1] and abs(a) <= WORKSPACE_ANGLE
            if inside and all(
                np.linalg.norm(xy - self._obj(j)[0][:2]) > objs[i].radius + objs[j].radius + 0.03 for j in others
            ):
                return xy
        return start + np.array([0.0, -0.1 if start[1] > 0 else 0.1])

    def _stack_pairs(self) -> list[tuple[int, int]]:
        objs = self.world.scene.objects
        pairs = [(a, b) for a in range(len(objs)) for b in range(len(objs)) if a != b and objs[b].shape in FLAT_TOPPED]
        no_ball = [(a, b) for a, b in pairs if objs[a].shape != "ball"]  # balls roll off
        return no_ball or pairs

    def _pick_object(self) -> int:
        if self.target is not None:
            return self.target
        return int(self.rng.integers(len(self.world.scene.objects)))

    # -- behaviours ------------------------------------------------------------------------------------------
    def _reach(self) -> Iterator[Waypoint]:
        i = self._pick_object()
        p, _ = self._obj(i)
        if self.goal is not None and len(self.goal) == 3:  # a given fingertip point: go there and stay
            yield Waypoint(self.goal + [0.0, 0.0, EE_TO_TIP], self._grasp_yaw(i), 1.0, speed=FAST * self.rng.uniform(0.7, 1.0))
            return
        speed = self.rng.uniform(0.4, 1.0) * FAST
        z = self._top(i) + EE_TO_TIP + self.rng.uniform(0.06, 0.1)
        yield Waypoint(np.append(p[:2], z) + self._jitter(0.004), self._grasp_yaw(i), 1.0, speed=speed, hold=2)
        z = self._top(i) + EE_TO_TIP + self.rng.uniform(0.015, 0.04)  # then come closer and stay
        yield Waypoint(np.append(p[:2], z) + self._jitter(0.004), self._grasp_yaw(i), 1.0, speed=SLOW)

    def _push(self) -> Iterator[Waypoint]:
        i = self._pick_object()
        obj, (p, _) = self.world.scene.objects[i], self._obj(i)
        if self.goal is not None:
            u, dist = self.goal[:2] - p[:2], float(np.linalg.norm(self.goal[:2] - p[:2]))
            u = u / max(dist, 1e-9)
        else:
            u, dist = push_end(p[:2], self.rng)
        gap = obj.radius + 0.035  # ee starts this far behind the object's centre
        pre = p[:2] - u * gap
        yaw, low = self._yaw(), Z_RANGE[0] + 0.004
        yield Waypoint(np.append(pre, self._hover_z()), yaw, 0.0)
        yield Waypoint(np.append(pre, low), yaw, 0.0, speed=SLOW)
        yield Waypoint(np.append(pre + u * (dist + gap - obj.radius - 0.012), low), yaw, 0.0, speed=PUSH)
        yield Waypoint(self.world.ctrl.pos + [0.0, 0.0, 0.08], yaw, 0.0)

    def _pick_place(self) -> Iterator[Waypoint]:
        i = self._pick_object()
        return self._carry(i, None)

    def _stack(self) -> Iterator[Waypoint]:
        pairs = self._stack_pairs()
        a, b = pairs[int(self.rng.integers(len(pairs)))]
        return self._carry(a, b)

    def _carry(self, i: int, onto: int | None) -> Iterator[Waypoint]:
        """Grasp object ``i``, lift it, and put it down on object ``onto`` (or a free spot when None)."""
        obj, ctrl = self.world.scene.objects[i], self.world.ctrl
        # 1. approach from above with the fingers open and aligned, then descend around the object
        yaw = self._grasp_yaw(i)
        hover = self._hover_z()
        yield Waypoint(np.append(self._obj(i)[0][:2], hover) + self._jitter(0.002), yaw, 1.0)
        yield Waypoint(np.append(self._obj(i)[0][:2], self._grasp_z(i)) + self._jitter(0.002), yaw, 1.0, speed=DESCEND)
        # 2. close, then lift
        yield Waypoint(ctrl.pos, yaw, 0.0, hold=2)
        offset = ctrl.pos[2] - self._obj(i)[0][2]  # ee height above the object's centre inside the grasp
        carry = hover + 2 * obj.half_height
        yield Waypoint(np.append(ctrl.pos[:2], carry), yaw, 0.0, speed=DESCEND)
        # 3. carry above the destination, lower until the object touches its support, let go, retreat
        if onto is None:
            xy, surface = (self._free_spot(i) if self.goal is None else self.goal[:2]), 0.0
        else:
            xy, surface = self._obj(onto)[0][:2], self._top(onto)
        xy = xy + self._jitter(0.003)[:2]
        yield Waypoint(np.append(xy, carry), yaw, 0.0)
        yield Waypoint(np.append(xy, surface + obj.half_height + offset + 0.006), yaw, 0.0, speed=SLOW)
        yield Waypoint(ctrl.pos, yaw, 1.0, hold=1)
        yield Waypoint(ctrl.pos + [0.0, 0.0, 0.06], yaw, 1.0)

    def _explore(self) -> Iterator[Waypoint]:
        """Random waypoints: a third of them poke an object near table height (contacts), the rest anywhere."""
        while True:
            if self.rng.random() < 0.35:
                i = self._pick_object()
                xy = self._obj(i)[0][:2] + self.rng.normal(0.0, 0.03, 2)
                z = self.rng.uniform(Z_RANGE[0], self._top(i) + EE_TO_TIP)
            else:
                r, a = self.rng.uniform(0.2, 0.52), self.rng.uniform(-0.7, 0.7)
                xy, z = np.array([r * np.cos(a), r * np.sin(a)]), self.rng.uniform(0.06, 0.26)
            grip = float(self.rng.integers(2)) if self.rng.random() < 0.4 else self.world.ctrl.grip
            yield Waypoint(np.append(xy, z), self._yaw() + self.rng.normal(0.0, 0.4), grip,
                           speed=self.rng.uniform(0.01, FAST), tol=0.01)
