"""Actions as a condition: one action per video transition, embedded per latent frame (Cosmos, Sec. 6.2).

A clip of T frames carries actions (T - 1, A): ``actions[t]`` is what the robot did between frame t and t + 1.
A latent frame covers ``chunk`` video frames (the tokenizer's temporal compression; 1 for an image tokenizer, so
every frame has its own latent and control is per frame). Latent frame i >= 1 is reached by the ``chunk`` actions
``actions[(i - 1) * chunk : i * chunk]``; latent frame 0 (the first, single video frame) by none. The embedder maps
each latent frame's action chunk through an MLP to a width-D vector, (B, T', D), which the backbone adds to its
per-frame noise embedding, so it reaches every block's AdaLN modulation (the reference: "an MLP over the action
chunk added to the timestep embedding").

Actions are divided by their per-dimension std on the training data (``scale``, a buffer saved with the weights;
``set_scale`` measures it): raw arm actions are metres and radians per frame, ~0.01, and would reach the noise
embedding (norm ~25) a thousand times too weakly to steer anything. No bias anywhere: zero actions embed to exactly
zero, i.e. exactly the model without actions; a missing action (frame 0, or a chunk past the end of the given
actions) is zero too. The last layer starts at zero, so a base model post-trained with a fresh embedder starts out
as the base model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from worldsmith.errors import ConfigError


class ActionEmbedder(nn.Module):
    name = "actions"  # its value's key in the batch / Condition.extras
    guidable = True  # condition guidance may drop it (``SamplingConfig.condition_guidance``)
    target = "modulation"
    channels = 0

    def __init__(self, action_dim: int, width: int, chunk: int = 1, hidden: int = 256) -> None:
        super().__init__()
        self.action_dim, self.chunk = action_dim, chunk
        self.fc1 = nn.Linear(chunk * action_dim, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, width, bias=False)
        nn.init.zeros_(self.fc2.weight)
        self.register_buffer("scale", torch.ones(action_dim))  # per-dimension std of the training actions

    @torch.no_grad()
    def set_scale(self, actions: torch.Tensor) -> None:
        """Measure the per-dimension std of actions (..., A) from the training data."""
        self.scale.copy_(actions.reshape(-1, self.action_dim).float().std(0).clamp_min(1e-3))

    def per_latent_frame(self, actions: torch.Tensor, latent_frames: int) -> torch.Tensor:
        """actions (B, N, A) per transition -> (B, T', chunk * A): each latent frame's chunk, zeros where none."""
        b, n, a = actions.shape
        if a != self.action_dim:
            raise ConfigError(f"this model takes actions of {self.action_dim} numbers per frame, got {a}.")
        need = (latent_frames - 1) * self.chunk
        actions = F.pad(actions, (0, 0, 0, max(need - n, 0)))[:, :need]  # (B, (T'-1)*chunk, A)
        chunks = actions.reshape(b, latent_frames - 1, self.chunk * a)
        return F.pad(chunks, (0, 0, 1, 0))  # (B, T', chunk*A): latent frame 0 has no action

    def forward(self, actions: torch.Tensor, latent_shape: tuple[int, int, int, int]) -> torch.Tensor:
        """actions (B, N, A) -> (B, T', D) added to the noise embedding of each latent frame."""
        if actions.ndim != 3 or actions.shape[-1] != self.action_dim:
            raise ConfigError(f"this model takes actions of {self.action_dim} numbers per frame, got shape "
                              f"{tuple(actions.shape)}.")  # fmt: skip
        x = self.per_latent_frame(actions.float() / self.scale, latent_shape[1])
        return self.fc2(F.silu(self.fc1(x)))
