"""The shared Trainer: any module with ``loss(batch) -> (loss, logs)``, resumable by running the same command again.

Public API::

    from worldsmith.train import Trainer, TrainConfig, save_pretrained, load_pretrained, seed_everything
    Trainer(model, TrainConfig(steps=1000), "runs/x", data, model_config=model.cfg).fit()
"""

from worldsmith.train.checkpoint import CheckpointError, load_pretrained, save_pretrained
from worldsmith.train.distributed import barrier, cleanup, init_distributed, is_main
from worldsmith.train.ema import EMA, ema_decay_at
from worldsmith.train.progress import read_logs
from worldsmith.train.rng import seed_everything
from worldsmith.train.schedule import lr_at
from worldsmith.train.train_config import TrainConfig
from worldsmith.train.trainer import FitResult, Trainer

__all__ = [
    "EMA",
    "CheckpointError",
    "FitResult",
    "TrainConfig",
    "Trainer",
    "barrier",
    "cleanup",
    "ema_decay_at",
    "init_distributed",
    "is_main",
    "load_pretrained",
    "lr_at",
    "read_logs",
    "save_pretrained",
    "seed_everything",
]
