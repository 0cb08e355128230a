"""The World interface shared by the simulated worlds (arm, orbit, drive, bounce).

A world is an environment with a camera: ``reset(seed)`` returns the first frame, ``step(action)`` advances the
physics by one video frame and returns the next frame, ``truth()`` returns the ground truth of the current frame,
and ``caption()`` describes in plain English what happened since the reset, from the true state.
``record_episode`` drives a world with its scripted policy and returns a ``Clip`` in the foundation format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class WorldConfig:
    size: int = 64  # rendered frames are (size, size, 3)
    fps: float = 10.0  # video frame rate; physics substeps per frame derive from the model timestep
    views: int = 1  # number of synchronized cameras (drive uses 3 by default)
    shadows: bool = False  # shadows cost ~30 ms a frame on CPU
    randomize: bool = True  # per-episode domain randomisation (shapes, sizes, colours, textures, light, camera)


class World:
    """Base class. Subclasses set ``name`` and ``action_dim`` and implement the abstract methods."""

    name: str = ""
    action_dim: int = 0

    def __init__(self, cfg: WorldConfig | None = None) -> None:
        self.cfg = cfg or WorldConfig()

    # -- environment -------------------------------------------------------------------------------------------
    def reset(self, seed: int) -> np.ndarray:
        """Start a new randomised episode; return the first frame, uint8 (H, W, 3) (main view)."""
        raise NotImplementedError

    def step(self, action: np.ndarray) -> np.ndarray:
        """Apply ``action`` (float32 (action_dim,)) for one video frame; return the next frame (main view)."""
        raise NotImplementedError

    def render_views(self) -> list[np.ndarray]:
        """All camera views of the current state, main view first, each uint8 (H, W, 3)."""
        raise NotImplementedError

    def truth(self) -> dict[str, np.ndarray]:
        """Ground truth of the current frame as named float32 arrays (see ``worldsmith.data.clip`` names)."""
        raise NotImplementedError

    def caption(self) -> str:
        """Plain-English description of what happened since ``reset``, computed from the true state."""
        raise NotImplementedError

    # -- data generation ---------------------------------------------------------------------------------------
    def policy(self, rng: np.random.Generator):
        """A scripted (noisy) behaviour for this episode: a callable ``obs_step -> action``."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def episode_meta(self) -> dict[str, Any]:
        return {"world": self.name}
