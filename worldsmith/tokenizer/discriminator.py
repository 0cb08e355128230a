"""Per-frame patch discriminator for the optional adversarial fine-tuning stage (hinge loss).

The reference tokenizer code has no adversarial stage; users asked for one to sharpen reconstructions after the
L1/perceptual stage. Enable it by fine-tuning a trained model with ``loss.adversarial > 0`` (see
``worldsmith train tokenizer --init-from``). The discriminator belongs to the loss (``TokenizerLoss`` in
losses.py), never to the tokenizer: the shared Trainer gives it its own optimizer, keeps it out of the EMA and of
``model.safetensors``, and checkpoints it in ``train_state/``.

Single-backward formulation: the generator term is computed through a *detached copy of the discriminator's
parameters* (``torch.func.functional_call``), so it only moves the tokenizer, and the discriminator term sees the
reconstruction detached, so it only moves the discriminator; the two are summed and one backward pass gives both
networks their gradients, each then stepped by its own optimizer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from worldsmith.tokenizer.tensors import frames_of


class PatchDiscriminator(nn.Module):
    """(N, 3, H, W) in [-1, 1] -> real/fake logits per patch (N, 1, H/8, W/8); three stride-2 convs."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(3, c, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.GroupNorm(8, 2 * c), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 4 * c, 4, 2, 1), nn.GroupNorm(8, 4 * c), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * c, 1, 3, 1, 1),
        )  # fmt: skip

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames)

    def losses(self, video: torch.Tensor, recon: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(generator loss, discriminator loss) for videos (B, 3, T, H, W)."""
        real, fake = frames_of(video), frames_of(recon)  # (B*T, 3, H, W)
        frozen = {name: p.detach() for name, p in self.named_parameters()}
        g_loss = -functional_call(self, frozen, (fake,)).mean()  # gradients reach the tokenizer only
        d_loss = F.relu(1 - self(real)).mean() + F.relu(1 + self(fake.detach())).mean()  # reach D only
        return g_loss, d_loss
