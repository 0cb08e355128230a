"""Camera paths for camera-controlled video generation: named moves, splines through keyframes, JSON files.

A path is a float64 array (T, 4, 4) of OpenCV camera-to-world poses (camera axes: x right, y DOWN, z forward along
the optical axis; the camera's up is -y) expressed relative to its first camera: ``c2w[0] = I``, and the translation
of ``c2w[t]`` is where camera t is, in metres, in the first camera's frame. A model generates a video along such a
path from a first frame; ``OrbitWorld.render_path`` renders the same path in the simulator for ground truth.

Ways to make one:

* ``named_path("orbit_left", 25, amount=45)`` -- one of ``NAMED`` (see ``named_path`` for what each does), eased so
  the motion starts and ends slowly;
* ``spline_path(keyframes, 25)`` -- smooth through a few keyframe poses;
* ``load_path(spec, 25)`` -- ``spec`` is a name (``"dolly_in"``), a name with an amount (``"orbit_left:45"``:
  degrees for orbits, pans and tilts, metres for dollies and cranes) or the path of a JSON file;
* ``reverse_path`` and ``speed_up`` transform a path.

JSON camera-path files (one of the two keys; each pose is a 4 x 4 nested list, rows first, last row 0 0 0 1, the
3 x 3 top-left block a rotation; any frame of reference: the path is re-expressed relative to its first pose)::

    {"c2w": [[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], ...]}
        one pose per frame, used as is: the file needs at least as many poses as frames asked for (extra poses
        at the end are dropped).
    {"keyframes": [[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], ...]}
        two or more keyframe poses; the path goes through them smoothly (``spline_path``), any number of frames.

Rotations in a file may be off orthonormal by up to 1e-3 (rounded numbers); they are snapped to the nearest rotation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from worldsmith.errors import ConfigError

NAMED = ("orbit_left", "orbit_right", "dolly_in", "dolly_out", "pan_left", "pan_right", "tilt_up", "tilt_down",
         "crane_up", "crane_down", "static")  # fmt: skip

# name -> (kind, OpenCV camera axis, sign, default amount); kind "orbit"/"rotate" amounts are degrees about the
# axis (right-handed), "move" amounts are metres along it.
_MOVES = {
    "orbit_left": ("orbit", (0, 1, 0), 1, 30.0),  # R_y(+a) about the centre: the camera goes to its -x
    "orbit_right": ("orbit", (0, 1, 0), -1, 30.0),
    "dolly_in": ("move", (0, 0, 1), 1, 0.8),
    "dolly_out": ("move", (0, 0, 1), -1, 0.8),
    "pan_left": ("rotate", (0, 1, 0), -1, 25.0),  # R_y(-a): the optical axis turns toward -x
    "pan_right": ("rotate", (0, 1, 0), 1, 25.0),
    "tilt_up": ("rotate", (1, 0, 0), 1, 15.0),  # R_x(+a): the optical axis turns toward -y (up)
    "tilt_down": ("rotate", (1, 0, 0), -1, 15.0),
    "crane_up": ("move", (0, 1, 0), -1, 0.6),  # up is -y
    "crane_down": ("move", (0, 1, 0), 1, 0.6),
    "static": ("move", (0, 0, 0), 0, 0.0),
}
DEFAULT_AMOUNTS = {name: spec[3] for name, spec in _MOVES.items()}  # degrees (orbit, pan, tilt) or metres
UNITS = {name: "degrees" if spec[0] != "move" else "metres" for name, spec in _MOVES.items()}
RIGID_TOL = 1e-3  # how far a file's rotation block may be from orthonormal


# -- small SO(3) / SE(3) helpers (numpy only) ---------------------------------------------------------------------
def _skew(w: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])


def _exp(w: np.ndarray) -> np.ndarray:
    """Rotation vector (3,) -> rotation matrix (3, 3) (Rodrigues)."""
    th = float(np.linalg.norm(w))
    W = _skew(w)
    if th < 1e-8:
        return np.eye(3) + W + 0.5 * W @ W
    return np.eye(3) + np.sin(th) / th * W + (1.0 - np.cos(th)) / th**2 * W @ W


def _quat(R: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion (w, x, y, z) with w >= 0 (Shepperd's method: accurate at every angle)."""
    tr = np.trace(R)
    i = int(np.argmax([tr, R[0, 0], R[1, 1], R[2, 2]]))
    if i == 0:
        s = 2.0 * np.sqrt(1.0 + tr)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    else:
        a, b, c = (i - 1, i % 3, (i + 1) % 3)
        s = 2.0 * np.sqrt(1.0 + R[a, a] - R[b, b] - R[c, c])
        q = np.empty(4)
        q[0] = (R[c, b] - R[b, c]) / s
        q[1 + a], q[1 + b], q[1 + c] = 0.25 * s, (R[a, b] + R[b, a]) / s, (R[a, c] + R[c, a]) / s
    q = np.asarray(q, dtype=np.float64)
    return q if q[0] >= 0 else -q


