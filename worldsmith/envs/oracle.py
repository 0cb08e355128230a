"""The simulator as a world model: the planner's ceiling.

``SimulatorStepper`` implements the ``RolloutStepper`` protocol (worldsmith/family.py) on the live arm world a
planner acts in: ``start_rollout`` snapshots the world's current state, each imagined step restores a candidate's
snapshot, steps the real physics and renders the real frame, and the live episode is put back afterwards. A planner
that imagines with it sees the future exactly, so its success rate is the most that planner and cost can reach with
any world model (``worldsmith plan --model simulator``); the gap between it and a learned model's success is the
model's, the gap between it and 100 % the planner's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from worldsmith.errors import WorldsmithError
from worldsmith.io.video import to_tensor

SIMULATOR = "simulator"  # the model name that selects it


@dataclass
class SimulatorRollouts:
    snapshots: list  # one ArmSnapshot per rollout

    def repeat(self, n: int) -> SimulatorRollouts:
        return SimulatorRollouts([s for s in self.snapshots for _ in range(n)])


class SimulatorStepper:
    """Imagines with the real simulator of the environment it is ``attach``-ed to (an arm ``WorldEnv``)."""

    ct, device, rollout_context, fps = 1, torch.device("cpu"), 1, None

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.world = None

    def attach(self, env) -> None:
        world = getattr(env, "world", env)
        if not hasattr(world, "snapshot"):
            raise WorldsmithError(f"the simulator can imagine only in worlds with snapshots (the arm world), not in "
                                  f"{getattr(world, 'name', type(world).__name__)!r}.")  # fmt: skip
        self.world, self.size = world, world.cfg.size

    def planning_sampling(self) -> Any:
        return None

    def start_rollout(self, video: Any, prompts: list[str], sampling: Any = None, seeds: list[int] | None = None,
                      actions: Any = None) -> SimulatorRollouts:  # fmt: skip
        """Rollouts from the attached world's state now (the state ``video``'s last frame shows), one per row."""
        if self.world is None:
            raise WorldsmithError("attach the simulator stepper to the environment it plans in before imagining.")
        return SimulatorRollouts([self.world.snapshot()] * len(video))

    @torch.no_grad()
    def step_rollout(self, state: SimulatorRollouts, actions: torch.Tensor) -> torch.Tensor:
        """The next frame (B, 3, 1, S, S) in [-1, 1] of each rollout under actions (B, 1, 7)."""
        live, frames = self.world.snapshot(), []
        acts = np.asarray(actions, np.float32).reshape(len(state.snapshots), -1)
        try:
            for i, snap in enumerate(state.snapshots):
                self.world.restore(snap)
                frames.append(self.world.step(acts[i]))
                state.snapshots[i] = self.world.snapshot()
        finally:
            self.world.restore(live)
        return to_tensor(np.stack(frames)).transpose(0, 1)[:, :, None]  # (3, B, S, S) -> (B, 3, 1, S, S)
