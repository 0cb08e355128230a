"""The models a server offers: loaded once at start, shared by jobs and play sessions (generation does not
modify a model, so threads may use one at the same time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worldsmith.diffusion.generate import DiffusionGenerator
from worldsmith.errors import ConfigError
from worldsmith.families import family_of
from worldsmith.worlds.arm_control import MAX_ROTATION, MAX_TRANSLATION
from worldsmith.zoo import resolve

KINDS = ("text2world", "video2world", "action")
ORBIT_ACTIONS = 5  # the orbit world's camera velocity (worlds/orbit.py)
GENERIC_KEYS = (("w", "s"), ("d", "a"), ("r", "f"), ("e", "q"), ("t", "g"), ("y", "h"), ("u", "j"), ("i", "k"))


def arm_controls() -> list[dict[str, Any]]:
    """Keys of the arm world's play page. Actions are in the gripper's frame (arm_control.py): with the gripper
    pointing down, +y moves right in the main view, +z toward the camera, +x down; droll turns it about the
    vertical. Half the per-frame limit while a key is held; the gripper toggles."""
    t, r = MAX_TRANSLATION / 2, MAX_ROTATION / 2
    return [
        {"key": "w", "label": "away (into the scene)", "index": 2, "value": -t},
        {"key": "s", "label": "toward the camera", "index": 2, "value": t},
        {"key": "a", "label": "left", "index": 1, "value": -t},
        {"key": "d", "label": "right", "index": 1, "value": t},
        {"key": "r", "label": "up", "index": 0, "value": -t},
        {"key": "f", "label": "down", "index": 0, "value": t},
        {"key": "q", "label": "turn left", "index": 3, "value": r},
        {"key": "e", "label": "turn right", "index": 3, "value": -r},
        {"key": " ", "label": "open / close the gripper", "index": 6, "toggle": [1.0, -1.0]},
    ]


def camera_controls() -> list[dict[str, Any]]:
    """Keys of a camera model's play page: the orbit world's camera velocity (forward, right, up in m/s; yaw and
    pitch rates in rad/s: worlds/orbit.py), gentle enough (3 cm and 1.1 degrees a frame at 10 fps) to stay within the
    motion the camera models were trained on."""
    v, r = 0.3, 0.2
    return [
        {"key": "w", "label": "forward", "index": 0, "value": v},
        {"key": "s", "label": "back", "index": 0, "value": -v},
        {"key": "a", "label": "left", "index": 1, "value": -v},
        {"key": "d", "label": "right", "index": 1, "value": v},
        {"key": "r", "label": "up", "index": 2, "value": v},
        {"key": "f", "label": "down", "index": 2, "value": -v},
        {"key": "q", "label": "turn left", "index": 3, "value": r},
        {"key": "e", "label": "turn right", "index": 3, "value": -r},
        {"key": "t", "label": "tilt up", "index": 4, "value": r},
        {"key": "g", "label": "tilt down", "index": 4, "value": -r},
    ]


def generic_controls(action_dim: int) -> list[dict[str, Any]]:
    """Two keys per action dimension (+/-), for an action model of an unknown world."""
    out = []
    for i, (up, down) in enumerate(GENERIC_KEYS[:action_dim]):
        out += [{"key": up, "label": f"action[{i}] +", "index": i, "value": 0.5},
                {"key": down, "label": f"action[{i}] -", "index": i, "value": -0.5}]  # fmt: skip
    return out


@dataclass
class ServedModel:
    name: str
    run: Path
    family: str
    generator: Any
    kinds: tuple[str, ...]
    action_dim: int
    size: int
    fps: float
    world: str | None  # the simulated world it was trained on, when known ("arm", "orbit"): starts, reality checks
    card: str
    playable: bool
    why_not_playable: str = ""
    controls: list[dict[str, Any]] = field(default_factory=list)
    camera: bool = False  # a camera model: play keys move its camera (the orbit world's 5 velocities)

    @property
    def play_dim(self) -> int:
        """Numbers per play step: the actions, or a camera model's 5 camera velocities."""
        return self.action_dim or (ORBIT_ACTIONS if self.camera else 0)

    def describe(self, card: bool = False) -> dict[str, Any]:
        conditions = ["text", "video"] + (["actions"] if self.action_dim else []) + (["camera"] if self.camera else [])
        out = {"name": self.name, "family": self.family, "kinds": list(self.kinds), "conditions": conditions,
               "action_dim": self.action_dim, "play_dim": self.play_dim, "size": self.size, "fps": self.fps,
               "world": self.world, "playable": self.playable, "controls": self.controls}  # fmt: skip
        if not self.playable:
            out["why_not_playable"] = self.why_not_playable
        if card:
            out["card"] = self.card
        return out


def why_not_playable(gen: Any) -> str:
    """Why a generator cannot be played one frame per action ("" when it can): either family, if it takes
    actions and steps one frame at a time; a camera model that steps one frame per camera move."""
    cfg = gen.model.cfg
    if getattr(cfg, "camera", False):
        if not cfg.dit.next_frame_only or gen.ct != 1:
            return ("play moves the camera one frame at a time: it needs a next-frame-only camera model on a "
                    "per-frame (ct=1) tokenizer.")
        return ""
    if not int(getattr(gen.model.cfg, "action_dim", 0) or 0):
        return "it takes no actions; post-train it with `worldsmith posttrain action`."
    if not hasattr(gen, "start_rollout") or gen.ct != 1:
        return "play steps one frame per action: it needs a model on a per-frame (ct=1) tokenizer."
    return ""


def load_model(spec: str, device: str = "cpu") -> ServedModel:
    run = resolve(spec)
    family = family_of(run)
    if family.name not in ("diffusion", "autoregressive"):
        raise ConfigError(f"{spec} is a {family.name} model; the server serves world models (diffusion or "
                          f"autoregressive runs).")  # fmt: skip
    gen = family.generator.from_run(run, device=device)
    action_dim = int(getattr(gen.model.cfg, "action_dim", 0) or 0)
    if action_dim:
        kinds = ("action",)
    else:  # the autoregressive family continues a video; the diffusion family also starts from a prompt alone
        kinds = ("text2world", "video2world") if isinstance(gen, DiffusionGenerator) else ("video2world",)
    size = gen.size
    why = why_not_playable(gen)
    playable = not why
    camera = bool(getattr(gen.model.cfg, "camera", False))
    world = "arm" if action_dim == 7 else "orbit" if camera else None  # camera models: the orbit world's poses
    card_path = run / "MODEL_CARD.md"
    name = spec if not Path(spec).is_dir() else Path(spec).absolute().name  # a run folder: its own name
    controls = arm_controls() if world == "arm" else camera_controls() if camera else generic_controls(action_dim)
    return ServedModel(name=name, run=run, family=family.name, generator=gen, kinds=kinds, action_dim=action_dim,
                       size=int(size), fps=float(gen.fps or 10.0), world=world,
                       card=card_path.read_text() if card_path.is_file() else "", playable=playable,
                       why_not_playable=why, controls=controls if action_dim or camera else [], camera=camera)  # fmt: skip


def load_models(specs: list[str], device: str = "cpu") -> dict[str, ServedModel]:
    if not specs:
        raise ConfigError("the server needs at least one model: pass --models with a run folder or shipped name.")
    out: dict[str, ServedModel] = {}
    for spec in specs:
        m = load_model(spec, device)
        name, i = m.name, 2
        while name in out:  # two run folders with the same name
            name, i = f"{m.name}-{i}", i + 1
        m.name = name
        out[name] = m
    return out