def _log(R: np.ndarray) -> np.ndarray:
    """Rotation matrix -> rotation vector (3,), angle in [0, pi]."""
    q = _quat(R)
    s = float(np.linalg.norm(q[1:]))
    if s < 1e-12:
        return 2.0 * q[1:]
    return 2.0 * np.arctan2(s, q[0]) * q[1:] / s


def rotation_angle(R: np.ndarray) -> float:
    """Angle (radians, in [0, pi]) of a rotation matrix (3, 3) or of a pose's rotation block (4, 4)."""
    return float(np.linalg.norm(_log(np.asarray(R, dtype=np.float64)[:3, :3])))


def _slerp(R0: np.ndarray, R1: np.ndarray, t: float) -> np.ndarray:
    return R0 @ _exp(t * _log(R0.T @ R1))


def _screw_V(w: np.ndarray) -> np.ndarray:
    """The matrix V of SE(3)'s exponential: exp([w, u]) has translation V(w) @ u."""
    th = float(np.linalg.norm(w))
    W = _skew(w)
    if th < 1e-4:
        a, b = 0.5 - th**2 / 24.0, 1.0 / 6.0 - th**2 / 120.0
    else:
        a, b = (1.0 - np.cos(th)) / th**2, (th - np.sin(th)) / th**3
    return np.eye(3) + a * W + b * W @ W


