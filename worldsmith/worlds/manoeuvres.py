"""Commanded manoeuvres of the drive world's ego car: named action sequences, trajectories, simulator truth.

Conventions (those of ``worldsmith.worlds.drive``):

* ego state per frame = (x, y, yaw, speed): metres on the ground plane (z up), yaw in radians (counter-clockwise,
  continuous, never wrapped: + = turned left), speed in m/s (>= 0). A trajectory is float32 (T, 4) of these.
* action per frame transition = (steer, throttle) in [-1, 1]^2, float32 (T-1, 2) for T frames: steer + = left
  (wheel angle ``steer * max_steer``), throttle + accelerates and - brakes (``throttle * max_accel`` m/s^2).
* one Euler step of the kinematic bicycle per frame, dt = 1 / fps (fps default 10, the worlds' default), done by
  ``worldsmith.worlds.drive.bicycle_step``: the function ``DriveWorld.step`` uses, so ``integrate`` reproduces the
  world's ego exactly (same float64 arithmetic).

Named manoeuvres (``MANOEUVRES``; ``amount`` in [0, 1], ``DEFAULT_AMOUNTS`` when not given):

* ``straight``: steer 0, throttle ``amount`` (default 0: hold the speed);
* ``left`` / ``right``: steer +-``amount`` (default 0.6: 0.3 rad of wheel angle, about 50 deg/s of yaw at 8 m/s),
  ramped in linearly over the first ``RAMP_FRAMES`` transitions so the turn starts smoothly; throttle 0: the
  kinematic bicycle has no drag or cornering loss, so the car keeps exactly its current speed through the turn;
* ``stop``: steer 0, throttle -``amount`` (default 1: full brake, max_accel m/s^2) until the car stands still.

``load_trajectory`` makes a trajectory from a spec: a name (``"left"``), a name with an amount (``"right:0.8"``) or
a JSON file with one of the keys::

    {"ego": [[x, y, yaw, speed], ...]}              one state per frame, in any world frame, used as is (the file
                                                    needs at least as many states as frames; extra ones are dropped)
    {"actions": [[steer, throttle], ...], "speed": 8.0}
                                                    one action per transition (at least frames - 1), integrated from
                                                    (0, 0, 0, speed) ("speed" optional: the ``speed0`` argument)

Named and action trajectories start at (0, 0, 0, speed0): the origin, heading along +x. ``drive_actions`` plays
actions in the simulator from an episode's start (its views, ego and camera poses: the truth for a commanded
manoeuvre), and ``relative_to_first`` re-expresses a trajectory in the frame of its first state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from worldsmith.errors import ConfigError
from worldsmith.worlds.camera_paths import read_keyed_json
from worldsmith.worlds.drive import DriveConfig, DriveWorld, bicycle_step

MANOEUVRES = ("straight", "left", "right", "stop")
DEFAULT_AMOUNTS = {"straight": 0.0, "left": 0.6, "right": 0.6, "stop": 1.0}
RAMP_FRAMES = 4  # transitions over which a turn's steer ramps in


def _check_frames(frames) -> int:
    if not isinstance(frames, (int, np.integer)) or isinstance(frames, bool) or frames < 1:
        raise ConfigError(f"a trajectory needs an integer number of frames >= 1, got {frames!r}.")
    return int(frames)


def _array(value, width: int, what: str, where: str = "") -> np.ndarray:
    """``value`` as a finite float64 (N, width) array, or a ConfigError naming ``what`` (and the file ``where``)."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        a = None
    if a is None or a.ndim != 2 or a.shape[1] != width:
        shape = "not numeric" if a is None else f"shape {a.shape}"
        raise ConfigError(f"{where}{what} must be a list of rows of {width} numbers (shape (N, {width})), got {shape}.")
    if not np.isfinite(a).all():
        raise ConfigError(f"{where}{what} holds non-finite numbers (NaN or infinity); give finite values.")
    return a


def manoeuvre_actions(name: str, frames: int, *, amount: float | None = None) -> np.ndarray:
    """The actions float32 (frames-1, 2) of the named manoeuvre over ``frames`` frames (module docstring)."""
    frames = _check_frames(frames)
    if name not in MANOEUVRES:
        raise ConfigError(f"unknown manoeuvre {name!r}; choose one of: {', '.join(MANOEUVRES)}.")
    a = DEFAULT_AMOUNTS[name] if amount is None else amount
    if not isinstance(a, (int, float, np.floating, np.integer)) or not 0.0 <= float(a) <= 1.0:
        raise ConfigError(f"the amount of manoeuvre {name!r} must be a number in [0, 1], got {amount!r}.")
    n, a = frames - 1, float(a)
    out = np.zeros((n, 2), dtype=np.float32)
    if name in ("left", "right"):
        ramp = np.minimum(1.0, np.arange(1, n + 1) / RAMP_FRAMES)
        out[:, 0] = (1.0 if name == "left" else -1.0) * a * ramp
    else:
        out[:, 1] = -a if name == "stop" else a
    return out


def integrate(
    actions: np.ndarray, speed0: float, cfg: DriveConfig | None = None, *, fps: float = 10.0,
    start: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> np.ndarray:  # fmt: skip
    """The ego trajectory float32 (N+1, 4) of N actions (N, 2) from (x, y, yaw) = ``start`` at speed ``speed0``,
    stepped with the drive world's bicycle model (``cfg``: its parameters, default ``DriveConfig()``) at ``fps``."""
    cfg = cfg or DriveConfig()
    actions = _array(actions, 2, "actions")
    if isinstance(speed0, bool) or not isinstance(speed0, (int, float, np.integer, np.floating)) or not (
        0.0 <= float(speed0) <= cfg.max_speed
    ):
        raise ConfigError(f"the start speed must be in [0, {cfg.max_speed:g}] m/s, got {speed0!r}.")
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) or not 0 < fps < np.inf:
        raise ConfigError(f"fps must be a positive number, got {fps!r}.")
    ego = np.array([*np.asarray(start, dtype=np.float64).reshape(3), speed0], dtype=np.float64)
    out = [ego]
    for action in actions:
        ego = bicycle_step(ego, action, cfg, 1.0 / fps)
        out.append(ego)
    return np.stack(out).astype(np.float32)


