"""Road geometry for the drive world: a closed centreline, lane queries, and the MJCF meshes and vehicles.

The centreline is a closed polyline sampled every ~1 m and traversed counter-clockwise; arc length ``s`` wraps
around. A lateral ``offset`` is measured to the left of the direction of travel (increasing ``s``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldsmith.worlds import mjcf


@dataclass
class Road:
    kind: str  # "stadium" or "wavy"
    points: np.ndarray  # (M, 2) centreline, closed (the last point connects to the first)
    lane_width: float

    def __post_init__(self) -> None:
        seg = np.roll(self.points, -1, axis=0) - self.points
        self.ds = float(np.linalg.norm(seg, axis=1).mean())
        self.length = self.ds * len(self.points)
        tangent = np.roll(self.points, -1, axis=0) - np.roll(self.points, 1, axis=0)
        self.tangents = tangent / np.linalg.norm(tangent, axis=1, keepdims=True)  # (M, 2) unit
        heading = np.unwrap(np.arctan2(self.tangents[:, 1], self.tangents[:, 0]))
        turn = np.diff(np.append(heading, heading[0] + 2 * np.pi))  # a CCW loop turns 2 pi in all
        self.curvatures = np.abs((turn + np.roll(turn, 1)) / (2 * self.ds))  # (M,) 1/m
        self.extent = float(np.abs(self.points).max()) + 2 * self.lane_width

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def random(cls, rng: np.random.Generator, lane_width: float = 3.5, min_radius: float = 18.0) -> "Road":
        if rng.random() < 0.5:
            a, r = rng.uniform(30, 60), rng.uniform(25, 40)  # half straight length, bend radius
            return cls("stadium", _resample(_stadium(a, r)), lane_width)
        r0 = rng.uniform(45, 70)
        amp = np.array([rng.uniform(0, 0.15), rng.uniform(0, 0.08)])
        phase = rng.uniform(0, 2 * np.pi, size=2)
        for _ in range(10):  # soften the wiggles until every bend is drivable
            th = np.linspace(0, 2 * np.pi, 4000, endpoint=False)
            rad = r0 * (1 + amp[0] * np.cos(2 * th + phase[0]) + amp[1] * np.cos(3 * th + phase[1]))
            road = cls("wavy", _resample(np.stack([rad * np.cos(th), rad * np.sin(th)], 1)), lane_width)
            if road.curvatures.max() < 1.0 / min_radius:
                break
            amp *= 0.6
        return road

    # -- queries -----------------------------------------------------------------------------------------------
    def point(self, s: float, offset: float = 0.0) -> tuple[float, float, float]:
        """(x, y, heading) at arc length ``s``, ``offset`` metres to the left of the centreline."""
        u = (s % self.length) / self.ds
        i0 = int(u) % len(self.points)
        i1, w = (i0 + 1) % len(self.points), u - int(u)
        p = (1 - w) * self.points[i0] + w * self.points[i1]
        t = (1 - w) * self.tangents[i0] + w * self.tangents[i1]
        t /= np.linalg.norm(t)
        x, y = p + offset * np.array([-t[1], t[0]])
        return float(x), float(y), float(np.arctan2(t[1], t[0]))

    def project(self, xy: np.ndarray) -> float:
        """Arc length of the centreline point nearest to ``xy`` (refined on the nearest segment)."""
        i = int(np.argmin(((self.points - xy) ** 2).sum(axis=1)))
        t = self.tangents[i]
        return float((i * self.ds + np.dot(xy - self.points[i], t)) % self.length)

    def distance(self, xy: np.ndarray) -> float:
        return float(np.sqrt(((self.points - xy) ** 2).sum(axis=1).min()))

    def curvature(self, s: float) -> float:
        return float(self.curvatures[int((s % self.length) / self.ds) % len(self.points)])


def _stadium(a: float, r: float) -> np.ndarray:
    """Dense CCW stadium: straights of length 2a joined by half circles of radius r."""
    n_s, n_c = int(20 * a), int(10 * np.pi * r)
    xs = np.linspace(-a, a, n_s, endpoint=False)
    th = np.linspace(-np.pi / 2, np.pi / 2, n_c, endpoint=False)
    return np.concatenate([
        np.stack([xs, np.full(n_s, -r)], 1),
        np.stack([a + r * np.cos(th), r * np.sin(th)], 1),
        np.stack([-xs, np.full(n_s, r)], 1),
        np.stack([-a - r * np.cos(th), -r * np.sin(th)], 1),
    ])  # fmt: skip


def _resample(dense: np.ndarray, spacing: float = 1.0) -> np.ndarray:
    """Closed polyline -> points evenly spaced by about ``spacing`` metres of arc length."""
    closed = np.vstack([dense, dense[:1]])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    n = max(8, int(round(s[-1] / spacing)))
    q = np.linspace(0, s[-1], n, endpoint=False)
    return np.stack([np.interp(q, s, closed[:, 0]), np.interp(q, s, closed[:, 1])], 1)


# ---------------------------------------------------------------------------------------------------------------
# MJCF
# ---------------------------------------------------------------------------------------------------------------
def _strip(road: Road, lo: float, hi: float, z: float, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (2M, 3) and faces (F, 3) of a band between lateral offsets ``lo`` < ``hi`` along the loop;
    ``keep[i]`` says whether the quad from point i to i + 1 is drawn (dashes)."""
    normals = np.stack([-road.tangents[:, 1], road.tangents[:, 0]], 1)
    right = road.points + lo * normals
    left = road.points + hi * normals
    verts = np.empty((2 * len(road.points), 3))
    verts[0::2, :2], verts[1::2, :2], verts[:, 2] = right, left, z
    m = len(road.points)
    i = np.arange(m) if keep is None else np.flatnonzero(keep)
    r0, l0, r1, l1 = 2 * i, 2 * i + 1, (2 * i + 2) % (2 * m), (2 * i + 3) % (2 * m)
    faces = np.concatenate([np.stack([r0, r1, l1], 1), np.stack([r0, l1, l0], 1)])  # counter-clockwise from above
    return verts, faces


