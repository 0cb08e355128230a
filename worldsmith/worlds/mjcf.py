"""MJCF building blocks for per-episode domain randomisation, shared by every world.

Named colours (so captions can say "the red ball"), object shapes with random sizes, random ground/object
materials from MuJoCo's builtin textures, random lights, look-at cameras, and the ``MJCF`` document they go into.
Everything takes an explicit ``np.random.Generator`` so an episode is a pure function of its seed:

    mj = MJCF("bounce")
    mj.assets += ground_assets(rng, "ground")
    obj = random_object(rng, "obj0")
    mj.assets.append(obj.material_xml(rng))
    mj.worldbody += [tag("geom", type="plane", size=(2, 2, 1), material="ground"), obj.body_xml((0, 0, 0.1))]
    model = mj.compile()

Camera placement maths (look-at frames, jitter, rigs) is in ``camera.py``, caption grammar in ``captions.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from worldsmith.worlds.camera import look_at_xyaxes

# Well-separated, caption-friendly colours (linear RGB in [0, 1]).
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.10, 0.10),
    "green": (0.10, 0.70, 0.15),
    "blue": (0.10, 0.25, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "orange": (1.00, 0.50, 0.05),
    "purple": (0.55, 0.15, 0.75),
    "cyan": (0.10, 0.80, 0.85),
    "pink": (1.00, 0.45, 0.70),
    "white": (0.95, 0.95, 0.95),
    "black": (0.06, 0.06, 0.06),
    "gray": (0.50, 0.50, 0.50),
    "brown": (0.45, 0.28, 0.12),
}

# Shape name (used in captions) -> MuJoCo geom type.
SHAPES: dict[str, str] = {
    "cube": "box",
    "block": "box",  # an elongated box
    "ball": "sphere",
    "cylinder": "cylinder",
    "capsule": "capsule",
}
ROLLING_SHAPES = ("ball", "cylinder", "capsule")


def fmt(values: Sequence[float]) -> str:
    """Numbers as an MJCF attribute string: ``(1, 0.5) -> "1 0.5"``."""
    return " ".join(f"{float(v):.6g}" for v in values)


def tag(element: str, children: str = "", /, **attrs) -> str:
    """An MJCF element: ``tag("geom", type="box", size=(1, 2, 3)) -> '<geom type="box" size="1 2 3"/>'``.

    Sequences become space-separated numbers, floats are written with 6 significant digits.
    """
    text = []
    for key, value in attrs.items():
        if isinstance(value, (list, tuple, np.ndarray)):
            value = fmt(value)
        elif isinstance(value, (float, np.floating)):
            value = f"{float(value):.6g}"
        text.append(f' {key}="{value}"')
    head = f"<{element}{''.join(text)}"
    return f"{head}>{children}</{element}>" if children else f"{head}/>"


def random_color(
    rng: np.random.Generator, exclude: Sequence[str] = ()
) -> tuple[str, tuple[float, float, float, float]]:
    """A random named colour not in ``exclude`` (falls back to any colour if all are excluded): (name, rgba)."""
    names = [n for n in COLORS if n not in exclude] or list(COLORS)
    name = names[int(rng.integers(len(names)))]
    return name, (*COLORS[name], 1.0)


def distinct_colors(rng: np.random.Generator, n: int, exclude: Sequence[str] = ()) -> list[str]:
    """``n`` different colour names (repeats only once the palette is exhausted)."""
    names = [c for c in COLORS if c not in exclude] or list(COLORS)
    order = list(rng.permutation(len(names)))
    while len(order) < n:
        order += list(rng.permutation(len(names)))
    return [names[i] for i in order[:n]]


def random_muted_rgb(rng: np.random.Generator, lo: float = 0.2, hi: float = 0.8) -> np.ndarray:
    """A random unnamed colour for backgrounds: saturation kept low so named objects stand out."""
    grey = rng.uniform(lo, hi)
    return np.clip(grey + rng.uniform(-0.12, 0.12, size=3), 0.0, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# objects
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class ObjectSpec:
    """One randomised rigid object: a body named ``name`` holding one geom ``{name}_geom``."""

    name: str
    shape: str  # key of SHAPES
    color: str  # key of COLORS
    size: tuple[float, ...]  # MuJoCo geom size (half extents / radius, half length)
    density: float = 500.0  # kg/m^3

    @property
    def rgba(self) -> tuple[float, float, float, float]:
        return (*COLORS[self.color], 1.0)

    @property
    def description(self) -> str:
        """Caption phrase, e.g. ``"red ball"``."""
        return f"{self.color} {self.shape}"

    @property
    def half_height(self) -> float:
        """Half of the object's vertical extent in its rest pose (the z of its centre when resting on z=0)."""
        gtype = SHAPES[self.shape]
        if gtype == "box":
            return self.size[2]
        if gtype == "sphere":
            return self.size[0]
        if gtype == "cylinder":
            return self.size[1]
        return self.size[0] + self.size[1]  # capsule

    @property
    def radius(self) -> float:
        """Horizontal bounding radius (for placing objects without overlap)."""
        gtype = SHAPES[self.shape]
        if gtype == "box":
            return float(np.hypot(self.size[0], self.size[1]))
        return self.size[0]

    def material_xml(self, rng: np.random.Generator | None = None) -> str:
        """An MJCF ``<material>`` (plus texture) named ``{name}_mat``; with ``rng``, a random finish/pattern.

        Patterns mix the named colour with a slightly darker shade so the caption colour stays dominant.
        """
        rgb = np.array(COLORS[self.color])
        if rng is None or rng.random() < 0.5:
            spec, shine = (0.3, 0.3) if rng is None else (rng.uniform(0.0, 0.6), rng.uniform(0.0, 0.8))
            return tag("material", name=f"{self.name}_mat", rgba=self.rgba, specular=spec, shininess=shine)
        dark = rgb * rng.uniform(0.55, 0.8)
        builtin = ("checker", "gradient")[int(rng.integers(2))]
        return (
            f'<texture name="{self.name}_tex" type="cube" builtin="{builtin}" rgb1="{fmt(rgb)}" rgb2="{fmt(dark)}" '
            f'width="32" height="32"/>'
            f'<material name="{self.name}_mat" texture="{self.name}_tex" specular="{rng.uniform(0.0, 0.5):.3g}"/>'
        )

    def geom_xml(self, **attrs: str) -> str:
        extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
        return (
            f'<geom name="{self.name}_geom" type="{SHAPES[self.shape]}" size="{fmt(self.size)}" '
            f'material="{self.name}_mat" density="{self.density:.6g}"{extra}/>'
        )

    def body_xml(
        self, pos: Sequence[float], *, free: bool = True, quat: Sequence[float] | None = None, **geom_attrs: str
    ) -> str:
        """A body at ``pos`` with a free joint ``{name}_joint`` (or fixed when ``free=False``)."""
        q = f' quat="{fmt(quat)}"' if quat is not None else ""
        joint = f'<freejoint name="{self.name}_joint"/>' if free else ""
        return f'<body name="{self.name}" pos="{fmt(pos)}"{q}>{joint}{self.geom_xml(**geom_attrs)}</body>'


