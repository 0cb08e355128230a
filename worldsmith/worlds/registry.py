"""Names of the simulated worlds and ``make_world``; world modules are imported only when a world is made."""

from __future__ import annotations

import importlib
from typing import Any

from worldsmith.errors import ConfigError
from worldsmith.worlds.base import World, WorldConfig

# name -> (module, class); modules load lazily so listing worlds does not import MuJoCo
_WORLDS: dict[str, tuple[str, str]] = {
    "arm": ("worldsmith.worlds.arm", "ArmWorld"),
    "orbit": ("worldsmith.worlds.orbit", "OrbitWorld"),
    "drive": ("worldsmith.worlds.drive", "DriveWorld"),
    "bounce": ("worldsmith.worlds.bounce", "BounceWorld"),
}
WORLDS: list[str] = list(_WORLDS)


def world_names() -> list[str]:
    return list(WORLDS)


def world_class(name: str) -> type[World]:
    """The World subclass called ``name``; a ConfigError lists the valid names."""
    if name not in _WORLDS:
        raise ConfigError(f"unknown world {name!r}; choose one of: {', '.join(WORLDS)}.")
    module, cls = _WORLDS[name]
    return getattr(importlib.import_module(module), cls)


def make_world(name: str, cfg: WorldConfig | None = None, **options: Any) -> World:
    """A fresh world ``name`` with config ``cfg``; ``options`` go to the world's constructor (e.g. orbit's
    ``first_identity=True``)."""
    return world_class(name)(cfg, **options)
