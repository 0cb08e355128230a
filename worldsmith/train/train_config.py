"""``TrainConfig``: every knob of the shared Trainer, type-checked, saved as the ``train:`` section of config.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from worldsmith.errors import ConfigError
from worldsmith.precision import check_precision

# Keys that may change between a run and its resumption without breaking it: they steer bookkeeping (how often
# to log, save, sample), speed or placement, not the math of a step. ``steps`` may grow to train longer (the
# cosine schedule is then re-laid over the new length). Every other train key must match the saved run.
RESUME_SAFE_KEYS = frozenset(
    {
        "steps",
        "log_every",
        "ckpt_every",
        "sample_every",
        "eval_every",
        "tensorboard",
        "progress",
        "compile",
        "activation_checkpointing",
        "fsdp",
        "device",
    }
)


@dataclass
class TrainConfig:
    steps: int = 1000  # optimizer steps in the whole run
    batch_size: int = 8  # per-rank micro-batch size; informational (the data decides), used for samples/s
    lr: float = 3e-4  # peak learning rate
    weight_decay: float = 0.01  # AdamW decoupled decay on >= 2-D weights (never norms, biases, embeddings)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 0  # linear warmup from lr / warmup_steps to lr
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.1  # cosine ends at lr * min_lr_ratio
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping (the norm is still logged)
    grad_accum: int = 1  # micro-batches per optimizer step
    ema_decay: float = 0.999  # maximum EMA decay; 0 disables EMA
    ema_warmup: Literal["none", "simple", "power"] = "simple"  # see worldsmith.train.ema.ema_decay_at
    ema_gamma: float = 6.94  # power-function EMA exponent (Karras et al. 2024, sigma_rel ~ 0.10)
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU (worldsmith/precision.py)
    device: str = "auto"  # auto | cpu | cuda (cuda:LOCAL_RANK under torchrun)
    activation_checkpointing: bool = False  # recompute model.checkpoint_modules() in backward
    compile: bool = False  # torch.compile the loss step
    fsdp: bool = False  # FSDP2 fully_shard instead of DDP under torchrun (GPUs with NCCL, CPUs with gloo)
    log_every: int = 10
    ckpt_every: int = 1000  # plus one at the end
    sample_every: int = 0  # 0: never call sample_fn
    eval_every: int = 0  # 0: never call eval_fn
    seed: int = 0
    tensorboard: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        positive = {"steps": self.steps, "grad_accum": self.grad_accum, "log_every": self.log_every}
        positive |= {"ckpt_every": self.ckpt_every, "lr": self.lr, "batch_size": self.batch_size, "eps": self.eps}
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"train.{name} must be positive, got {value}.")
        non_negative = {"warmup_steps": self.warmup_steps, "weight_decay": self.weight_decay}
        non_negative |= {"grad_clip": self.grad_clip, "sample_every": self.sample_every}
        non_negative |= {"eval_every": self.eval_every, "ema_gamma": self.ema_gamma}
        for name, value in non_negative.items():
            if value < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {value}.")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"train.betas must be two numbers in [0, 1), got {list(self.betas)}.")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"train.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must be in [0, 1) (0 disables EMA), got {self.ema_decay}.")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError(f"train.lr_schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}.")
        check_precision(self.precision, "train.precision")
        if self.ema_warmup not in ("none", "simple", "power"):
            raise ConfigError(f"train.ema_warmup must be 'none', 'simple' or 'power', got {self.ema_warmup!r}.")
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise ConfigError(f"train.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}.")

    @property
    def ema_enabled(self) -> bool:
        return self.ema_decay > 0.0
