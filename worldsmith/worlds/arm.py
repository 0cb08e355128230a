"""The ``arm`` world: a 6-joint robot arm with a two-finger gripper manipulating 1-4 objects on a table (MuJoCo).

    world = ArmWorld(WorldConfig(size=64))
    frame = world.reset(seed)                  # uint8 (H, W, 3)
    act = world.policy(np.random.default_rng(seed))   # scripted reach / push / pick-and-place / stack / explore
    for t in range(T - 1):
        frame = world.step(act(t))             # action float32 (7,): gripper-frame end-effector delta
    world.truth(), world.caption()             # "The robot arm picks up the red cube and puts it on the blue block."

Model and appearance: ``arm_model``; action semantics and inverse kinematics: ``arm_control``; scripted
behaviours: ``arm_policy``. Grasps are real friction grasps (no welds). Views: 1 = the front third-person camera,
2 adds the opposite third-person camera, 3 adds a wrist camera on the gripper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from worldsmith.errors import ConfigError, WorldsmithError
from worldsmith.worlds import render
from worldsmith.worlds.arm_control import ArmController, action_bounds, top_down_rotation
from worldsmith.worlds.arm_model import CAMERAS, PAD_GEOMS, TIMESTEP, ArmScene, build_mjcf, sample_scene
from worldsmith.worlds.arm_policy import ScriptedPolicy
from worldsmith.worlds.base import MujocoWorld, WorldConfig
from worldsmith.worlds.camera import mat_to_quat
from worldsmith.worlds.captions import direction_words, sentence

mujoco = render.mujoco
MOVED = 0.02  # m: an object "moved" when it got this far from where it started at some frame
LIFTED = 0.02  # m: an object was "picked up" when held by both fingers this far above its starting height
SETTLE_STEPS = 50  # physics steps at reset so objects rest on the table before the first frame
HOME_SEED_Q = np.array([0.0, 0.35, 1.0, 0.0, 0.2, 0.0])  # elbow-up seed for the first IK solve
MSAA_SAMPLES = 0  # 4x multisampling would more than double the render cost with Mesa on a CPU (2 -> 5 ms at 64 px)
CHUNKS = 5  # joint targets are interpolated in this many pieces over a frame's substeps


@dataclass(frozen=True)
class ArmSnapshot:
    """``ArmWorld.snapshot()``: the episode's state at one moment."""

    model: Any  # the episode's MjModel (a snapshot restores into its own episode only)
    physics: Any  # a copy of the episode's MjData
    controller: tuple  # q_cmd, q_prev, grip, pos, rot
    frames: list  # the rendered views
    logged: int  # frames logged for captions and truth


