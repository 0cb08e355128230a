"""The motion-weighted loss (``model.motion_weight``): the latent positions that change weigh more."""

from __future__ import annotations

import pytest
import torch

from worldsmith.config import merge
from worldsmith.diffusion.config import PRESETS
from worldsmith.diffusion.losses import motion_weights, world_model_loss
from worldsmith.diffusion.model import DiffusionWorldModel
from worldsmith.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NEXT = {"dit": {"anchor_frames": 2, "next_frame_only": True}, "video2world_prob": 1.0, "max_cond_latents": 2}


def test_weights_follow_the_change_and_keep_the_mean():
    x0 = torch.zeros(2, 4, 3, 4, 4)
    x0[0, :, 2, 1, 2] = 3.0  # sample 0: one position of frame 2 changes
    x0[1, :, 2] = 0.5  # sample 1: all of frame 2 changes alike
    keep = torch.zeros(2, 1, 3, 1, 1)
    keep[:, :, 2] = 1  # the loss covers frame 2
    w = motion_weights(x0, keep, strength=1.0)
    assert w.shape == (2, 1, 3, 4, 4)
    assert torch.allclose(w[:, :, 2].mean(dim=(1, 2, 3)), torch.ones(2))  # mean 1 over the covered positions
    moved = w[0, 0, 2, 1, 2]
    assert torch.allclose(moved / w[0, 0, 2, 0, 0], torch.tensor(17.0))  # 1 + 16 against 1, before the common scale
    assert torch.allclose(w[1, :, 2], torch.ones(1, 4, 4))  # uniform change: uniform weights
    assert torch.equal(motion_weights(torch.zeros_like(x0), keep, 1.0), torch.ones_like(w))  # no change at all
    assert torch.allclose(motion_weights(x0, keep, 0.0), torch.ones_like(w))


def losses_of(latents: torch.Tensor, strength: float) -> torch.Tensor:
    torch.manual_seed(0)
    model = DiffusionWorldModel(merge(PRESETS["tiny"](), NEXT | {"motion_weight": strength}))
    with torch.no_grad():  # non-zero outputs, as a trained model has
        for p in model.parameters():
            if not p.any():
                p.normal_(std=0.05)
    b = latents.shape[0]
    batch = {"latents": latents, "text": torch.randn(b, 3, 384), "text_mask": torch.ones(b, 3, dtype=torch.bool)}
    torch.manual_seed(1)
    loss, _ = world_model_loss(model, batch, given=2)
    return loss


def test_the_loss_changes_only_where_frames_move():
    torch.manual_seed(2)
    static = torch.randn(2, 16, 1, 4, 4).expand(-1, -1, 3, -1, -1).contiguous()  # three equal frames
    assert torch.allclose(losses_of(static, 0.0), losses_of(static, 2.0))
    moving = static.clone()
    moving[:, :, 2, 0, 0] += 4.0  # one position of the generated frame moves
    plain, weighted = losses_of(moving, 0.0), losses_of(moving, 2.0)
    assert torch.isfinite(weighted) and weighted.requires_grad
    assert not torch.allclose(plain, weighted)


def test_a_negative_strength_is_refused():
    with pytest.raises(ConfigError, match="motion_weight must be >= 0"):
        merge(PRESETS["tiny"](), {"motion_weight": -1.0})
