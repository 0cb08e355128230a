"""EDM (Karras et al. 2022, arXiv 2206.00364): the preconditioned denoiser, the training loss, the noise schedule.

``EDMDenoiser`` wraps any backbone ``net(c_in * x, c_noise, cond) -> F`` into the denoiser of Table 1:

    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma))
    c_skip = sd^2 / (sigma^2 + sd^2)   c_out = sigma sd / sqrt(sigma^2 + sd^2)
    c_in = 1 / sqrt(sigma^2 + sd^2)     c_noise = ln(sigma) / 4

with sd = sigma_data. Noise levels are per latent frame: Video2World condition frames (``cond.mask``) are fed
their noise-augmented clean latents at ``cond.sigma_cond`` and come out as the clean latents exactly, so one code
path serves training, Text2World and Video2World, and samplers never see the difference.

The loss (eq. 8 with Table 1's choices): ln(sigma) ~ N(P_mean, P_std^2), weight lambda(sigma) = (sigma^2 + sd^2) /
(sigma sd)^2, averaged over the generated (not conditioned) latent frames only.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from worldsmith.diffusion.condition import Condition
from worldsmith.diffusion.config import EDMConfig


def precondition(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, ...]:
    """(c_skip, c_out, c_in, c_noise) of EDM Table 1 for noise levels ``sigma`` (any shape)."""
    sd2 = sigma_data**2
    total = sigma**2 + sd2
    return sd2 / total, sigma * sigma_data / total.sqrt(), total.rsqrt(), sigma.log() / 4


def loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2 (EDM Table 1): unit effective weight for F's target."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


class EDMDenoiser(nn.Module):
    def __init__(self, net: nn.Module, cfg: EDMConfig) -> None:
        super().__init__()
        self.net, self.cfg = net, cfg

    def frame_sigmas(self, sigma: torch.Tensor, cond: Condition, frames: int) -> torch.Tensor:
        """Noise level per sample (B, 1), or per latent frame (B, T') when some frames are conditions."""
        sigma = sigma.reshape(cond.batch, -1)
        if cond.mask is None:
            return sigma
        is_cond = cond.mask.reshape(cond.batch, frames) > 0  # (B, T')
        return torch.where(is_cond, cond.sigma_cond.reshape(-1, 1).to(sigma), sigma.expand(-1, frames))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: Condition) -> torch.Tensor:
        """x (B, C, T', H', W') at noise level sigma (B,) -> denoised latents D(x; sigma) (B, C, T', H', W')."""
        if cond.mask is not None:
            x = torch.where(cond.mask > 0, cond.frames_in, x)  # condition frames: their augmented latents
        sigma = self.frame_sigmas(sigma.to(x.dtype), cond, x.shape[2])  # (B, Tm)
        c_skip, c_out, c_in, c_noise = precondition(sigma[:, None, :, None, None], self.cfg.sigma_data)
        out = self.net(c_in * x, c_noise.reshape(sigma.shape), cond)  # F_theta (B, C, T', H', W')
        denoised = torch.addcmul(c_skip * x, c_out, out.to(x.dtype))
        if cond.mask is not None:
            denoised = torch.where(cond.mask > 0, cond.frames, denoised)  # condition frames come out exactly
        return denoised


def sample_sigma(batch: int, mean: float, std: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """Log-normal noise levels (B,): ln(sigma) ~ N(mean, std^2)."""
    return (torch.randn(batch, device=device) * std + mean).exp()


def generated_frames(x0: torch.Tensor, cond: Condition) -> torch.Tensor:
    """(B, 1, T', 1, 1): 1 on the frames of x0 (B, C, T', H', W') the model generates (all but ``cond``'s given ones)."""
    if cond.mask is None:
        return torch.ones(x0.shape[0], 1, x0.shape[2], 1, 1, device=x0.device, dtype=x0.dtype)
    return 1 - cond.mask.to(x0.dtype)


def edm_loss(denoiser: EDMDenoiser, x0: torch.Tensor, cond: Condition,
             keep: torch.Tensor | None = None, where: torch.Tensor | None = None,
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
    """EDM training loss of clean latents x0 (B, C, T', H', W') under ``cond``, over generated frames only (or the
    frames ``keep`` (B, 1, T', 1, 1) marks); ``where`` (B, 1, T', H', W'): weights of the latent positions (mean 1
    over the kept ones; None: all 1)."""
    cfg = denoiser.cfg
    b, c, t, h, w = x0.shape
    sigma = sample_sigma(b, cfg.p_mean, cfg.p_std, x0.device)  # (B,)
    noisy = x0 + sigma.view(b, 1, 1, 1, 1) * torch.randn_like(x0)
    denoised = denoiser(noisy, sigma, cond)
    weight = loss_weight(sigma, cfg.sigma_data).view(b, 1, 1, 1, 1)
    keep = generated_frames(x0, cond) if keep is None else keep
    spread = keep if where is None else keep * where
    err = (weight * (denoised - x0).square() * spread).sum(dim=(1, 2, 3, 4))  # (B,)
    per_sample = err / (keep.sum(dim=(1, 2, 3, 4)) * c * h * w).clamp_min(1)
    mse = ((denoised - x0).square() * keep).sum() / (keep.sum() * c * h * w).clamp_min(1)
    return per_sample.mean(), {"mse": mse.detach(), "sigma": sigma.detach().log().mean()}


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """EDM eq. 5: ``steps`` noise levels from sigma_max down to sigma_min, plus a final 0; float64 (steps + 1,)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64) if steps > 1 else torch.zeros(1, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return torch.cat([(hi + ramp * (lo - hi)) ** rho, torch.zeros(1, dtype=torch.float64)])


def logsnr_sigmas(steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """``steps`` noise levels uniform in lambda = -ln(sigma) (geometric), plus a final 0; float64 (steps + 1,).

    The step-size schedule DPM-Solver recommends for its multistep solvers (Lu et al. 2022, arXiv 2206.00927,
    Sec. 3.3): a second-order multistep update has the same local error in every step when h is constant."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64) if steps > 1 else torch.zeros(1, dtype=torch.float64)
    sigmas = (math.log(sigma_max) + ramp * (math.log(sigma_min) - math.log(sigma_max))).exp()
    return torch.cat([sigmas, torch.zeros(1, dtype=torch.float64)])
