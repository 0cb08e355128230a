"""Training objective of the tokenizer: L1 / L2 + perceptual + temporal consistency (+ KL) (+ adversarial hinge).

Cosmos (arXiv 2501.03575, Sec. 3.1 "Training strategy") trains in two stages: first an L1 and perceptual loss,
then fine-tuning with an optical-flow temporal loss and a Gram-matrix loss; its released code has no adversarial
stage. Here:

* ``l1``: mean absolute pixel error;
* ``l2``: mean squared pixel error, what PSNR measures (on arm-world clips it reached a given PSNR in fewer
  steps than L1; benchmarks/RESULTS.md);
* ``perceptual``: an LPIPS-style distance between EfficientNet-lite0 feature maps (4 scales) of the input and
  reconstruction frames (the network of worldsmith/eval/features.py, a frozen copy owned by the loss), on the
  first frame plus ``perceptual_frames - 1`` random others of each clip (Cosmos uses VGG-19 features; none ship
  offline);
* ``temporal``: L1 between the frame differences of input and reconstruction, a flow-free temporal-consistency
  term that penalizes flicker and wrong motion magnitudes;
* ``kl``: KL(q(z|x) || N(0, I)) per latent element, for ``kl: true`` continuous models;
* ``image``: joint image training: a random frame of every clip is also encoded *as an image* and its loss added;
* ``adversarial``: hinge GAN loss with a per-frame patch discriminator (discriminator.py), owned by the loss.

``TokenizerLoss(cfg)`` is the whole objective as an ``nn.Module`` with the Trainer's ``loss(model, batch)`` shape.
It owns its networks: the frozen perceptual net (never saved) and the discriminator (trainable: the Trainer gives
it its own optimizer and checkpoints it in ``train_state/``, apart from the tokenizer's weights and EMA).

``crop`` > 0 trains on one random ``crop x crop`` window of each batch (offsets on the latent grid), drawn from
the global torch RNG, which the Trainer checkpoints, so a resumed run draws the same windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldsmith.errors import ConfigError
from worldsmith.eval.features import EfficientNetLite0, pretrained
from worldsmith.tokenizer.discriminator import PatchDiscriminator
from worldsmith.tokenizer.tensors import frames_of


@dataclass
class TokenizerLossConfig:
    """Weights of the reconstruction objective (Cosmos, arXiv 2501.03575 Sec. 3.1 "Training strategy")."""

    l1: float = 1.0  # pixel L1
    l2: float = 0.0  # pixel mean squared error (PSNR's own measure)
    perceptual: float = 0.1  # LPIPS-style EfficientNet-lite0 feature distance; 0 disables
    perceptual_frames: int = 4  # frames per clip through the feature net (first + random others); 0 = all
    temporal: float = 0.0  # L1 between frame differences of input and reconstruction (temporal consistency)
    kl: float = 1e-6  # KL weight, used only when the model has ``kl: true``
    image: float = 0.0  # joint image training: weight of the loss on random single frames encoded as images
    adversarial: float = 0.0  # > 0 adds a patch discriminator (hinge loss); use it to fine-tune a trained model
    disc_channels: int = 64  # width of the discriminator's first layer
    # train on a random crop x crop window of each batch (0: whole frames): the network is convolutional with
    # attention only at the lowest level, so it runs on whole frames afterwards; fewer pixels per step means more
    # steps per CPU-minute. Offsets are multiples of the spatial compression, so the crop keeps the latent grid.
    crop: int = 0

    def __post_init__(self) -> None:
        for name in ("l1", "l2", "perceptual", "temporal", "kl", "image", "adversarial"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name} must be >= 0, got {getattr(self, name)}.")
        if self.l1 == self.l2 == self.perceptual == 0:
            raise ConfigError("the loss needs a reconstruction term: set loss.l1, loss.l2 or loss.perceptual above 0.")
        if self.perceptual_frames < 0 or self.disc_channels < 8 or self.crop < 0:
            raise ConfigError("loss.perceptual_frames and loss.crop must be >= 0 and loss.disc_channels >= 8.")


def perceptual_frame_index(frames: int, count: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
    """The first frame plus ``count - 1`` random others (sorted); None = every frame."""
    if count == 0 or count >= frames:
        return None
    others = torch.randperm(frames - 1, generator=generator)[: count - 1] + 1
    return torch.cat([torch.zeros(1, dtype=torch.int64), others.sort().values])


def _unit(features: torch.Tensor) -> torch.Tensor:
    return features / (features.norm(dim=1, keepdim=True) + 1e-6)  # unit feature vector per position


def perceptual_loss(net: EfficientNetLite0, target: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """LPIPS-style distance (Zhang et al. 2018, eq. 1, with uniform channel weights) on the EfficientNet-lite0
    feature maps of ``net`` of two frame batches (N, 3, H, W) in [-1, 1]: squared distance of unit-normalized
    feature vectors, averaged over positions and the 4 scales; in [0, 4]."""
    with torch.no_grad():
        real = net.feature_maps(target)
    fake = net.feature_maps(recon)
    return torch.stack([(_unit(f) - _unit(r)).square().sum(1).mean() for f, r in zip(fake, real)]).mean()


def temporal_loss(target: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """L1 between frame differences (B, 3, T-1, H, W) of target and reconstruction; 0 for single frames."""
    if target.shape[2] < 2:
        return target.new_zeros(())
    return F.l1_loss(recon.diff(dim=2), target.diff(dim=2))


def kl_loss(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)), averaged over latent elements."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).mean()


def random_crop(video: torch.Tensor, crop: int, grid: int) -> torch.Tensor:
    """One random ``crop x crop`` window of a (B, 3, T, H, W) batch, at offsets that are multiples of ``grid``."""
    h, w = video.shape[-2:]
    if crop == 0 or (crop >= h and crop >= w):
        return video
    ch, cw = min(crop, h), min(crop, w)
    top = int(torch.randint(0, (h - ch) // grid + 1, ())) * grid
    left = int(torch.randint(0, (w - cw) // grid + 1, ())) * grid
    return video[..., top : top + ch, left : left + cw]  # (B, 3, T, ch, cw)


class TokenizerLoss(nn.Module):
    """``loss(model, batch) -> (loss, logs)`` for batches ``{"video": (B, 3, T, H, W) in [-1, 1]}``."""

    def __init__(self, cfg: TokenizerLossConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # frozen (requires_grad False, eval mode): the Trainer moves it with the loss and never saves it
        self.perceptual_net = pretrained(fold=True) if cfg.perceptual > 0 else None
        self.discriminator = PatchDiscriminator(cfg.disc_channels) if cfg.adversarial > 0 else None

    def train(self, mode: bool = True) -> "TokenizerLoss":
        super().train(mode)
        if self.perceptual_net is not None:
            self.perceptual_net.eval()  # a frozen feature net always runs in eval mode
        return self

    def reconstruction_terms(self, model: nn.Module, video: torch.Tensor) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """Weighted L1 + L2 + perceptual + temporal + KL of one (B, 3, T, H, W) batch -> (loss, logs, recon)."""
        cfg = self.cfg
        recon, extras = model(video)  # (B, 3, T, H, W)
        with torch.set_grad_enabled(torch.is_grad_enabled() and cfg.l1 > 0):  # logged always, differentiated if used
            l1 = F.l1_loss(recon, video)
        loss, logs = cfg.l1 * l1 if cfg.l1 > 0 else recon.new_zeros(()), {"l1": l1.detach()}
        if cfg.l2 > 0:
            l2 = F.mse_loss(recon, video)
            loss, logs["l2"] = loss + cfg.l2 * l2, l2.detach()
        if self.perceptual_net is not None:
            index = perceptual_frame_index(video.shape[2], cfg.perceptual_frames)
            perc = perceptual_loss(self.perceptual_net, frames_of(video, index), frames_of(recon, index))
            loss, logs["perceptual"] = loss + cfg.perceptual * perc, perc.detach()
        if cfg.temporal > 0 and video.shape[2] > 1:
            temp = temporal_loss(video, recon)
            loss, logs["temporal"] = loss + cfg.temporal * temp, temp.detach()
        if "logvar" in extras:  # a VAE's posterior
            kl = kl_loss(extras["mean"], extras["logvar"])
            loss, logs["kl"] = loss + cfg.kl * kl, kl.detach()
        return loss, logs, recon

    def forward(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg
        video = random_crop(batch["video"], cfg.crop, model.cfg.spatial_compression)
        # 1. reconstruction of the clips, and the PSNR of the clamped reconstruction (what a uint8 video shows)
        loss, logs, recon = self.reconstruction_terms(model, video)
        with torch.no_grad():
            mse = F.mse_loss(recon.clamp(-1, 1), video)
            logs["psnr"] = 10 * torch.log10(4.0 / mse.clamp_min(1e-10))  # peak-to-peak 2 in [-1, 1]
        # 2. joint image training: one random frame per clip, encoded as a one-frame video
        if cfg.image > 0 and video.shape[2] > 1:
            pick = torch.randint(0, video.shape[2], (video.shape[0],), device=video.device)
            images = video[torch.arange(video.shape[0], device=video.device), :, pick][:, :, None]  # (B, 3, 1, H, W)
            image_loss, image_logs, _ = self.reconstruction_terms(model, images)
            loss = loss + cfg.image * image_loss
            logs["image_l1"] = image_logs["l1"]
        # 3. adversarial fine-tuning: generator and discriminator terms in one backward pass (discriminator.py)
        if self.discriminator is not None:
            g_loss, d_loss = self.discriminator.losses(video, recon)
            loss = loss + cfg.adversarial * g_loss + d_loss
            logs["gan_g"], logs["gan_d"] = g_loss.detach(), d_loss.detach()
        return loss, logs