def _pose(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def _rigid_inv(T: np.ndarray) -> np.ndarray:
    R = T[:3, :3]
    return _pose(R.T, -R.T @ T[:3, 3])


def _as_poses(c2w, what: str = "camera path") -> np.ndarray:
    a = np.asarray(c2w, dtype=np.float64)
    if a.ndim != 3 or a.shape[1:] != (4, 4) or len(a) == 0:
        raise ConfigError(f"a {what} must be an array of 4 x 4 poses of shape (T, 4, 4) with T >= 1, got shape "
                          f"{a.shape}.")  # fmt: skip
    return a


def _check_frames(frames) -> int:
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ConfigError(f"a camera path needs a whole number of frames >= 1, got frames={frames!r}.")
    return int(frames)


# -- paths --------------------------------------------------------------------------------------------------------
def relative(c2w: np.ndarray) -> np.ndarray:
    """Re-express poses (T, 4, 4) relative to the first: ``inv(c2w[0]) @ c2w`` (so the result starts at I)."""
    a = _as_poses(c2w)
    out = _rigid_inv(a[0])[None] @ a
    out[0] = np.eye(4)
    return out


def ease(frames: int) -> np.ndarray:
    """Cosine easing (frames,): ``s(i) = (1 - cos(pi i / (frames - 1))) / 2``, 0 -> 1 starting and ending slowly."""
    frames = _check_frames(frames)
    if frames == 1:
        return np.zeros(1)
    return 0.5 - 0.5 * np.cos(np.pi * np.arange(frames) / (frames - 1))


def named_path(name: str, frames: int, *, amount: float | None = None, distance: float = 2.5) -> np.ndarray:
    """The named camera move ``name`` (one of ``NAMED``) as a relative path (frames, 4, 4), eased with ``ease``.

    In the first camera's terms (x right, y down, z forward; its up is -y), with ``amount`` defaulting to
    ``DEFAULT_AMOUNTS[name]`` (a negative amount moves the other way):

    * ``orbit_left`` / ``orbit_right``: the camera travels along a circle around the point ``distance`` metres ahead
      on its optical axis, ``(0, 0, distance)``, about the axis through that point parallel to its up (-y) axis,
      turning so that the point stays at the image centre; left = the camera moves toward its -x (its left), so
      the view turns right. ``amount``: degrees travelled round the circle (default 30).
    * ``dolly_in`` / ``dolly_out``: move forward (+z) / backward (-z) by ``amount`` metres (default 0.8).
    * ``pan_left`` / ``pan_right``: turn in place about the vertical (-y) axis; left = the optical axis turns toward
      -x (the view turns left). ``amount`` degrees (default 25).
    * ``tilt_up`` / ``tilt_down``: turn in place about the x axis; up = the optical axis turns toward -y.
      ``amount`` degrees (default 15).
    * ``crane_up`` / ``crane_down``: move up (-y) / down (+y) by ``amount`` metres without turning (default 0.6).
    * ``static``: the identity at every frame.

    ``distance`` (metres, > 0) only matters to orbits.
    """
    if name not in _MOVES:
        raise ConfigError(f"unknown camera path {name!r}; use one of {', '.join(NAMED)} (or a JSON file).")
    frames = _check_frames(frames)
    kind, axis, sign, default = _MOVES[name]
    amount = default if amount is None else float(amount)
    if not np.isfinite(amount):
        raise ConfigError(f"the amount of camera path {name!r} must be a finite number, got {amount!r}.")
    if not (np.isfinite(distance) and distance > 0):
        raise ConfigError(f"the orbit distance must be a positive number of metres, got {distance!r}.")
    s, axis = ease(frames), np.asarray(axis, dtype=np.float64)
    out = np.repeat(np.eye(4)[None], frames, axis=0)
    for i, si in enumerate(s):
        if kind == "move":
            out[i, :3, 3] = sign * amount * si * axis
            continue
        R = _exp(sign * np.deg2rad(amount) * si * axis)
        centre = np.array([0.0, 0.0, distance]) if kind == "orbit" else np.zeros(3)
        out[i, :3, :3], out[i, :3, 3] = R, centre - R @ centre  # turn about the centre
    out[0] = np.eye(4)
    return out


def spline_path(keyframes, frames: int) -> np.ndarray:
    """A smooth relative path (frames, 4, 4) through ``keyframes`` (a list or array of >= 2 c2w poses (4, 4)).

    The keyframes are first re-expressed relative to the first one. Positions follow a uniform Catmull-Rom spline
    through the keyframe positions (the ends extended linearly: two keyframes give a straight line); rotations are
    slerped between consecutive keyframes (shortest way). Frames are spaced uniformly in the keyframe parameter
    u in [0, K - 1]: frame 0 is keyframe 0, the last frame the last keyframe, and keyframe k is hit exactly when
    k (frames - 1) / (K - 1) is a whole number.
    """
    frames = _check_frames(frames)
    keys = np.asarray(keyframes, dtype=np.float64)
    if keys.ndim != 3 or keys.shape[1:] != (4, 4) or len(keys) < 2:
        raise ConfigError(f"a spline camera path needs at least 2 keyframe poses of shape (4, 4), got an array of "
                          f"shape {keys.shape}; add keyframes or use a named path.")  # fmt: skip
    keys = relative(keys)
    n, P = len(keys), keys[:, :3, 3]
    ext = np.concatenate([2 * P[:1] - P[1:2], P, 2 * P[-1:] - P[-2:-1]])  # phantom ends: P[-1], P[n]
    out = np.repeat(np.eye(4)[None], frames, axis=0)
    for i, u in enumerate(np.linspace(0.0, n - 1, frames) if frames > 1 else [0.0]):
        j = min(int(np.floor(u)), n - 2)
        t = u - j
        p0, p1, p2, p3 = ext[j], ext[j + 1], ext[j + 2], ext[j + 3]
        pos = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                     + (3 * p1 - p0 - 3 * p2 + p3) * t**3)  # fmt: skip
        R0, R1 = keys[j, :3, :3], keys[j + 1, :3, :3]
        R = R0 if t == 0 else R1 if t == 1 else _slerp(R0, R1, t)
        out[i] = _pose(R, pos)
    out[0] = np.eye(4)
    return out


