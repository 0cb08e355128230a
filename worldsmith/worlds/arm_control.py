"""End-effector delta control of the arm: gripper-frame deltas -> target pose -> damped-least-squares IK -> joints.

Action (7,), the Bridge convention ``(dx, dy, dz, droll, dpitch, dyaw, dgripper)``, all relative to the *gripper
frame* of the commanded pose (axes documented in ``arm_model``: x out of the fingers, y toward the left finger,
z the back of the hand):

* ``dx, dy, dz``            translation in metres, clipped to +-``MAX_TRANSLATION`` per frame;
* ``droll, dpitch, dyaw``   rotation vector (axis * angle, radians) about gripper x, y, z, clipped to a norm of
                            ``MAX_ROTATION`` per frame; for small deltas these are roll, pitch and yaw;
* ``dgripper``              change of the gripper command in [-1, 1]: the command lives in [0, 1] (0 closed, 1 open),
                            so -1 closes fully and +1 opens fully within one frame.

Bridge records translation in the robot's base frame; this world uses the gripper frame throughout. With the
gripper pointing straight down at yaw ``psi`` (the home pose, and every scripted grasp) that means: +x moves down,
+y moves along the world's (-sin psi, cos psi, 0) and +z along (cos psi, sin psi, 0) (away from the base at psi = 0),
and droll turns the gripper about the vertical. Out-of-bound actions are clipped (rotation by norm, so its axis is
kept); ``ArmWorld.step`` raises for a wrong shape or NaN.

The controller keeps a *commanded* pose: the forward kinematics of the commanded joint targets. Each action moves
that pose (``p' = p + R d``, ``R' = R exp(r)``), the target position is kept inside the workspace (above the table,
within reach), a few damped-least-squares iterations on a scratch ``MjData`` give new joint targets, and the
commanded pose becomes their forward kinematics (so an unreachable target never winds up). The physics then
tracks the joint targets with position actuators, interpolated over the frame's substeps.
"""

from __future__ import annotations

import numpy as np

from worldsmith.errors import WorldsmithError
from worldsmith.worlds.arm_model import ARM_JOINTS, EE_TO_TIP, FINGER_JOINTS, FINGER_OPEN, FINGER_SQUEEZE
from worldsmith.worlds.camera import mat_to_quat
from worldsmith.worlds.render import mujoco

MAX_TRANSLATION = 0.04  # m per frame, each axis (0.4 m/s at 10 fps)
MAX_ROTATION = 0.2  # rad per frame, rotation-vector norm
Z_RANGE = (EE_TO_TIP + 0.003, 0.42)  # commanded ee height (m): fingertips stay 3 mm above the table
REACH = (0.14, 0.56)  # commanded ee distance from the base axis (m)
AZIMUTH = 1.3  # max |azimuth| of the commanded ee around the base (rad): the arm stays in front of itself
IK_ITERS = 4  # max DLS iterations per frame (~60 us each, mostly Python; 2-3 usually converge)
IK_DAMPING = 0.03  # lambda of damped least squares
IK_TOL = 1e-4  # stop iterating once the pose error (m / rad) is this small


def action_bounds() -> tuple[np.ndarray, np.ndarray]:
    hi = np.array([MAX_TRANSLATION] * 3 + [MAX_ROTATION] * 3 + [1.0], dtype=np.float32)
    return -hi, hi


def rotvec_to_mat(r: np.ndarray) -> np.ndarray:
    """Rodrigues: rotation vector (3,) -> rotation matrix (3, 3)."""
    angle = float(np.linalg.norm(r))
    if angle < 1e-12:
        return np.eye(3)
    k = r / angle
    K = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * K + (1.0 - np.cos(angle)) * (K @ K)


def mat_to_rotvec(R: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) -> rotation vector (3,) with angle in [0, pi]."""
    q = mat_to_quat(R)  # (w, x, y, z)
    if q[0] < 0:
        q = -q
    s = float(np.linalg.norm(q[1:]))
    if s < 1e-12:
        return np.zeros(3)
    return q[1:] / s * (2.0 * np.arctan2(s, q[0]))


def top_down_rotation(yaw: float) -> np.ndarray:
    """Gripper orientation (3, 3), columns = gripper axes in the world, pointing straight down with ``yaw``."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[0.0, -s, c], [0.0, c, s], [-1.0, 0.0, 0.0]])


def clip_action(action: np.ndarray) -> np.ndarray:
    """Validate an action and clip it to the bounds (rotation by norm, so its axis is kept)."""
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (7,) or not np.all(np.isfinite(a)):
        raise WorldsmithError(
            f"the arm world takes a finite 7-D action (dx, dy, dz, droll, dpitch, dyaw, dgripper), got shape "
            f"{a.shape}{'' if a.shape != (7,) else ' with NaN/inf'}; pass a float array of shape (7,)."
        )
    out = a.copy()
    out[:3] = np.clip(a[:3], -MAX_TRANSLATION, MAX_TRANSLATION)
    norm = float(np.linalg.norm(a[3:6]))
    if norm > MAX_ROTATION:
        out[3:6] = a[3:6] * (MAX_ROTATION / norm)
    out[6] = np.clip(a[6], -1.0, 1.0)
    return out


