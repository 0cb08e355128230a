"""Learning-rate schedule: linear warmup, then cosine decay (or constant), as a pure function of the step.

Being a pure function of the step index, the schedule has no state of its own to checkpoint: a resumed run
recomputes exactly the learning rate the uninterrupted run would have used.
"""

from __future__ import annotations

import math

from worldsmith.train.train_config import TrainConfig


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based: the first update uses ``lr_at(0)``).

    * warmup, ``step < warmup_steps``: ``lr * (step + 1) / warmup_steps`` (never 0, reaches ``lr`` at the end);
    * ``constant``: ``lr`` afterwards;
    * ``cosine``: ``lr * (r + (1 - r) * (1 + cos(pi * p)) / 2)`` with ``r = min_lr_ratio`` and ``p`` going
      linearly from 0 (first step after warmup) to 1 (last step of the run), SGDR (Loshchilov & Hutter 2017).
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    decay_steps = cfg.steps - cfg.warmup_steps - 1
    progress = min(1.0, (step - cfg.warmup_steps) / decay_steps) if decay_steps > 0 else 1.0
    r = cfg.min_lr_ratio
    return cfg.lr * (r + (1.0 - r) * 0.5 * (1.0 + math.cos(math.pi * progress)))
