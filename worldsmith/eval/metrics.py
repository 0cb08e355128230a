"""Per-frame reconstruction metrics on videos in [-1, 1] (model space) or uint8 (I/O space).

Both take tensors of shape (..., 3, H, W) or (B, 3, T, H, W); pass ``frame_dim`` to get one value per frame.
PSNR uses a peak of 1 on [0, 1] images. SSIM follows Wang et al. 2004 (eq. 13): an 11x11 Gaussian window with
sigma 1.5, K1 = 0.01, K2 = 0.03, computed per channel on [0, 1] images and averaged.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _unit(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """To float [0, 1]: uint8 arrays are divided by 255, floats are assumed in [-1, 1]."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    return (x.float().clamp(-1, 1) + 1) / 2


def _frames(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, H, W) -> (B*T, 3, H, W); (N, 3, H, W) unchanged; (T, H, W, 3) uint8 -> (T, 3, H, W)."""
    if x.ndim == 5:
        b, c, t, h, w = x.shape
        return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    if x.ndim == 4 and x.shape[1] != 3 and x.shape[-1] == 3:
        return x.permute(0, 3, 1, 2)
    if x.ndim == 3:
        return x[None]
    return x


def psnr(pred, target, reduction: str = "mean") -> torch.Tensor:
    """Peak signal-to-noise ratio in dB; ``reduction='none'`` gives one value per frame."""
    p, t = _frames(_unit(pred)), _frames(_unit(target))
    if p.shape != t.shape:
        raise ValueError(f"psnr needs equal shapes, got {tuple(p.shape)} and {tuple(t.shape)}")
    mse = (p - t).pow(2).flatten(1).mean(1).clamp_min(1e-10)  # (N,)
    values = -10 * torch.log10(mse)
    return values.mean() if reduction == "mean" else values


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]  # (1, 1, size, size)


def ssim(pred, target, reduction: str = "mean") -> torch.Tensor:
    """Structural similarity (Wang et al. 2004), valid-region Gaussian filtering; frames smaller than the 11x11
    window use a window of their own size."""
    p, t = _frames(_unit(pred)), _frames(_unit(target))
    if p.shape != t.shape:
        raise ValueError(f"ssim needs equal shapes, got {tuple(p.shape)} and {tuple(t.shape)}")
    n, c, h, w = p.shape
    size = min(11, h, w)
    win = _gaussian_window(size).to(p).expand(c, 1, size, size)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, win, groups=c)

    c1, c2 = 0.01**2, 0.03**2
    mu_p, mu_t = blur(p), blur(t)
    var_p = blur(p * p) - mu_p**2
    var_t = blur(t * t) - mu_t**2
    cov = blur(p * t) - mu_p * mu_t
    s = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    values = s.flatten(1).mean(1)  # (N,)
    return values.mean() if reduction == "mean" else values


def closer_to_own(videos: dict[str, np.ndarray], truth: dict[str, np.ndarray], names: tuple[str, str]) -> float:
    """Share of generated videos (of both commands: camera paths, manoeuvres) closer in pixels (MSE over frames 1..)
    to their own command's truth than to the other's, from the same first frame (as the action discrimination of
    eval rollouts): ``videos`` and ``truth`` {name: uint8 (N, T, H, W, 3)}."""
    wins = []
    for own, other in (names, names[::-1]):
        for v, t_own, t_other in zip(videos[own], truth[own], truth[other]):
            g = v[1:].astype(np.float32)
            wins.append(np.mean((g - t_own[1:]) ** 2) < np.mean((g - t_other[1:]) ** 2))
    return float(np.mean(wins))