def reverse_path(c2w: np.ndarray) -> np.ndarray:
    """The same poses in reverse order, re-expressed relative to the new first (the old last) pose."""
    return relative(_as_poses(c2w)[::-1])


def speed_up(c2w: np.ndarray, factor: float, *, screw: bool = True) -> np.ndarray:
    """The same motion traversed ``factor`` times as far in the same number of frames (a relative path).

    Each pose relative to the first is scaled through the log map: its rotation angle is multiplied by ``factor``
    (about the same axis; angles are unwrapped along the path, so a path may end up turning past 180 degrees).
    With ``screw=True`` (default) the whole rigid motion is scaled as a screw motion (SE(3) log map): an orbit stays
    on its circle (``speed_up(orbit_left 30 deg, 2)`` is ``orbit_left`` 60 deg), a pure translation or pure
    rotation is scaled plainly. With ``screw=False`` the translations are scaled linearly instead (an orbit's chord,
    not its arc; the orbit centre then drifts off the image centre).
    """
    if not np.isfinite(factor):
        raise ConfigError(f"speed_up needs a finite factor, got {factor!r}.")
    rel = relative(c2w)
    out, prev = np.repeat(np.eye(4)[None], len(rel), axis=0), np.zeros(3)
    for i in range(1, len(rel)):
        w = _log(rel[i, :3, :3])
        th = float(np.linalg.norm(w))
        if th > 1e-9:  # unwrap: of w's equivalents w + 2 pi k w/|w|, the nearest the previous frame's
            cands = [w * (th + 2 * np.pi * k) / th for k in (-1, 0, 1)]
            w = min(cands, key=lambda c: float(np.linalg.norm(c - prev)))
        prev = w
        t = rel[i, :3, 3]
        if screw:
            V = _screw_V(w)
            if np.linalg.cond(V) > 1e8:  # a whole turn: the screw axis is undefined; fall back to linear
                t_new = factor * t
            else:
                t_new = _screw_V(factor * w) @ (factor * np.linalg.solve(V, t))
        else:
            t_new = factor * t
        out[i] = _pose(_exp(factor * w), t_new)
    return out


