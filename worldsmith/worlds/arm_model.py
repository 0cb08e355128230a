"""The arm world's randomised MJCF: a 6-joint arm with a two-finger gripper over a table with 1-4 objects.

World frame: z up, the table top at z = 0, the arm's base at the origin, the workspace in front of it along +x.
The kinematic layout follows the WidowX 250 6-DOF used by the Bridge dataset (waist, shoulder, elbow, forearm
roll, wrist pitch, wrist roll), built from capsules and boxes (no meshes) so a physics step stays cheap:

    waist (z) -> shoulder (y) -> elbow (y) -> forearm roll (x) -> wrist pitch (y) -> wrist roll (x) -> gripper

In the zero pose the upper arm points up and the forearm and gripper point along +x. The two fingers are slide
joints (one position actuator each) with high-friction box pads; objects are free bodies, so a grasp holds an
object by friction alone. Every arm body has gravity compensation, so the position actuators only fight dynamics.

Gripper frame (the site ``ee``, between the finger pads), as in Interbotix's ``ee_gripper_link``:
    x  along the fingers, out of the gripper (the approach direction; straight down in a top-down grasp)
    y  along the finger-opening axis, toward the left finger
    z  = x cross y (the back of the hand; forward, away from the base, in a top-down grasp with zero yaw)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldsmith.worlds import camera, mjcf
from worldsmith.worlds.mjcf import MJCF, ObjectSpec, fmt

ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_pitch", "wrist_roll")
FINGER_JOINTS = ("finger_left", "finger_right")
PAD_GEOMS = ("pad_left", "pad_right")
CAMERAS = ("front", "side", "wrist")  # view order: main third-person view, opposite third-person view, wrist

TIMESTEP = 0.004  # s, the largest physics step: each video frame is split into equal steps no longer than this
FINGER_OPEN = 0.042  # m, travel of each finger (max opening 8.4 cm)
FINGER_SQUEEZE = 0.01  # m, closed target beyond contact, so a closed gripper squeezes with kp * (width/2 + this)
EE_TO_TIP = 0.03  # m, from the ee site to the fingertips along gripper x
OBJECT_SHAPES = ("cube", "block", "ball", "cylinder")
FLAT_TOPPED = ("cube", "block", "cylinder")  # shapes another object can be stacked on
OBJECT_SCALE = (0.02, 0.03)  # half size range (m) handed to mjcf.random_object
WORKSPACE_RADIUS = (0.28, 0.48)  # object placement: distance from the base axis (m)
WORKSPACE_ANGLE = 0.55  # object placement: |azimuth| around the base (rad)

_JOINT_RANGES = {  # rad
    "waist": (-2.6, 2.6),
    "shoulder": (-1.8, 1.9),
    "elbow": (-1.7, 2.4),
    "forearm_roll": (-2.6, 2.6),
    "wrist_pitch": (-1.8, 2.2),
    "wrist_roll": (-3.0, 3.0),
}
_KP = {"waist": 600, "shoulder": 800, "elbow": 600, "forearm_roll": 200, "wrist_pitch": 200, "wrist_roll": 100}


@dataclass
class CameraSpec:
    pos: np.ndarray  # (3,) world
    target: np.ndarray  # (3,) world point the camera looks at
    fovy: float  # degrees


@dataclass
class ArmScene:
    """Everything random about one episode; the MJCF is a pure function of it (and of its material rng)."""

    objects: list[ObjectSpec]
    positions: np.ndarray  # (N, 2) object xy on the table
    yaws: np.ndarray  # (N,) object yaw (rad)
    cameras: list[CameraSpec]  # front, side (the wrist camera is fixed to the gripper)
    arm_rgb: np.ndarray  # (3,) link colour
    home: np.ndarray  # (3,) initial ee position
    home_yaw: float  # initial gripper yaw about world z (rad)


def sample_scene(rng: np.random.Generator, randomize: bool = True) -> ArmScene:
    """1-4 non-overlapping objects in the arm's reach, cameras with small jitter, a random home pose.

    With ``randomize=False`` appearance is fixed (equal cubes, plain materials, one light, nominal cameras, arm
    colour and home pose); the number of objects, their colours (captions need them) and layout still vary.
    """
    n = int(rng.integers(1, 5))
    colors = mjcf.distinct_colors(rng, n)
    objects, positions, yaws = [], [], []
    for i in range(n):
        if randomize:
            obj = mjcf.random_object(rng, f"obj{i}", shapes=OBJECT_SHAPES, scale=OBJECT_SCALE, color=colors[i])
        else:
            obj = ObjectSpec(name=f"obj{i}", shape="cube", color=colors[i], size=(0.022, 0.022, 0.022))
        xy = _place(rng, obj, objects, positions)
        if xy is None:  # rare: no room left for a large object; the scene has the ones placed so far
            break
        objects.append(obj)
        positions.append(xy)
        yaws.append(float(rng.uniform(0.0, np.pi)) if obj.shape in ("cube", "block") else 0.0)
    cameras = [CameraSpec(np.array([0.86, -0.46, 0.5]), np.array([0.25, 0.0, 0.17]), 50.0),
               CameraSpec(np.array([0.86, 0.46, 0.5]), np.array([0.25, 0.0, 0.17]), 50.0)]
    if randomize:
        cameras = [CameraSpec(*camera.jitter_camera(rng, c.pos, c.target, fovy=c.fovy)) for c in cameras]
    home = np.array([0.34, 0.0, 0.15]) + (rng.uniform([-0.04, -0.06, -0.02], [0.04, 0.06, 0.02]) if randomize else 0.0)
    arm_rgb = mjcf.random_muted_rgb(rng, 0.15, 0.45) if randomize else np.array([0.25, 0.25, 0.28])
    return ArmScene(objects, np.array(positions), np.array(yaws), cameras, arm_rgb, home,
                    float(rng.uniform(-0.5, 0.5)) if randomize else 0.0)


def _place(rng: np.random.Generator, obj: ObjectSpec, placed: list[ObjectSpec], xy: list[np.ndarray]) -> np.ndarray | None:
    """A random xy in the workspace at least 5 cm (a finger's clearance) from every object already placed."""
    for _ in range(200):
        r, a = rng.uniform(*WORKSPACE_RADIUS), rng.uniform(-WORKSPACE_ANGLE, WORKSPACE_ANGLE)
        p = np.array([r * np.cos(a), r * np.sin(a)])
        if all(np.linalg.norm(p - q) > obj.radius + o.radius + 0.05 for o, q in zip(placed, xy)):
            return p
    return None  # no room (a few seeds in ten thousand draw four large objects close together)


def build_mjcf(spec: ArmScene, rng: np.random.Generator, randomize: bool = True, size: int = 64) -> MJCF:
    """The episode's MJCF document (compile with ``.compile()``); ``rng`` draws table/floor/light appearance."""
    look = rng if randomize else None
    mj = MJCF("arm", timestep=TIMESTEP, headlight=mjcf.headlight_xml(look), offscreen=(size, size))
    # 1. appearance: table and floor textures, lights, materials
    if randomize:
        mj.assets += mjcf.ground_assets(rng, "table", repeat=3.0) + mjcf.ground_assets(rng, "floor", repeat=8.0)
        mj.worldbody += mjcf.random_lights(rng)
    else:
        mj.assets += ['<material name="table" rgba="0.55 0.45 0.35 1"/>',
                      '<material name="floor" rgba="0.4 0.4 0.42 1"/>']
        mj.worldbody.append('<light name="light0" directional="true" castshadow="false" pos="0 0 3" dir="0.3 0.2 -1"/>')
    mj.assets.append(f'<material name="arm" rgba="{fmt(spec.arm_rgb)} 1" specular="0.3"/>')
    mj.assets.append('<material name="pad" rgba="0.12 0.12 0.12 1"/>')
    mj.assets += [obj.material_xml(look) for obj in spec.objects]
    # 2. static scene: floor (far below, seen past the table's edge), table (top at z = 0), cameras
    mj.worldbody.append('<geom name="floor" type="plane" pos="0 0 -0.75" size="4 4 1" material="floor" '
                        'contype="0" conaffinity="0"/>')
    mj.worldbody.append('<geom name="table" type="box" pos="0.3 0 -0.02" size="0.65 0.75 0.02" material="table" '
                        'class="static"/>')
    for name, cam in zip(CAMERAS, spec.cameras):
        mj.worldbody.append(mjcf.camera_xml(name, cam.pos, cam.target, cam.fovy))
    # 3. the arm, then the objects (1 mm above the table; reset lets them settle)
    mj.worldbody.append(_arm_xml())
    for obj, xy, yaw in zip(spec.objects, spec.positions, spec.yaws):
        quat = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        attrs = {"class": "object"}
        if obj.shape == "ball":  # rolling friction, so a pushed ball comes to rest
            attrs.update(condim="6", friction="1 0.01 0.002")
        mj.worldbody.append(obj.body_xml((xy[0], xy[1], obj.half_height + 0.001), quat=quat, **attrs))
    mj.sections += ['<compiler angle="radian"/>', _defaults_xml(), _actuators_xml(),
                    '<contact><exclude body1="finger_left" body2="finger_right"/></contact>']
    return mj


def _defaults_xml() -> str:
    # contype/conaffinity: gripper, table and objects collide with each other (bit 1); arm links collide only
    # with objects (bit 2), never with the table or themselves, so a link passing near the table costs nothing.
    return (
        "<default>"
        '<default class="static"><geom contype="1" conaffinity="1" friction="0.8 0.01 0.001"/></default>'
        '<default class="object"><geom contype="1" conaffinity="3" condim="4" friction="1 0.01 0.001" '
        'solref="0.01 1"/></default>'
        '<default class="link"><geom contype="2" conaffinity="0" material="arm" density="500"/>'
        '<joint armature="0.05" damping="2"/></default>'
        '<default class="hand"><geom contype="1" conaffinity="1" material="arm" density="500" solref="0.01 1"/>'
        "</default>"
        '<default class="pad"><geom type="box" contype="1" conaffinity="1" material="pad" condim="4" density="800" '
        'friction="1.6 0.02 0.001" solref="0.01 1" solimp="0.95 0.99 0.001"/>'
        '<joint type="slide" armature="0.01" damping="4"/></default>'
        "</default>"
    )


def _arm_xml() -> str:
    r = {k: f'range="{lo} {hi}"' for k, (lo, hi) in _JOINT_RANGES.items()}
    pad = 'size="0.033 0.006 0.012"'
    return (
        '<body name="base" childclass="link">'
        '<geom type="cylinder" size="0.065 0.025" pos="0 0 0.025"/>'
        '<body name="waist" pos="0 0 0.05" gravcomp="1">'
        f'<joint name="waist" axis="0 0 1" {r["waist"]}/>'
        '<geom type="cylinder" size="0.045 0.035" pos="0 0 0.035"/>'
        '<body name="upper_arm" pos="0 0 0.07" gravcomp="1">'
        f'<joint name="shoulder" axis="0 1 0" {r["shoulder"]}/>'
        '<geom type="capsule" fromto="0 0 0 0 0 0.3" size="0.027"/>'
        '<body name="forearm" pos="0 0 0.3" gravcomp="1">'
        f'<joint name="elbow" axis="0 1 0" {r["elbow"]}/>'
        '<geom type="capsule" fromto="0 0 0 0.14 0 0" size="0.024"/>'
        '<body name="forearm_roll" pos="0.14 0 0" gravcomp="1">'
        f'<joint name="forearm_roll" axis="1 0 0" {r["forearm_roll"]}/>'
        '<geom type="capsule" fromto="0 0 0 0.14 0 0" size="0.021"/>'
        '<body name="wrist" pos="0.14 0 0" gravcomp="1">'
        f'<joint name="wrist_pitch" axis="0 1 0" {r["wrist_pitch"]}/>'
        '<geom type="capsule" fromto="0 0 0 0.03 0 0" size="0.019"/>'
        '<body name="gripper" pos="0.04 0 0" gravcomp="1" childclass="hand">'
        f'<joint name="wrist_roll" axis="1 0 0" {r["wrist_roll"]} armature="0.05" damping="2"/>'
        '<geom name="palm" type="box" pos="0.012 0 0" size="0.012 0.056 0.02"/>'
        '<site name="ee" pos="0.06 0 0" size="0.005" rgba="1 0 0 0" group="4"/>'
        '<camera name="wrist" pos="-0.01 0 0.06" xyaxes="0 -1 0 0.5 0 1" fovy="70"/>'
        '<body name="finger_left" pos="0.024 0 0" gravcomp="1" childclass="pad">'
        f'<joint name="finger_left" axis="0 1 0" range="0 {FINGER_OPEN}"/>'
        f'<geom name="pad_left" pos="0.033 0.006 0" {pad}/>'
        "</body>"
        '<body name="finger_right" pos="0.024 0 0" gravcomp="1" childclass="pad">'
        f'<joint name="finger_right" axis="0 -1 0" range="0 {FINGER_OPEN}"/>'
        f'<geom name="pad_right" pos="0.033 -0.006 0" {pad}/>'
        "</body></body></body></body></body></body></body></body>"
    )


def _actuators_xml() -> str:
    arm = "".join(
        f'<position name="{j}" joint="{j}" kp="{_KP[j]}" dampratio="1" ctrlrange="{lo} {hi}"/>'
        for j, (lo, hi) in _JOINT_RANGES.items()
    )
    fingers = "".join(
        f'<position name="{j}" joint="{j}" kp="300" dampratio="1" ctrlrange="{-FINGER_SQUEEZE} {FINGER_OPEN}" '
        f'forcelimited="true" forcerange="-12 12"/>'
        for j in FINGER_JOINTS
    )
    return f"<actuator>{arm}{fingers}</actuator>"