def _mesh_xml(name: str, verts: np.ndarray, faces: np.ndarray, rgb: np.ndarray) -> tuple[list[str], str]:
    used = np.unique(faces)
    remap = np.full(len(verts), -1)
    remap[used] = np.arange(len(used))
    faces_text = " ".join(map(str, remap[faces].ravel()))
    asset = [
        mjcf.tag("mesh", name=name, inertia="shell", vertex=verts[used].ravel(), face=faces_text),
        mjcf.tag("material", name=f"{name}_mat", rgba=(*rgb, 1), specular=0.05),
    ]
    return asset, mjcf.tag("geom", name=name, type="mesh", mesh=name, material=f"{name}_mat")


def road_meshes(road: Road, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Assets and geoms of the asphalt (two lanes + shoulders), the white edge lines and the dashed yellow centre."""
    w = road.lane_width
    asphalt = np.full(3, rng.uniform(0.18, 0.35)) + rng.uniform(-0.02, 0.02, size=3)
    parts = [("asphalt", *_strip(road, -w - 0.6, w + 0.6, 0.01), asphalt)]
    edge_v, edge_f = [], []
    for off in (-w + 0.15, w - 0.15):
        v, f = _strip(road, off - 0.08, off + 0.08, 0.02)
        edge_f.append(f + sum(len(x) for x in edge_v))
        edge_v.append(v)
    parts.append(("edge_lines", np.concatenate(edge_v), np.concatenate(edge_f), np.array([0.9, 0.9, 0.9])))
    dashes = (np.arange(len(road.points)) * road.ds) % 9.0 < 3.0
    parts.append(("centre_line", *_strip(road, -0.08, 0.08, 0.02, keep=dashes), np.array([0.95, 0.8, 0.1])))
    assets, geoms = [], []
    for name, v, f, rgb in parts:
        a, g = _mesh_xml(name, v, f, rgb)
        assets += a
        geoms.append(g)
    return assets, geoms


def vehicle_xml(kind: str, rgb, name: str) -> str:
    """Geoms ``{name}_<part>`` of a vehicle or obstacle in its own frame (x forward, origin on the ground)."""
    col, dark, white = (*rgb, 1), (0.1, 0.1, 0.1, 1), (0.85, 0.85, 0.85, 1)

    def box(part: str, pos, size, rgba) -> str:
        return mjcf.tag("geom", name=f"{name}_{part}", type="box", pos=pos, size=size, rgba=rgba)

    parts = {
        "car": [box("body", (0, 0, 0.55), (2.2, 0.9, 0.35), col), box("cabin", (-0.3, 0, 1.1), (1.1, 0.8, 0.3), col),
                box("glass", (0.45, 0, 1.1), (0.36, 0.78, 0.26), dark)],
        "van": [box("body", (0, 0, 1.1), (2.5, 1.0, 0.9), col), box("glass", (2.3, 0, 1.4), (0.22, 0.95, 0.35), dark)],
        "truck": [box("cab", (2.6, 0, 1.4), (0.9, 1.2, 1.1), col),
                  box("cargo", (-1.0, 0, 1.7), (2.6, 1.25, 1.4), white)],
        "cone": [mjcf.tag("geom", name=f"{name}_cone", type="cylinder", pos=(0, 0, 0.4), size=(0.25, 0.4), rgba=col),
                 box("base", (0, 0, 0.03), (0.35, 0.35, 0.03), col)],
        "barrier": [box("block", (0, 0, 0.5), (2.0, 0.3, 0.5), col)],
    }  # fmt: skip
    if kind not in parts:
        raise ValueError(f"unknown vehicle kind {kind!r}; choose from {', '.join(parts)}")
    return "".join(parts[kind])