def random_object(
    rng: np.random.Generator,
    name: str,
    *,
    shapes: Sequence[str] = tuple(SHAPES),
    scale: tuple[float, float] = (0.04, 0.08),
    color: str | None = None,
    exclude_colors: Sequence[str] = (),
    density: float = 500.0,
) -> ObjectSpec:
    """A random object; ``scale`` bounds its characteristic half size in metres."""
    shape = shapes[int(rng.integers(len(shapes)))]
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")
    s = float(rng.uniform(*scale))
    if shape == "cube":
        size: tuple[float, ...] = (s, s, s)
    elif shape == "block":
        size = (s * rng.uniform(1.4, 2.0), s * rng.uniform(0.6, 0.9), s * rng.uniform(0.6, 0.9))
    elif shape == "ball":
        size = (s,)
    elif shape == "cylinder":
        size = (s, s * rng.uniform(0.6, 1.2))
    else:  # capsule
        size = (s * 0.8, s * rng.uniform(0.5, 1.0))
    color = color or random_color(rng, exclude_colors)[0]
    return ObjectSpec(name=name, shape=shape, color=color, size=size, density=density)


# ---------------------------------------------------------------------------------------------------------------
# ground, lights, camera elements
# ---------------------------------------------------------------------------------------------------------------
GROUND_KINDS = {"checker": "checkered", "gradient": "shaded", "flat": "plain", "grid": "tiled"}  # kind -> caption word