# -- specs and files ----------------------------------------------------------------------------------------------
def _read_poses(value, key: str, path: Path) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: {key!r} must be a list of 4 x 4 numeric matrices (rows first); fix the file."
                          ) from None  # fmt: skip
    if a.ndim != 3 or a.shape[1:] != (4, 4) or len(a) == 0:
        raise ConfigError(f"{path}: {key!r} must be a list of 4 x 4 matrices (shape (N, 4, 4)), got shape "
                          f"{a.shape}; write each pose as 4 rows of 4 numbers.")  # fmt: skip
    if not np.isfinite(a).all():
        raise ConfigError(f"{path}: {key!r} holds non-finite numbers (NaN or infinity); fix the file.")
    bottom = np.abs(a[:, 3] - [0, 0, 0, 1]).max(axis=1)
    if (bottom > 1e-6).any():
        i = int(np.argmax(bottom > 1e-6))
        raise ConfigError(f"{path}: pose {i} of {key!r} is not a rigid transform: its last row must be 0 0 0 1.")
    R = a[:, :3, :3]
    err = np.abs(np.swapaxes(R, 1, 2) @ R - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(R)
    bad = (err > RIGID_TOL) | (det < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ConfigError(f"{path}: pose {i} of {key!r} is not a rigid transform: its 3 x 3 rotation block is not "
                          f"orthonormal with determinant +1 (error {err[i]:.2g}, det {det[i]:.3g}, tolerance "
                          f"{RIGID_TOL:g}); write camera-to-world poses with a pure rotation (no scale, no mirror)."
                          )  # fmt: skip
    U, _, Vt = np.linalg.svd(R)
    a[:, :3, :3] = U @ Vt  # snap to the nearest rotation
    return a


def read_keyed_json(path: Path, what: str, names, keys: dict[str, str]) -> tuple[str, dict]:
    """A JSON file holding an object with exactly one of ``keys`` (key -> what it holds): (that key, the object).
    ``what`` names the file's kind and ``names`` the named alternatives, for the errors."""
    if not path.is_file():
        raise ConfigError(f"{what} file {str(path)!r} does not exist; give an existing JSON file or one of "
                          f"{', '.join(names)}.")  # fmt: skip
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        forms = " or ".join(f'{{"{k}": [...]}}' for k in keys)
        raise ConfigError(f"{path} is not valid JSON ({e}); write {forms}.") from None
    found = [k for k in keys if isinstance(doc, dict) and k in doc]
    if len(found) != 1:
        described = " or ".join(f'"{k}" ({v})' for k, v in keys.items())
        raise ConfigError(f"{path} must be a JSON object with exactly one of the keys {described}.")
    return found[0], doc


def load_file(path: str | Path, frames: int) -> np.ndarray:
    """A relative path (frames, 4, 4) from a JSON camera-path file (format: this module's docstring)."""
    frames, path = _check_frames(frames), Path(path)
    key, doc = read_keyed_json(path, "camera path", NAMED, {"c2w": "one pose per frame",
                                                            "keyframes": "poses to spline through"})  # fmt: skip
    keys = [key]
    poses = _read_poses(doc[keys[0]], keys[0], path)
    if keys[0] == "keyframes":
        if len(poses) < 2:
            raise ConfigError(f"{path}: \"keyframes\" needs at least 2 poses, got {len(poses)}; add a keyframe.")
        return spline_path(poses, frames)
    if len(poses) < frames:
        raise ConfigError(f"{path} has {len(poses)} poses in \"c2w\" but {frames} frames were asked for; it needs at "
                          f"least {frames} poses (or use \"keyframes\" to spline through fewer).")  # fmt: skip
    return relative(poses[:frames])


def load_path(spec: str | Path, frames: int, *, distance: float = 2.5) -> np.ndarray:
    """A relative path (frames, 4, 4) from ``spec``: a name of ``NAMED``, a name with an amount (``"orbit_left:45"``;
    degrees or metres as ``UNITS`` says), or the path of a JSON camera-path file (a ``Path``, or a string that is
    not a name: ending in ``.json``, holding a path separator or naming an existing file)."""
    frames = _check_frames(frames)
    if isinstance(spec, Path):
        return load_file(spec, frames)
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"a camera path is a name ({', '.join(NAMED)}) or a JSON file, got {spec!r}.")
    name, sep, amount = spec.strip().partition(":")
    if name in _MOVES:
        if not sep:
            return named_path(name, frames, distance=distance)
        try:
            value = float(amount)
        except ValueError:
            raise ConfigError(f"camera path {spec!r}: the amount after ':' must be a number of {UNITS[name]}, e.g. "
                              f"{name}:{DEFAULT_AMOUNTS[name]:g}.") from None  # fmt: skip
        return named_path(name, frames, amount=value, distance=distance)
    if spec.endswith(".json") or "/" in spec or "\\" in spec or Path(spec).exists():
        return load_file(spec, frames)
    raise ConfigError(f"unknown camera path {spec!r}; use one of {', '.join(NAMED)} (optionally with an amount, "
                      "e.g. orbit_left:45) or the path of a JSON file.")  # fmt: skip
