"""Video2World of a next-frame-only model, one latent frame at a time in latent space, as training sees it.

A ``model.dit.next_frame_only`` model predicts only the latent frame after its context. Continuing a video chunk by
chunk in pixels (decode each new frame, encode the last frames again as the next context) puts every context through
a decode/encode round trip that training never showed it (rollout training, ``model.rollout_depth``, feeds the
model its own latents). Here the given frames are encoded once, each new latent frame comes from
``DiffusionGenerator.window_step`` on the last ``context`` latents (as action rollouts and ``multiview.rollout_views``
step), and the whole video is decoded once at the end. A camera model gets each window's poses (and, with
``model.warp``, the first frame warped to them) from ``DiffusionGenerator.posed``. Row i draws its noise from its
own generator seeded ``seed + i``, so a video does not depend on its batch. On the shipped ``orbit-camera`` this
raised pose success over pixel chunks (benchmarks/RESULTS.md, "Camera rollouts in latent space").
"""

from __future__ import annotations

import torch

from worldsmith import progress
from worldsmith.diffusion.config import SamplingConfig


def continue_video(gen, video: torch.Tensor, frames: int, prompts: list[str], sampling: SamplingConfig,
                   seed: int, camera: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Videos (B, 3, frames, H, W) in [-1, 1]: ``video`` (B, 3, k, H, W) unchanged, then the frames that follow,
    generated latent frame by latent frame; ``camera`` (B, >= frames, 25): every frame's packed pose (camera
    models). The given frames are cut to ``1 + m * ct`` (whole latent frames) before encoding."""
    model, ct = gen.model, gen.ct
    given = video[:, :, : 1 + (video.shape[2] - 1) // ct * ct].to(gen.device, torch.float32)
    latents = 1 + (frames - 1 + ct - 1) // ct
    window = 1 + (gen.chunk_frames - 1) // ct
    context = min(sampling.context or model.cfg.max_cond_latents, window - 1)
    cond, uncond = gen.conditions(prompts, sampling)
    gens = [torch.Generator(gen.device).manual_seed(seed + i) for i in range(len(prompts))]
    out = [model.normalize(gen.tokenizer.encode(given))]
    have = out[0].shape[2]
    for n in range(have, latents):
        with progress.span(n - have, latents - have):
            z = torch.cat(out, dim=2)
            k = min(context, z.shape[2])
            posed, _ = gen.posed(cond, None, camera, (z.shape[2] - k) * ct, given[:, :, :1])
            out.append(gen.window_step(z[:, :, -k:], window, posed.extras or {}, cond, uncond, sampling, gens))
    x = gen.tokenizer.decode(model.denormalize(torch.cat(out, dim=2))).clamp(-1, 1)[:, :, :frames]
    keep = min(video.shape[2], frames)
    return torch.cat([video[:, :, :keep].to(x), x[:, :, keep:]], dim=2)