def clamp_workspace(p: np.ndarray) -> np.ndarray:
    """Project a commanded ee position into the reachable box-ish workspace above the table."""
    r = float(np.hypot(p[0], p[1]))
    az = float(np.clip(np.arctan2(p[1], p[0]), -AZIMUTH, AZIMUTH))
    r = float(np.clip(r, *REACH))
    return np.array([r * np.cos(az), r * np.sin(az), float(np.clip(p[2], *Z_RANGE))])


class ArmController:
    """Turns gripper-frame delta actions into joint position targets for the actuators of ``data``."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        self.model, self.data = model, data
        self._kin = mujoco.MjData(model)  # scratch state for forward kinematics and Jacobians
        self.site = model.site("ee").id
        joints = [model.joint(j) for j in ARM_JOINTS]
        self.qadr = np.array([int(model.jnt_qposadr[j.id]) for j in joints])
        self.dofs = np.array([int(model.jnt_dofadr[j.id]) for j in joints])
        self.lo, self.hi = model.jnt_range[[j.id for j in joints]].T.copy()
        self.arm_act = np.array([model.actuator(j).id for j in ARM_JOINTS])
        self.finger_act = np.array([model.actuator(j).id for j in FINGER_JOINTS])
        self.finger_qadr = np.array([int(model.jnt_qposadr[model.joint(j).id]) for j in FINGER_JOINTS])
        self._jacp, self._jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
        self.q_cmd = np.zeros(len(ARM_JOINTS))  # commanded joint targets
        self.q_prev = self.q_cmd.copy()  # targets at the start of the current frame (for interpolation)
        self.grip = 1.0  # gripper command in [0, 1]: 0 closed, 1 open
        self.pos, self.rot = self.fk(self.q_cmd)  # commanded ee pose (3,), (3, 3)

    # -- kinematics --------------------------------------------------------------------------------------------
    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ee site position (3,) and orientation (3, 3) for arm joints ``q`` (scratch data; Jacobians valid)."""
        self._kin.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, self._kin)
        mujoco.mj_comPos(self.model, self._kin)
        return self._kin.site_xpos[self.site].copy(), self._kin.site_xmat[self.site].reshape(3, 3).copy()

    def solve_ik(self, q0: np.ndarray, pos: np.ndarray, rot: np.ndarray, iters: int = IK_ITERS) -> np.ndarray:
        """Joint targets near ``q0`` that put the ee at (``pos``, ``rot``): damped least squares, joint limits."""
        q = q0.copy()
        for _ in range(iters):
            p, R = self.fk(q)
            err = np.concatenate([pos - p, R @ mat_to_rotvec(R.T @ rot)])  # (6,) world-frame pose error
            if np.linalg.norm(err) < IK_TOL:
                break
            mujoco.mj_jacSite(self.model, self._kin, self._jacp, self._jacr, self.site)
            J = np.vstack([self._jacp[:, self.dofs], self._jacr[:, self.dofs]])  # (6, 6)
            dq = J.T @ np.linalg.solve(J @ J.T + IK_DAMPING**2 * np.eye(6), err)
            q = np.clip(q + dq, self.lo, self.hi)
        return q

    # -- control -----------------------------------------------------------------------------------------------
    def reset(self, pos: np.ndarray, rot: np.ndarray, seed_q: np.ndarray) -> None:
        """Put the arm (state and targets) at the pose (``pos``, ``rot``), gripper open."""
        q = self.solve_ik(np.asarray(seed_q, float), clamp_workspace(pos), rot, iters=200)
        self.q_cmd, self.q_prev, self.grip = q, q.copy(), 1.0
        self.pos, self.rot = self.fk(q)
        self.data.qpos[self.qadr] = q
        self.data.qpos[self.finger_qadr] = FINGER_OPEN
        self.data.qvel[:] = 0.0
        self.data.ctrl[self.arm_act] = q
        self.data.ctrl[self.finger_act] = self.finger_target()

    def apply(self, action: np.ndarray) -> np.ndarray:
        """Update the commanded pose and joint targets from a (clipped) action; returns the clipped action."""
        a = clip_action(action)
        target_pos = clamp_workspace(self.pos + self.rot @ a[:3])
        target_rot = self.rot @ rotvec_to_mat(a[3:6])
        self.q_prev = self.q_cmd
        self.q_cmd = self.solve_ik(self.q_cmd, target_pos, target_rot)
        self.pos, self.rot = self.fk(self.q_cmd)
        self.grip = float(np.clip(self.grip + a[6], 0.0, 1.0))
        self.data.ctrl[self.finger_act] = self.finger_target()
        return a

    def set_progress(self, frac: float) -> None:
        """Arm actuator targets at fraction ``frac`` in (0, 1] of the way through the current frame."""
        self.data.ctrl[self.arm_act] = self.q_prev + frac * (self.q_cmd - self.q_prev)

    def finger_target(self) -> float:
        return -FINGER_SQUEEZE + self.grip * (FINGER_OPEN + FINGER_SQUEEZE)

    # -- measured state ----------------------------------------------------------------------------------------
    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Measured (simulated) ee position (3,) and orientation (3, 3)."""
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()

    def opening(self) -> float:
        """Measured distance between the finger pads (m)."""
        return float(self.data.qpos[self.finger_qadr].sum())

    def arm_qpos(self) -> np.ndarray:
        """Measured joints (8,): six arm joints then the two finger slides."""
        return np.concatenate([self.data.qpos[self.qadr], self.data.qpos[self.finger_qadr]])