def relative_to_first(ego: np.ndarray) -> np.ndarray:
    """A trajectory (T, 4) in the frame of its first state: starts at (0, 0, 0, speed), float32."""
    ego = np.asarray(ego, dtype=np.float64)
    x0, y0, yaw0 = ego[0, :3]
    c, s = np.cos(yaw0), np.sin(yaw0)
    dx, dy = ego[:, 0] - x0, ego[:, 1] - y0
    return np.stack([c * dx + s * dy, -s * dx + c * dy, ego[:, 2] - yaw0, ego[:, 3]], axis=1).astype(np.float32)


def load_trajectory(
    spec: str | Path, frames: int, *, speed0: float = 8.0, fps: float = 10.0, cfg: DriveConfig | None = None,
) -> np.ndarray:  # fmt: skip
    """A trajectory float32 (frames, 4) from ``spec``: a name of ``MANOEUVRES``, a name with an amount in [0, 1]
    (``"right:0.8"``), or a JSON trajectory file (a ``Path``, or a string ending in ``.json``, holding a path
    separator or naming an existing file; format: the module docstring)."""
    frames = _check_frames(frames)
    if isinstance(spec, Path):
        return _load_file(spec, frames, speed0, fps, cfg)
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"a trajectory is a manoeuvre ({', '.join(MANOEUVRES)}) or a JSON file, got {spec!r}.")
    name, sep, amount = spec.strip().partition(":")
    if name in MANOEUVRES:
        value = None
        if sep:
            try:
                value = float(amount)
            except ValueError:
                raise ConfigError(f"trajectory {spec!r}: the amount after ':' must be a number in [0, 1], e.g. "
                                  f"{name}:{DEFAULT_AMOUNTS[name] or 0.5:g}.") from None  # fmt: skip
        return integrate(manoeuvre_actions(name, frames, amount=value), speed0, cfg, fps=fps)
    if spec.endswith(".json") or "/" in spec or "\\" in spec or Path(spec).exists():
        return _load_file(Path(spec), frames, speed0, fps, cfg)
    raise ConfigError(f"unknown trajectory {spec!r}; use one of {', '.join(MANOEUVRES)} (optionally with an amount, "
                      "e.g. left:0.8) or the path of a JSON file.")  # fmt: skip


def _load_file(path: Path, frames: int, speed0: float, fps: float, cfg: DriveConfig | None) -> np.ndarray:
    key, doc = read_keyed_json(path, "trajectory", MANOEUVRES, {"ego": "one [x, y, yaw, speed] per frame",
                                                                 "actions": "one [steer, throttle] per transition"})  # fmt: skip
    keys = [key]
    where = f"{path}: "
    if keys[0] == "ego":
        ego = _array(doc["ego"], 4, '"ego"', where)
        if len(ego) < frames:
            raise ConfigError(f"{path} has {len(ego)} states in \"ego\" but {frames} frames were asked for; it needs at "
                              f"least {frames}.")  # fmt: skip
        if (ego[:, 3] < 0).any():
            raise ConfigError(f"{path}: the speeds (4th column of \"ego\") must be >= 0 m/s.")
        return ego[:frames].astype(np.float32)
    actions = _array(doc["actions"], 2, '"actions"', where)
    if len(actions) < frames - 1:
        raise ConfigError(f"{path} has {len(actions)} actions but {frames} frames need {frames - 1}; add actions.")
    if (np.abs(actions) > 1.0).any():
        raise ConfigError(f"{path}: \"actions\" must be (steer, throttle) pairs within [-1, 1].")
    speed = doc.get("speed", speed0)
    if isinstance(speed, bool) or not isinstance(speed, (int, float)):
        raise ConfigError(f"{path}: \"speed\" must be a number of m/s, got {speed!r}.")
    return integrate(actions[: frames - 1], float(speed), cfg, fps=fps)


def drive_actions(world: DriveWorld, seed: int, actions: np.ndarray) -> dict[str, np.ndarray]:
    """Reset ``world`` to episode ``seed`` and apply ``actions`` (N, 2): the simulator's truth for a commanded
    manoeuvre from the start of that episode. Returns views uint8 (V, N+1, H, W, 3) (view 0 = front), ego float32
    (N+1, 4), c2w float32 (N+1, V, 4, 4) (OpenCV camera-to-world) and intrinsics float32 (V, 3, 3)."""
    if not isinstance(world, DriveWorld):
        raise ConfigError(f"drive_actions needs a DriveWorld, got {type(world).__name__}.")
    actions = _array(actions, 2, "actions")
    world.reset(seed)
    frames, truths = [world.render_views()], [world.truth()]
    for action in actions:
        world.step(action)
        frames.append(world.render_views())
        truths.append(world.truth())
    V = world.num_views
    return {
        "views": np.stack([np.stack([f[v] for f in frames]) for v in range(V)]).astype(np.uint8),
        "ego": np.stack([t["ego"] for t in truths]).astype(np.float32),
        "c2w": np.stack([t["c2w"].reshape(V, 4, 4) for t in truths]).astype(np.float32),
        "intrinsics": truths[0]["intrinsics"].reshape(V, 3, 3).astype(np.float32),
    }
