"""The simulated worlds by name: ``WORLDS`` maps each name to its World class, and ``make_world`` builds one."""

from __future__ import annotations

from typing import Any

from worldsmith.errors import ConfigError
from worldsmith.worlds.arm import ArmWorld
from worldsmith.worlds.base import World, WorldConfig
from worldsmith.worlds.bounce import BounceWorld
from worldsmith.worlds.drive import DriveWorld
from worldsmith.worlds.orbit import OrbitWorld

WORLDS: dict[str, type[World]] = {"arm": ArmWorld, "orbit": OrbitWorld, "drive": DriveWorld, "bounce": BounceWorld}


def world_names() -> list[str]:
    return list(WORLDS)


def make_world(name: str, cfg: WorldConfig | None = None, **options: Any) -> World:
    """A fresh world ``name`` with config ``cfg``; ``options`` go to the world's constructor (e.g. orbit's
    ``first_identity=True``). An unknown name is a ConfigError that lists the valid ones."""
    if name not in WORLDS:
        raise ConfigError(f"unknown world {name!r}; choose one of: {', '.join(WORLDS)}.")
    return WORLDS[name](cfg, **options)
