"""A small action-conditioned next-frame predictor: the reference baseline world model.

It predicts frame ``t + 1`` from the ``context`` frames before it and the action taken after frame ``t``, as a
residual on frame ``t``; rollouts feed predictions back in. It trains in minutes on a CPU, so the demo can show
the platform end to end, and it gives the larger world models (diffusion, autoregressive) a floor to beat next to
the trivial "copy the last frame" predictor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from worldsmith.config import register_preset


@dataclass
class BaselineConfig:
    context: int = 2  # past frames seen by the predictor (2 gives it velocities)
    width: int = 32  # channels at full resolution (doubled at each downsampling)
    levels: int = 2  # downsampling steps of factor 2; H and W must be divisible by 2**levels
    depth: int = 2  # residual blocks at the lowest resolution
    action_dim: int = 0  # 0 = no action conditioning; set from the data by the training pipeline
    cond_dim: int = 128  # width of the action embedding that modulates every block

    def __post_init__(self) -> None:
        if self.context < 1 or self.width < 4 or self.levels < 0 or self.depth < 0 or self.action_dim < 0:
            raise ValueError("context >= 1, width >= 4, levels >= 0, depth >= 0 and action_dim >= 0 are required")


register_preset("baseline", "tiny", lambda: BaselineConfig(width=16, levels=2, depth=1, cond_dim=64))
register_preset("baseline", "small", lambda: BaselineConfig(width=32, levels=2, depth=2))
register_preset("baseline", "base", lambda: BaselineConfig(width=64, levels=3, depth=4, cond_dim=256))


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, twice, with a scale/shift from the condition after the first norm."""

    def __init__(self, ch: int, cond_dim: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(min(8, ch // 4), ch), nn.GroupNorm(min(8, ch // 4), ch)
        self.conv1, self.conv2 = nn.Conv2d(ch, ch, 3, padding=1), nn.Conv2d(ch, ch, 3, padding=1)
        self.film = nn.Linear(cond_dim, 2 * ch)
        nn.init.zeros_(self.film.weight), nn.init.zeros_(self.film.bias)
        nn.init.zeros_(self.conv2.weight), nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(cond)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        h = self.norm1(x) * (1 + scale) + shift
        h = self.conv1(F.silu(h))
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class NextFrameNet(nn.Module):
    Config = BaselineConfig

    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.width * 2**i for i in range(cfg.levels + 1)]
        self.stem = nn.Conv2d(3 * cfg.context, widths[0], 3, padding=1)
        self.action = nn.Sequential(nn.Linear(max(cfg.action_dim, 1), cfg.cond_dim), nn.SiLU(), nn.Linear(cfg.cond_dim, cfg.cond_dim))
        self.down_blocks = nn.ModuleList(ResBlock(w, cfg.cond_dim) for w in widths[:-1])
        self.downs = nn.ModuleList(nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths, widths[1:]))
        self.mid = nn.ModuleList(ResBlock(widths[-1], cfg.cond_dim) for _ in range(cfg.depth))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(b, a, 4, stride=2, padding=1) for a, b in zip(widths, widths[1:]))
        self.up_blocks = nn.ModuleList(ResBlock(w, cfg.cond_dim) for w in widths[:-1])
        self.head = nn.Sequential(nn.GroupNorm(min(8, widths[0] // 4), widths[0]), nn.SiLU(), nn.Conv2d(widths[0], 3, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight), nn.init.zeros_(self.head[-1].bias)  # starts as "copy last frame"

    def checkpoint_modules(self) -> list[nn.Module]:
        return [*self.down_blocks, *self.mid, *self.up_blocks]

    def forward(self, past: torch.Tensor, action: torch.Tensor | None = None) -> torch.Tensor:
        """past: (B, 3, K, H, W) in [-1, 1], action: (B, A) -> next frame (B, 3, H, W)."""
        b, _, k, h, w = past.shape
        if k != self.cfg.context:
            raise ValueError(f"expected {self.cfg.context} context frames, got {k}")
        if h % 2**self.cfg.levels or w % 2**self.cfg.levels:
            raise ValueError(f"frame size {h}x{w} must be divisible by {2**self.cfg.levels}")
        if action is None or self.cfg.action_dim == 0:
            action = past.new_zeros(b, max(self.cfg.action_dim, 1))
        cond = self.action(action)  # (B, cond_dim)
        x = self.stem(past.reshape(b, 3 * k, h, w))  # (B, C0, H, W)
        skips = []
        for block, down in zip(self.down_blocks, self.downs):
            x = block(x, cond)
            skips.append(x)
            x = down(x)  # (B, C_{i+1}, H / 2^(i+1), W / 2^(i+1))
        for block in self.mid:
            x = block(x, cond)
        for block, up, skip in zip(reversed(self.up_blocks), reversed(self.ups), reversed(skips)):
            x = block(up(x) + skip, cond)
        return past[:, :, -1] + self.head(x)  # residual on the last frame, (B, 3, H, W)

    def _windows(self, video: torch.Tensor, actions: torch.Tensor | None):
        """All (past, action, target) triples of a clip batch, folded into the batch dimension."""
        b, c, t, h, w = video.shape
        k = self.cfg.context
        n = t - k  # predictions per clip
        past = video.unfold(2, k, 1)[:, :, :n]  # (B, 3, n, H, W, K)
        past = past.permute(0, 2, 1, 5, 3, 4).reshape(b * n, c, k, h, w)  # (B*n, 3, K, H, W)
        target = video[:, :, k:].permute(0, 2, 1, 3, 4).reshape(b * n, c, h, w)  # (B*n, 3, H, W)
        act = None
        if self.cfg.action_dim and actions is not None:
            act = actions[:, k - 1 : k - 1 + n].reshape(b * n, -1)  # action after the last context frame
        return past, act, target

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Teacher-forced one-step prediction loss over every window of the clips: L1 + MSE."""
        video = batch["video"]  # (B, 3, T, H, W) in [-1, 1]
        if video.shape[2] <= self.cfg.context:
            raise ValueError(f"clips need more than {self.cfg.context} frames, got {video.shape[2]}")
        past, act, target = self._windows(video, batch.get("actions"))
        pred = self(past, act)
        l1, mse = F.l1_loss(pred, target), F.mse_loss(pred, target)
        copy_mse = F.mse_loss(past[:, :, -1], target)
        return l1 + mse, {"l1": l1.detach(), "mse": mse.detach(), "copy_mse": copy_mse.detach()}

    @torch.no_grad()
    def rollout(self, context: torch.Tensor, steps: int, actions: torch.Tensor | None = None) -> torch.Tensor:
        """Predict ``steps`` frames after ``context`` (B, 3, K, H, W); actions (B, >= K-1+steps, A) are per
        transition of the whole clip (index t = action after frame t). Returns (B, 3, steps, H, W)."""
        k = self.cfg.context
        frames = list(context.unbind(2))
        out = []
        for i in range(steps):
            past = torch.stack(frames[-k:], dim=2)  # (B, 3, K, H, W)
            act = actions[:, k - 1 + i] if (actions is not None and self.cfg.action_dim) else None
            nxt = self(past, act).clamp(-1, 1)
            frames.append(nxt)
            out.append(nxt)
        return torch.stack(out, dim=2)