def ground_assets(
    rng: np.random.Generator, name: str = "ground", *, repeat: float = 4.0, kind: str | None = None
) -> list[str]:
    """A 2-D texture (``kind`` from GROUND_KINDS, random if None) in random colours and the material ``name``."""
    kind = kind or list(GROUND_KINDS)[int(rng.integers(len(GROUND_KINDS)))]
    rgb1 = random_muted_rgb(rng)
    rgb2 = np.clip(rgb1 * rng.uniform(0.6, 0.85) + rng.uniform(-0.05, 0.05, size=3), 0.0, 1.0)
    if kind == "grid":
        tex = (
            f'<texture name="{name}_tex" type="2d" builtin="flat" rgb1="{fmt(rgb1)}" rgb2="{fmt(rgb2)}" '
            f'mark="edge" markrgb="{fmt(rgb2)}" width="64" height="64"/>'
        )
    elif kind in GROUND_KINDS:
        tex = (
            f'<texture name="{name}_tex" type="2d" builtin="{kind}" rgb1="{fmt(rgb1)}" rgb2="{fmt(rgb2)}" '
            f'width="64" height="64"/>'
        )
    else:
        raise ValueError(f"unknown ground kind {kind!r}; choose from {', '.join(GROUND_KINDS)}")
    r = repeat * rng.uniform(0.7, 1.4)
    mat = (
        f'<material name="{name}" texture="{name}_tex" texrepeat="{r:.3g} {r:.3g}" texuniform="true" '
        f'specular="{rng.uniform(0.0, 0.3):.3g}" reflectance="0"/>'
    )
    return [tex, mat]


def square_walls(half: float, thickness: float, height: float, material: str) -> list[str]:
    """Four box walls ``wall0..3`` of half height ``height`` whose inner faces enclose the square [-half, half]^2."""
    t, long = thickness, half + 2 * thickness
    boxes = [(half + t, 0, t, long), (-half - t, 0, t, long), (0, half + t, half, t), (0, -half - t, half, t)]
    return [
        tag("geom", name=f"wall{i}", type="box", pos=(x, y, height), size=(sx, sy, height), material=material)
        for i, (x, y, sx, sy) in enumerate(boxes)
    ]


def random_lights(rng: np.random.Generator, *, n: tuple[int, int] = (1, 3), height: float = 3.0) -> list[str]:
    """1-3 directional lights from random directions above the scene, random intensity and tint, no shadows."""
    lights = []
    count = int(rng.integers(n[0], n[1] + 1))
    for i in range(count):
        azim = rng.uniform(0, 2 * np.pi)
        elev = rng.uniform(np.deg2rad(35), np.deg2rad(85))
        d = -np.array([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev)])
        pos = -d * height
        diffuse = np.clip(rng.uniform(0.4, 0.8) / np.sqrt(count) + rng.uniform(-0.05, 0.05, size=3), 0.0, 1.0)
        lights.append(
            f'<light name="light{i}" directional="true" castshadow="false" pos="{fmt(pos)}" dir="{fmt(d)}" '
            f'diffuse="{fmt(diffuse)}" specular="0.1 0.1 0.1"/>'
        )
    return lights


def headlight_xml(rng: np.random.Generator | None = None) -> str:
    """The ``<visual>`` headlight (ambient + diffuse), random in strength when ``rng`` is given."""
    amb = 0.35 if rng is None else rng.uniform(0.25, 0.45)
    dif = 0.35 if rng is None else rng.uniform(0.2, 0.45)
    return tag("headlight", ambient=(amb, amb, amb), diffuse=(dif, dif, dif), specular=(0, 0, 0))


def camera_xml(name: str, pos: Sequence[float], target: Sequence[float], fovy: float, *, mode: str = "fixed") -> str:
    R = look_at_xyaxes(pos, target)
    return tag("camera", name=name, mode=mode, pos=pos, xyaxes=R[:, :2].T.ravel(), fovy=float(fovy))


# ---------------------------------------------------------------------------------------------------------------
# document
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class MJCF:
    """An MJCF document assembled from string pieces; ``compile()`` returns the ``mujoco.MjModel``."""

    name: str
    timestep: float = 0.002
    integrator: str = "implicitfast"
    gravity: tuple[float, float, float] = (0.0, 0.0, -9.81)
    headlight: str = field(default_factory=headlight_xml)
    offscreen: tuple[int, int] = (64, 64)  # (width, height) of the offscreen buffer (grown by the renderer)
    option_extra: str = ""  # raw children of <option> (e.g. '<flag contact="disable"/>')
    assets: list[str] = field(default_factory=list)
    worldbody: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)  # top-level extras: <actuator>, <contact>, <default> ...

    def xml(self) -> str:
        w, h = self.offscreen
        return (
            f'<mujoco model="{self.name}">'
            f'<option timestep="{self.timestep:.6g}" integrator="{self.integrator}" gravity="{fmt(self.gravity)}">'
            f"{self.option_extra}</option>"
            f'<visual><global offwidth="{w}" offheight="{h}"/><quality shadowsize="0"/>{self.headlight}</visual>'
            f"<asset>{''.join(self.assets)}</asset>"
            f"<worldbody>{''.join(self.worldbody)}</worldbody>"
            f"{''.join(self.sections)}"
            f"</mujoco>"
        )

    def compile(self):
        import mujoco

        return mujoco.MjModel.from_xml_string(self.xml())
