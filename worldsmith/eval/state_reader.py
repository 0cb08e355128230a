"""A state reader: where the gripper and the objects are in a frame, read by a small network from pixels alone.

It judges generated video against the simulator: trained on simulator frames with their ground truth (the arm
clips carry every object's projected centre and the end-effector pose), it reads the same quantities from any
frame, real or generated, so a rollout's gripper and object positions can be compared with the truth in pixels.

Network: a small U-Net (a stride-2 stem, then 32x32 -> 4x4 and back with skip connections, for 64x64 frames)
predicting two heatmaps at half resolution, one for the gripper's fingertip point and one for object centres, each
a Gaussian of ``sigma`` heatmap cells around the true points (CenterNet's keypoint heatmaps, Zhou et al. 2019, with a
plain BCE). Reading: the gripper is the heatmap's peak refined by a soft-argmax in a 5x5 window, which recovers
sub-cell positions from the Gaussian's shape; object candidates are the highest local maxima, each refined the
same way, and a true object is read at the nearest confident one (objects a few pixels apart, stacked ones, make
one peak). Pixel coordinates follow the simulator's projection: (u, v) continuous, pixel (row i, column j)
covering [j, j + 1) x [i, i + 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from worldsmith.errors import ConfigError
from worldsmith.weights import Pretrained

EE_TO_TIP = 0.03  # m from the arm's end-effector site to its fingertips, along gripper x (worlds/arm_model.py)


@dataclass
class StateReaderConfig:
    width: int = 32  # channels after the stem (doubled per level)
    levels: int = 3  # 32 -> 4 at 3 levels (64x64 frames)
    stride: int = 2  # heatmap cells are stride x stride pixels
    sigma: float = 1.0  # heatmap cells: the Gaussian around each true point in the target heatmaps
    window: int = 5  # soft-argmax window (odd, in cells) around a heatmap peak

    def __post_init__(self) -> None:
        if self.width < 8 or self.levels < 1 or self.sigma <= 0 or self.window < 3 or self.window % 2 == 0:
            raise ConfigError("reader config needs width >= 8, levels >= 1, sigma > 0 and an odd window >= 3.")
        if self.stride not in (1, 2, 4):
            raise ConfigError(f"reader stride must be 1, 2 or 4, got {self.stride}.")


def conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU())


class StateReader(nn.Module, Pretrained):
    Config = StateReaderConfig

    def __init__(self, cfg: StateReaderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.width * 2**i for i in range(cfg.levels + 1)]
        s = cfg.stride  # RGB + (x, y) coordinates -> cells of s x s pixels
        self.stem = nn.Sequential(nn.Conv2d(5, widths[0], s + 2 if s > 1 else 3, stride=s, padding=1),
                                  nn.GroupNorm(8, widths[0]), nn.SiLU(), conv(widths[0], widths[0]))  # fmt: skip
        self.downs = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), conv(a, b), conv(b, b)) for a, b in zip(widths, widths[1:]))
        self.ups = nn.ModuleList(nn.Sequential(conv(a + b, a), conv(a, a)) for a, b in zip(widths, widths[1:]))
        self.head = nn.Conv2d(widths[0], 2, 1)
        nn.init.constant_(self.head.bias, -4.0)  # heatmaps start near 0 (sigmoid(-4) ~ 0.02)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, 3, H, W) in [-1, 1] -> heatmap logits (B, 2, H / stride, W / stride): gripper, objects."""
        b, _, h, w = frames.shape
        step = 2**self.cfg.levels * self.cfg.stride
        if h % step or w % step:
            raise ConfigError(f"the state reader needs frames whose sides divide by {step}, got {h}x{w}.")
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=frames.device),
                                torch.linspace(-1, 1, w, device=frames.device), indexing="ij")  # fmt: skip
        x = self.stem(torch.cat([frames, xs.expand(b, 1, h, w), ys.expand(b, 1, h, w)], dim=1))
        skips = []
        for down in self.downs:
            skips.append(x)
            x = down(x)  # (B, C_{i+1}, H / 2^(i+1), W / 2^(i+1))
        for up, skip in zip(reversed(self.ups), reversed(skips)):
            x = up(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="nearest"), skip], dim=1))
        return self.head(x)

    # -- reading ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def read(self, frames: torch.Tensor, candidates: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """frames (B, 3, H, W) -> gripper (B, 2), and the ``candidates`` strongest object peaks (B, K, 2) with their
        heat (B, K) in [0, 1] (objects closer than a few pixels, e.g. stacked, make one peak)."""
        heat, s = torch.sigmoid(self(frames)), self.cfg.stride  # (B, 2, H / s, W / s)
        gripper = refine(heat[:, 0], peaks(heat[:, 0], 1), self.cfg.window)[:, 0] * s
        at = peaks(heat[:, 1], candidates)  # (B, K, 2) (row, col)
        scores = heat[:, 1].flatten(1).gather(1, at[..., 0] * heat.shape[-1] + at[..., 1])  # (B, K)
        return gripper, refine(heat[:, 1], at, self.cfg.window) * s, scores


def peaks(heat: torch.Tensor, n: int) -> torch.Tensor:
    """(B, H, W) -> the n highest local maxima (3x3) as integer (row, col) (B, n, 2)."""
    b, h, w = heat.shape
    local = heat == F.max_pool2d(heat[:, None], 3, stride=1, padding=1)[:, 0]
    scores = torch.where(local, heat, torch.zeros_like(heat)).flatten(1)  # (B, H*W)
    idx = scores.topk(n, dim=1).indices  # (B, n)
    return torch.stack([idx // w, idx % w], dim=-1)


def refine(heat: torch.Tensor, at: torch.Tensor, window: int) -> torch.Tensor:
    """Sub-pixel (u, v) (B, n, 2) of the heatmap mass in a ``window`` x ``window`` box around each peak ``at``."""
    b, h, w = heat.shape
    r = window // 2
    offsets = torch.arange(-r, r + 1, device=heat.device)
    rows = (at[..., 0:1] + offsets).clamp(0, h - 1)  # (B, n, win)
    cols = (at[..., 1:2] + offsets).clamp(0, w - 1)
    flat = heat.flatten(1)  # (B, H*W)
    index = (rows[..., :, None] * w + cols[..., None, :]).flatten(2)  # (B, n, win*win)
    mass = torch.gather(flat[:, None].expand(-1, at.shape[1], -1), 2, index).clamp_min(0) + 1e-8
    u = (mass * (cols[..., None, :].expand(-1, -1, window, -1).flatten(2) + 0.5)).sum(-1) / mass.sum(-1)
    v = (mass * (rows[..., :, None].expand(-1, -1, -1, window).flatten(2) + 0.5)).sum(-1) / mass.sum(-1)
    return torch.stack([u, v], dim=-1)


def target_heatmaps(points: torch.Tensor, mask: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """points (B, K, 2) pixel (u, v), mask (B, K) -> max of Gaussians per point (B, H, W)."""
    h, w = size
    v = torch.arange(h, device=points.device, dtype=torch.float32) + 0.5
    u = torch.arange(w, device=points.device, dtype=torch.float32) + 0.5
    du = (u[None, None, None, :] - points[..., 0, None, None]) ** 2  # (B, K, 1, W)
    dv = (v[None, None, :, None] - points[..., 1, None, None]) ** 2  # (B, K, H, 1)
    g = torch.exp(-(du + dv) / (2 * sigma**2)) * mask[..., None, None]  # (B, K, H, W)
    return g.amax(dim=1) if g.shape[1] else points.new_zeros(points.shape[0], h, w)


def reader_loss(model: StateReader, batch: dict) -> tuple[torch.Tensor, dict]:
    """BCE between the predicted heatmaps and Gaussians around the true gripper and object points."""
    frames, s = batch["frames"], model.cfg.stride  # (B, 3, H, W)
    logits = model(frames)  # (B, 2, H / s, W / s)
    size = tuple(logits.shape[-2:])
    gripper = batch["gripper"][:, None] / s  # (B, 1, 2) in heatmap cells
    target = torch.stack([target_heatmaps(gripper, torch.ones_like(gripper[..., 0]), size, model.cfg.sigma),
                          target_heatmaps(batch["objects"] / s, batch["object_mask"], size, model.cfg.sigma)], dim=1)
    loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(10.0, device=frames.device))
    return loss, {}


# ---------------------------------------------------------------------------------------------------------------
# ground truth of arm clips
# ---------------------------------------------------------------------------------------------------------------
def quat_to_mat(q: np.ndarray) -> np.ndarray:
    """(..., 4) (w, x, y, z) -> (..., 3, 3)."""
    w, x, y, z = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    return np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
                     np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
                     np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)  # fmt: skip


def arm_truth(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Gripper fingertip pixels (T, 2) and object centre pixels (T, N, 2) of an arm clip, from its arrays."""
    for name in ("ee", "pixels", "intrinsics", "c2w"):
        if name not in arrays:
            raise ConfigError(f"an arm clip needs its {name!r} array for the state reader; re-simulate it with "
                              f"`worldsmith sim arm`.")  # fmt: skip
    ee, K, c2w = arrays["ee"].astype(np.float64), arrays["intrinsics"], arrays["c2w"]
    tip = ee[:, :3] + quat_to_mat(ee[:, 3:7])[:, :, 0] * EE_TO_TIP  # (T, 3) world fingertip point
    w2c = np.linalg.inv(c2w.astype(np.float64))  # (T, 4, 4)
    p = np.einsum("tij,tj->ti", w2c[:, :3, :3], tip) + w2c[:, :3, 3]
    uv = np.einsum("tij,tj->ti", K.astype(np.float64), p)
    return (uv[:, :2] / uv[:, 2:3]).astype(np.float32), arrays["pixels"].astype(np.float32)
