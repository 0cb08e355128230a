"""Training and measuring the state reader (state_reader.py) on simulated arm clips.

``train_reader(cfg, run_dir)``: every frame of the training shards with its truth (gripper fingertip and object
centre pixels) is held in memory (uint8: 2,048 clips of 33 frames at 64x64 are 830 MB); batches are random frames,
lightly blurred and noised half of the time so the reader also reads the softer frames a generator makes. The
shared Trainer runs it (resume: same command again). ``reader_error(model, shards)`` gives its error on held-out
frames: mean and 95th percentile in pixels, for the gripper and for the objects (each true object matched to its
nearest read peak, the peaks being as many as the clip has objects).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from worldsmith import config as C
from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_shard
from worldsmith.errors import ConfigError, DataError
from worldsmith.eval.state_reader import StateReader, StateReaderConfig, arm_truth, reader_loss
from worldsmith.io.video import to_tensor
from worldsmith.train.rng import seed_everything
from worldsmith.train.runtime import init_runtime
from worldsmith.train.train_config import TrainConfig
from worldsmith.train.trainer import Trainer

MAX_OBJECTS = 4  # the arm world places 1-4 objects


@dataclass
class ReaderDataConfig:
    shards: str = ""  # simulated arm clips (with ee, pixels, intrinsics, c2w arrays)
    max_clips: int = 0  # 0: every clip
    stride: int = 1  # use every stride-th frame of each clip
    augment: float = 0.5  # share of frames blurred and noised

    def __post_init__(self) -> None:
        if self.max_clips < 0 or self.stride < 1 or not 0 <= self.augment <= 1:
            raise ConfigError("data.max_clips >= 0, data.stride >= 1 and data.augment in [0, 1] are required.")


def default_train_config() -> TrainConfig:
    return TrainConfig(steps=3000, batch_size=32, lr=2e-3, warmup_steps=100, weight_decay=0.0, ema_decay=0.999,
                       log_every=50, ckpt_every=1000)  # fmt: skip


@dataclass
class ReaderRunConfig:
    model: StateReaderConfig = field(default_factory=StateReaderConfig)
    train: TrainConfig = field(default_factory=default_train_config)
    data: ReaderDataConfig = field(default_factory=ReaderDataConfig)


def load_frames(shards: str, max_clips: int = 0, stride: int = 1) -> dict[str, Any]:
    """Frames uint8 (N, H, W, 3), gripper (N, 2), objects (N, 4, 2) and their mask (N, 4) of arm clips."""
    frames, gripper, objects, mask = [], [], [], []
    clips = 0
    for shard in list_shards(shards):
        for clip in iter_shard(shard):
            g, o = arm_truth(clip.arrays)
            n = o.shape[1]
            pad = np.zeros((len(o), MAX_OBJECTS, 2), np.float32)
            pad[:, :n] = o
            frames.append(clip.frames[::stride])
            gripper.append(g[::stride])
            objects.append(pad[::stride])
            mask.append(np.repeat((np.arange(MAX_OBJECTS) < n)[None], len(o), 0)[::stride])
            clips += 1
            if clips == max_clips:
                break
        if clips == max_clips:
            break
    if not frames:
        raise DataError(f"no arm clips found in {shards}.")
    return {"frames": np.concatenate(frames), "gripper": np.concatenate(gripper), "objects": np.concatenate(objects),
            "mask": np.concatenate(mask).astype(np.float32)}  # fmt: skip


class FrameBatches:
    """``data(epoch)`` for the Trainer: a fresh permutation of all frames per epoch, drawn from (seed, epoch)."""

    def __init__(self, data: dict[str, Any], batch_size: int, seed: int, augment: float) -> None:
        self.data, self.batch_size, self.seed, self.augment = data, batch_size, seed, augment

    def __call__(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        n = len(self.data["frames"])
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=g).numpy()
        for i in range(0, n - self.batch_size + 1, self.batch_size):
            idx = np.sort(order[i : i + self.batch_size])
            frames = to_tensor(self.data["frames"][idx]).permute(1, 0, 2, 3)  # (B, 3, H, W)
            yield {"frames": degrade(frames, self.augment, g), "gripper": torch.from_numpy(self.data["gripper"][idx]),
                   "objects": torch.from_numpy(self.data["objects"][idx]),
                   "object_mask": torch.from_numpy(self.data["mask"][idx])}  # fmt: skip


def degrade(frames: torch.Tensor, share: float, g: torch.Generator) -> torch.Tensor:
    """Blur (Gaussian, sigma up to 1 px) and noise (std up to 0.03) a random ``share`` of frames (B, 3, H, W)."""
    b = frames.shape[0]
    pick = torch.rand(b, generator=g) < share
    if not bool(pick.any()):
        return frames
    sigma = torch.rand(b, generator=g) * 1.0 + 1e-3  # (B,)
    x = torch.arange(-2, 3, dtype=torch.float32)
    k = torch.exp(-(x[None] ** 2) / (2 * sigma[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)  # (B, 5)
    c = frames.shape[1]
    blurred = frames.reshape(1, b * c, *frames.shape[2:])
    kh = k.repeat_interleave(c, 0)[:, None, None, :]  # (B*C, 1, 1, 5)
    blurred = F.conv2d(F.pad(blurred, (2, 2, 0, 0), mode="replicate"), kh, groups=b * c)
    blurred = F.conv2d(F.pad(blurred, (0, 0, 2, 2), mode="replicate"), kh.transpose(2, 3), groups=b * c)
    noisy = blurred.reshape_as(frames) + torch.randn(frames.shape, generator=g) * torch.rand(b, 1, 1, 1, generator=g) * 0.03
    return torch.where(pick[:, None, None, None], noisy.clamp(-1, 1), frames)


def train_reader(cfg: ReaderRunConfig, run_dir: str | Path, *, fresh: bool = False) -> dict[str, Any]:
    """Train (or resume) a state reader into ``run_dir``; returns a summary."""
    if not cfg.data.shards:
        raise ConfigError("no training data: pass --data with simulated arm shards (`worldsmith sim arm --out DIR`).")
    init_runtime(cfg.train.device)
    data = load_frames(cfg.data.shards, cfg.data.max_clips, cfg.data.stride)
    seed_everything(cfg.train.seed)
    model = StateReader(cfg.model)
    batches = FrameBatches(data, cfg.train.batch_size, cfg.train.seed, cfg.data.augment)
    result = Trainer(model, reader_loss, cfg.train, run_dir, batches, full_config=C.to_dict(cfg), resume=not fresh).fit()
    return {"run_dir": str(run_dir), "steps": result.step, "frames": len(data["frames"]), "last": result.last_logs}


@torch.no_grad()
def reader_error(model: StateReader, data: dict[str, Any], batch_size: int = 256) -> dict[str, float]:
    """Pixel errors of the reader on frames with their truth (``load_frames``): mean and p95, gripper and objects."""
    device = next(model.parameters()).device
    grip_err, obj_err = [], []
    for i in range(0, len(data["frames"]), batch_size):
        frames = to_tensor(data["frames"][i : i + batch_size]).permute(1, 0, 2, 3).to(device)
        mask = data["mask"][i : i + batch_size] > 0
        gripper, found, scores = model.read(frames)
        grip_err.append(np.linalg.norm(gripper.cpu().numpy() - data["gripper"][i : i + batch_size], axis=-1))
        obj_err.append(object_errors(found.cpu().numpy(), scores.cpu().numpy(), data["objects"][i : i + batch_size],
                                     mask))  # fmt: skip
    g, o = np.concatenate(grip_err), np.concatenate(obj_err)
    return {"gripper_px": float(g.mean()), "gripper_p95_px": float(np.percentile(g, 95)), "object_px": float(o.mean()),
            "object_p95_px": float(np.percentile(o, 95)), "frames": int(len(g))}  # fmt: skip


def object_errors(found: np.ndarray, scores: np.ndarray, truth: np.ndarray, mask: np.ndarray,
                  confident: float = 0.25) -> np.ndarray:  # fmt: skip
    """Per true object (where ``mask``), the distance to the nearest read peak whose heat is at least ``confident``
    (the strongest peak when none is): found (B, K, 2), scores (B, K), truth (B, N, 2), mask (B, N)."""
    out = []
    for f, sc, t, m in zip(found, scores, truth, mask):
        peaks = confident_peaks(f, sc, confident)
        out.append(np.linalg.norm(t[m][:, None] - peaks[None], axis=-1).min(axis=1))
    return np.concatenate(out) if out else np.zeros(0)


def confident_peaks(found: np.ndarray, scores: np.ndarray, confident: float = 0.25) -> np.ndarray:
    """One frame's read objects (K', 2): the peaks whose heat is at least ``confident``, the strongest when none is."""
    keep = scores >= confident
    return found[keep] if keep.any() else found[:1]