class ArmWorld(MujocoWorld):
    name = "arm"
    action_dim = 7

    def __init__(self, cfg: WorldConfig | None = None) -> None:
        super().__init__(cfg)
        if self.num_views > len(CAMERAS):
            raise ConfigError(f"the arm world has {len(CAMERAS)} cameras ({', '.join(CAMERAS)}); "
                              f"set views to at most {len(CAMERAS)}, got {self.cfg.views}.")
        self.scene: ArmScene | None = None
        self.ctrl: ArmController | None = None
        self.seed: int | None = None
        self.behavior: str | None = None  # set by policy()
        self._frames: list[np.ndarray] = []  # rendered views of the current state
        self._obj_body = np.zeros(0, int)  # body / geom ids of the objects and geom ids of the finger pads
        self._obj_geom = np.zeros(0, int)
        self._pad_geom = np.zeros(0, int)
        self._cam_ids: list[int] = []  # camera ids of the rendered views, main view first
        self._positions: list[np.ndarray] = []  # per frame (N, 3) object positions
        self._held: list[np.ndarray] = []  # per frame (N,) bool: touched by both finger pads
        self._substeps = 1

    # -- environment -------------------------------------------------------------------------------------------
    def reset(self, seed: int) -> np.ndarray:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"an episode seed must be a non-negative integer, got {seed!r}.")
        self.seed, self.behavior = int(seed), None
        rng = np.random.default_rng(self.seed)
        # 1. randomised scene -> model (elliptic friction cones hold grasped objects without creeping)
        self.scene = sample_scene(rng, self.cfg.randomize)
        model = build_mjcf(self.scene, rng, self.cfg.randomize, self.cfg.size).compile()
        model.opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
        model.opt.impratio = 10.0
        model.vis.quality.offsamples = MSAA_SAMPLES
        self._substeps = int(np.ceil(1.0 / (self.cfg.fps * TIMESTEP) - 1e-9))
        model.opt.timestep = 1.0 / (self.cfg.fps * self._substeps)  # <= TIMESTEP; a frame lasts exactly 1/fps
        self._load(model)
        # 2. arm at its home pose, gripper open and pointing down; objects settle on the table
        self.ctrl = ArmController(model, self.data)
        self.ctrl.reset(self.scene.home, top_down_rotation(self.scene.home_yaw), HOME_SEED_Q)
        mujoco.mj_forward(model, self.data)
        mujoco.mj_step(model, self.data, nstep=SETTLE_STEPS)
        self._obj_body = np.array([model.body(o.name).id for o in self.scene.objects])
        self._obj_geom = np.array([model.geom(f"{o.name}_geom").id for o in self.scene.objects])
        self._pad_geom = np.array([model.geom(g).id for g in PAD_GEOMS])
        self._cam_ids = [model.camera(c).id for c in CAMERAS[: self.num_views]]
        self._positions, self._held = [], []
        self._record()
        return self._frames[0]

    def step(self, action: np.ndarray) -> np.ndarray:
        if self.ctrl is None:
            raise WorldsmithError("the arm world has no episode yet; call reset(seed) before step(action).")
        self.ctrl.apply(action)
        # substeps with joint targets interpolated from the previous frame's to this frame's (no jerk)
        bounds = np.linspace(0, self._substeps, min(CHUNKS, self._substeps) + 1).round().astype(int)
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            self.ctrl.set_progress((i + 1) / (len(bounds) - 1))
            mujoco.mj_step(self.model, self.data, nstep=int(b - a))
        self._record()
        return self._frames[0]

    def snapshot(self) -> ArmSnapshot:
        """The whole state of the episode now (physics, the controller's commands, the rendered views, the logs
        captions read), for ``restore``: stepping from a restored snapshot repeats the original steps bit for bit
        (model-predictive control with the simulator itself as the model: ``worldsmith plan --model simulator``)."""
        if self.ctrl is None:
            raise WorldsmithError("the arm world has no episode yet; call reset(seed) before snapshot().")
        physics = mujoco.MjData(self.model)
        mujoco.mj_copyData(physics, self.model, self.data)  # derived quantities too: they lag a step behind qpos
        c = self.ctrl
        return ArmSnapshot(self.model, physics, (c.q_cmd.copy(), c.q_prev.copy(), c.grip, c.pos.copy(), c.rot.copy()),
                           list(self._frames), len(self._positions))  # fmt: skip

    def restore(self, snap: ArmSnapshot) -> None:
        """Go back to a ``snapshot`` of this episode."""
        if snap.model is not self.model:
            raise WorldsmithError("this snapshot belongs to another episode of the arm world; restore a snapshot "
                                  "taken since the last reset.")  # fmt: skip
        mujoco.mj_copyData(self.data, self.model, snap.physics)
        q_cmd, q_prev, grip, pos, rot = snap.controller
        self.ctrl.q_cmd, self.ctrl.q_prev, self.ctrl.grip = q_cmd.copy(), q_prev.copy(), grip
        self.ctrl.pos, self.ctrl.rot = pos.copy(), rot.copy()
        self._frames = list(snap.frames)
        del self._positions[snap.logged:], self._held[snap.logged:]

    def _record(self) -> None:
        """Render the views of the new state once and log what the caption needs."""
        self._frames = [self._render(cam) for cam in self._cam_ids]
        self._positions.append(self.data.xpos[self._obj_body].copy())
        self._held.append(self._held_by_both_pads())

    def _held_by_both_pads(self) -> np.ndarray:
        c = self.data.contact
        g1, g2 = c.geom1[: self.data.ncon], c.geom2[: self.data.ncon]
        held = np.ones(len(self._obj_geom), bool)
        for pad in self._pad_geom:
            other = np.concatenate([g2[g1 == pad], g1[g2 == pad]])
            held &= np.isin(self._obj_geom, other)
        return held

    def render_views(self) -> list[np.ndarray]:
        if self.ctrl is None:
            raise WorldsmithError("the arm world has no episode yet; call reset(seed) before render_views().")
        return list(self._frames)

    def action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return action_bounds()

    # -- ground truth ------------------------------------------------------------------------------------------
    def truth(self) -> dict[str, np.ndarray]:
        """``states`` (N, 7) object pos + quat (w, x, y, z); ``grasped`` (N,) 1 where both finger pads touch the
        object; ``ee`` (8,) measured ee pos + quat + finger opening (m); ``qpos`` (8,) six arm joints + two finger
        slides; ``pixels`` (N, 2) object centres in the main view; ``intrinsics`` (3, 3) and ``c2w`` (4, 4) of the
        main camera, or (V, 3, 3) / (V, 4, 4) with several views."""
        if self.ctrl is None:
            raise WorldsmithError("the arm world has no episode yet; call reset(seed) before truth().")
        d, size = self.data, self.cfg.size
        states = np.concatenate([d.xpos[self._obj_body], d.xquat[self._obj_body]], axis=1)
        pos, rot = self.ctrl.ee_pose()
        Ks = np.stack([render.camera_K(self.model, c, size, size) for c in self._cam_ids])  # (V, 3, 3)
        c2ws = np.stack([render.camera_c2w(d, c) for c in self._cam_ids])  # (V, 4, 4)
        pixels, _ = render.project(states[:, :3], Ks[0], c2ws[0])
        out = {
            "states": states,
            "grasped": self._held[-1],
            "ee": np.concatenate([pos, mat_to_quat(rot), [self.ctrl.opening()]]),
            "qpos": self.ctrl.arm_qpos(),
            "pixels": pixels,
            "intrinsics": Ks if self.num_views > 1 else Ks[0],
            "c2w": c2ws if self.num_views > 1 else c2ws[0],
        }
        return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}

    def object_pose(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Position (3,) and orientation (3, 3) of object ``i`` now."""
        body = self._obj_body[i]
        return self.data.xpos[body].copy(), self.data.xmat[body].reshape(3, 3).copy()

    def moved_objects(self) -> np.ndarray:
        """(N,) bool: objects that got ``MOVED`` metres away from their start at some frame since reset."""
        p = np.stack(self._positions)  # (T, N, 3)
        return np.linalg.norm(p - p[0], axis=-1).max(axis=0) > MOVED

    def caption(self) -> str:
        """What happened since reset, from the true state, e.g. "The robot arm picks up the red cube and puts it
        on the blue block.", "The robot arm pushes the green ball to the left.", "The robot arm moves above the
        yellow cylinder." Directions are relative to the main camera. Every object that moved is named, in the
        order they started moving; objects that did not move are named only as a support or a reach target."""
        if self.ctrl is None:
            raise WorldsmithError("the arm world has no episode yet; call reset(seed) before caption().")
        names = [o.description for o in self.scene.objects]
        p, held = np.stack(self._positions), np.stack(self._held)  # (T, N, 3), (T, N)
        first_move = np.argmax(np.linalg.norm(p - p[0], axis=-1) > MOVED, axis=0)  # (N,)
        phrases = []
        for i in sorted(np.flatnonzero(self.moved_objects()), key=lambda i: first_move[i]):
            rise = p[:, i, 2] - p[0, i, 2]  # (T,)
            shift = p[-1, i] - p[0, i]
            where = direction_words(shift, *self._camera_axes()) if np.linalg.norm(shift[:2]) > MOVED else ""
            below = self._resting_on(i)
            if not np.any(held[:, i] & (rise > LIFTED)):
                phrases.append(f"pushes the {names[i]} {where}".rstrip())
            elif below is not None:
                phrases.append(f"picks up the {names[i]} and puts it on the {names[below]}")
            elif held[-1, i] and rise[-1] > LIFTED:
                phrases.append(f"picks up the {names[i]} and holds it up")
            else:
                phrases.append(f"picks up the {names[i]} and puts it down {where or 'where it was'}")
        if phrases:
            return sentence("the robot arm " + ", then ".join(phrases))
        above = self._object_below_gripper()
        if above is not None:
            return sentence(f"the robot arm moves above the {names[above]}")
        return sentence("the robot arm moves around without touching anything")

    def _camera_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """The main camera's right and viewing directions (world, (3,) each)."""
        c2w = render.camera_c2w(self.data, self._cam_ids[0])
        return c2w[:3, 0], c2w[:3, 2]

    def _resting_on(self, i: int) -> int | None:
        """The object that object ``i`` rests on (in contact and lower) in the current state, if any."""
        c = self.data.contact
        g1, g2 = c.geom1[: self.data.ncon], c.geom2[: self.data.ncon]
        gi = self._obj_geom[i]
        touching = set(g2[g1 == gi].tolist()) | set(g1[g2 == gi].tolist())
        z = self.data.xpos[self._obj_body, 2]  # (N,)
        for j, gj in enumerate(self._obj_geom):
            if j != i and gj in touching and z[i] > z[j]:
                return j
        return None

    def _object_below_gripper(self) -> int | None:
        """The object whose footprint is under the gripper now, with the gripper above its top."""
        pos, _ = self.ctrl.ee_pose()
        for j, obj in enumerate(self.scene.objects):
            p = self.data.xpos[self._obj_body[j]]
            if np.linalg.norm(pos[:2] - p[:2]) < obj.radius + 0.02 and pos[2] > p[2] + obj.half_height:
                return j
        return None

    # -- data generation ---------------------------------------------------------------------------------------
    def policy(self, rng: np.random.Generator, behavior: str | None = None):
        """A scripted noisy behaviour for this episode (see ``arm_policy``): a callable ``act(t) -> action``
        (float32 (7,)); ``behavior`` forces one of ``arm_policy.BEHAVIORS``, else ``rng`` picks it."""
        if self.ctrl is None:
            raise WorldsmithError("the arm world has no episode yet; call reset(seed) before policy(rng).")
        pol = ScriptedPolicy(self, rng, behavior)
        self.behavior = pol.behavior
        return pol

    def episode_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"world": self.name, "action": "gripper-frame delta (dx, dy, dz, droll, dpitch, "
                                "dyaw, dgripper): metres, radians, gripper command change (0 closed, 1 open)",
                                "views": list(CAMERAS[: self.num_views])}
        if self.scene is not None:
            meta["objects"] = [o.description for o in self.scene.objects]
            meta["seed"] = self.seed
        if self.behavior is not None:
            meta["behavior"] = self.behavior
        return meta
