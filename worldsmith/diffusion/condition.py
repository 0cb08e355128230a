"""``Condition``: everything a denoiser call is conditioned on, in one typed bundle.

* text: per-token states (B, L, D_text) + mask (B, L) for cross-attention. "No text" (caption dropout, the
  unconditional branch of guidance without a negative prompt) is one all-zero token: its keys and values are zero,
  so cross-attention adds nothing.
* Video2World: ``mask`` (B, 1, T', 1, 1) is 1 on the latent frames given as condition; ``frames`` holds their
  clean latents and ``frames_in`` the noise-augmented ones the network sees, at noise level ``sigma_cond`` (B,).
* ``fps``: latent frames per second (B,), scales RoPE time.
* ``extras``: values of extra condition embedders by name (see embedders.py); ``guided_branches`` builds the two
  branches of guidance on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from worldsmith.diffusion.embedders import GUIDED_KEEP


@dataclass
class Condition:
    text: torch.Tensor  # (B, L, D_text)
    text_mask: torch.Tensor  # (B, L) bool
    fps: torch.Tensor | None = None  # (B,) latent frames per second
    mask: torch.Tensor | None = None  # (B, 1, T', 1, 1) float, 1 at condition frames
    frames: torch.Tensor | None = None  # (B, C, T', H', W') clean condition latents (used where mask)
    frames_in: torch.Tensor | None = None  # (B, C, T', H', W') noise-augmented condition latents
    sigma_cond: torch.Tensor | None = None  # (B,) noise level of the augmented condition frames
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return self.text.shape[0]

    def with_text(self, text: torch.Tensor, text_mask: torch.Tensor) -> "Condition":
        """The same condition with other text (e.g. the negative prompt for guidance)."""
        if text.shape[0] == 1 and self.batch > 1:
            text, text_mask = text.expand(self.batch, -1, -1), text_mask.expand(self.batch, -1)
        return replace(self, text=text, text_mask=text_mask)

    def without_text(self) -> "Condition":
        return self.with_text(*null_text(self.batch, self.text.shape[-1], self.text.device))

    def to(self, device: torch.device | str) -> "Condition":
        def move(x):
            return x.to(device) if isinstance(x, torch.Tensor) else x

        return Condition(move(self.text), move(self.text_mask), move(self.fps), move(self.mask), move(self.frames),
                         move(self.frames_in), move(self.sigma_cond), {k: move(v) for k, v in self.extras.items()})  # fmt: skip

    def select(self, idx: torch.Tensor) -> "Condition":
        """The rows ``idx`` (a long tensor) of every per-sample field."""
        pick = lambda x: None if x is None else x[idx]  # noqa: E731
        return Condition(self.text[idx], self.text_mask[idx], pick(self.fps), pick(self.mask), pick(self.frames),
                         pick(self.frames_in), pick(self.sigma_cond), {k: v[idx] for k, v in self.extras.items()})  # fmt: skip

    def cat(self, other: "Condition") -> "Condition":
        """Stack two conditions along the batch (one forward for both guidance branches)."""
        length = max(self.text.shape[1], other.text.shape[1])

        def pad(x: torch.Tensor, value) -> torch.Tensor:
            extra = length - x.shape[1]
            return x if extra == 0 else F.pad(x, (0, 0, 0, extra) if x.ndim == 3 else (0, extra), value=value)

        def both(a, b):
            return None if a is None else torch.cat([a, b])

        return Condition(
            text=torch.cat([pad(self.text, 0.0), pad(other.text, 0.0)]),
            text_mask=torch.cat([pad(self.text_mask, False), pad(other.text_mask, False)]),
            fps=both(self.fps, other.fps), mask=both(self.mask, other.mask), frames=both(self.frames, other.frames),
            frames_in=both(self.frames_in, other.frames_in), sigma_cond=both(self.sigma_cond, other.sigma_cond),
            extras={k: torch.cat([v, other.extras[k]]) for k, v in self.extras.items()},
        )  # fmt: skip


def null_text(batch: int, dim: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The "no text" condition: one zero token per sample, (B, 1, D) and mask (B, 1) True."""
    return torch.zeros(batch, 1, dim, device=device), torch.ones(batch, 1, dtype=torch.bool, device=device)


def guided_branches(cond: Condition, uncond: Condition | None, s) -> tuple[Condition, Condition | None, float]:
    """(condition, unconditional branch, scale) for the sampler under ``SamplingConfig`` ``s``: text guidance
    (``s.guidance``; ``uncond`` is the no-text or negative-prompt condition) or, when ``s.condition_guidance`` is not
    1, guidance on the actions / camera / trajectory: the unconditional branch is the same condition with those
    embedders' contributions dropped (``extras[GUIDED_KEEP]`` = 0, see ``DiT._embed``)."""
    if s.condition_guidance == 1.0:
        return cond, uncond, s.guidance

    def keep(value: float) -> Condition:
        return replace(cond, extras={**cond.extras, GUIDED_KEEP: cond.text.new_full((cond.batch,), value)})

    return keep(1.0), keep(0.0), s.condition_guidance
