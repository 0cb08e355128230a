"""Multi-view generation with a ``views`` model (``worldsmith posttrain views``): synchronized first frames of V
cameras and the ego trajectory in, every view's video out.

The views' latents are stacked along the height (conditioning/views.py) and generated jointly, one latent frame at a
time with a sliding window exactly as the model was trained (``data.window`` latent frames: the last ``context``
given, noise-augmented at ``context_sigma``, the rest generated and the first of them kept), so rollouts have any
length. Each window sees the trajectory of the video frames it covers; the trajectory embedder re-expresses it
relative to the window's first frame. ``view_ids`` picks which rig positions the given views are (default 0..V-1);
one view at a time (``view_ids=[v]``) is the independent-generation floor of ``worldsmith eval multiview``.
A warp-anchored model (``model.warp``) also sees, per window, each view's first frame warped to its camera at the
window's frames (conditioning/warp.py: the rig it measured at training carried along the trajectory) and generates
its correction of that warp.
"""

from __future__ import annotations

import numpy as np
import torch

from worldsmith import progress
from worldsmith.conditioning.views import split_views, stack_views
from worldsmith.conditioning.warp import rig_path, warp_first
from worldsmith.diffusion.config import SamplingConfig
from worldsmith.errors import ConfigError
from worldsmith.family import GenerationRequest
from worldsmith.io.frames import fit_frames
from worldsmith.io.video import to_tensor, to_uint8

def check_views_model(gen) -> None:
    if not gen.model.cfg.views:
        raise ConfigError("this model generates one camera; drop --input-views/--trajectory or use a model "
                          "post-trained with `worldsmith posttrain views`.")  # fmt: skip


@torch.no_grad()
def rollout_views(gen, views: torch.Tensor, trajectory: torch.Tensor | None, frames: int, prompts: list[str],
                  sampling: SamplingConfig | None = None, seed: int = 0,
                  view_ids: list[int] | None = None) -> torch.Tensor:  # fmt: skip
    """Videos (B, V, 3, frames, H, W) in [-1, 1] continuing ``views`` (B, V, 3, k, H, W) (the given frames of every
    view, front first) along ``trajectory`` (B, >= frames, 4) ego states per frame (trajectory models).
    Row i draws its noise from seed + i."""
    check_views_model(gen)
    model, ct = gen.model, gen.ct
    if views.ndim != 6 or views.shape[2] != 3 or views.shape[0] != len(prompts):
        raise ConfigError(f"views must be float (B={len(prompts)}, V, 3, k, H, W), got {tuple(views.shape)}.")
    b, v = views.shape[:2]
    ids = list(range(v)) if view_ids is None else list(view_ids)
    if len(ids) != v or max(ids) >= model.cfg.views or min(ids) < 0:
        raise ConfigError(f"this model knows {model.cfg.views} views (0..{model.cfg.views - 1}); got view ids {ids} "
                          f"for {v} given views.")  # fmt: skip
    latents = 1 + (frames - 1 + ct - 1) // ct
    if model.cfg.trajectory:
        if trajectory is None or trajectory.ndim != 3 or trajectory.shape[0] != b or trajectory.shape[2] != 4:
            raise ConfigError(f"this model follows an ego trajectory: give (B={b}, >= {frames}, 4) states (x, y, yaw, "
                              f"speed) per frame (--trajectory), got "
                              f"{None if trajectory is None else tuple(trajectory.shape)}.")  # fmt: skip
        if trajectory.shape[1] < 1 + (latents - 1) * ct:
            raise ConfigError(f"{frames} frames need a trajectory of {1 + (latents - 1) * ct} states, got "
                              f"{trajectory.shape[1]}.")  # fmt: skip
        trajectory = trajectory.to(gen.device, torch.float32)
    s = sampling or gen.default_sampling()
    video = views[:, :, :, : 1 + (views.shape[3] - 1) // ct * ct].to(gen.device, torch.float32)
    z = stack_views([model.normalize(gen.tokenizer.encode(video[:, i])) for i in range(v)])  # (B, C, L, V*H', W')
    window = 1 + (gen.chunk_frames - 1) // ct
    context = min(s.context or model.cfg.max_cond_latents, window - 1)
    cond, uncond = gen.conditions(prompts, s)
    if model.cfg.warp:  # every camera of the rig along the trajectory, for the first frames' warps
        mounts, K = rig_cameras(model.cfg, ids)
        poses = rig_path(trajectory, mounts)  # (B, T, V, 4, 4)
    ids_t = torch.tensor(ids, device=gen.device).expand(b, v)
    gens = [torch.Generator(gen.device).manual_seed(seed + i) for i in range(b)]
    out = [z]
    for n in range(z.shape[2], latents):
        with progress.span(n - z.shape[2], latents - z.shape[2]):
            have = torch.cat(out, dim=2)
            k = min(context, have.shape[2])
            extras = {"views": ids_t}
            if model.cfg.trajectory:  # the states of the video frames this window covers (the last one repeats)
                first = (have.shape[2] - k) * ct
                idx = torch.arange(first, first + 1 + (window - 1) * ct, device=gen.device)
                idx = idx.clamp_max(trajectory.shape[1] - 1)
                extras["trajectory"] = trajectory[:, idx]
            if model.cfg.warp:
                extras["warped"] = warped_window(gen, video[:, :, :, 0], poses, idx, K)
            out.append(gen.window_step(have[:, :, -k:], window, extras, cond, uncond, s, gens))
    z = model.denormalize(torch.cat(out, dim=2))
    decoded = [gen.tokenizer.decode(part).clamp(-1, 1)[:, :, :frames] for part in split_views(z, v)]
    result = torch.stack(decoded, dim=1)  # (B, V, 3, frames, H, W)
    given = min(video.shape[3], frames)
    return torch.cat([video[:, :, :, :given], result[:, :, :, given:]], dim=3)


def rig_cameras(cfg, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """A warp model's cameras ``ids``: their camera-to-car poses (V, 4, 4) and intrinsics (V, 3, 3) (float64)."""
    if len(cfg.rig_mounts) <= max(ids):
        raise ConfigError(f"this warp model knows the rig of {len(cfg.rig_mounts)} views (model.rig_mounts, measured "
                          f"at training); views {ids} were asked for: retrain it on clips with every view's c2w, "
                          f"intrinsics and ego states.")  # fmt: skip
    mounts = torch.tensor([cfg.rig_mounts[i] for i in ids], dtype=torch.float64).reshape(-1, 4, 4)
    return mounts, torch.tensor([cfg.rig_intrinsics[i] for i in ids], dtype=torch.float64).reshape(-1, 3, 3)


def warped_window(gen, first: torch.Tensor, poses: torch.Tensor, idx: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Model-space latents (B, C, T', V*H', W'): each view's first frame (B, V, 3, H, W) warped from its camera at
    frame 0 of ``poses`` (B, T, V, 4, 4) to its cameras at video frames ``idx`` (intrinsics K (V, 3, 3)), encoded."""
    b, v = first.shape[:2]
    out = []
    for i in range(v):
        warped = warp_first(first[:, i].float(), K[i].to(first.device).expand(b, 3, 3), poses[:, 0, i], poses[:, idx, i])
        out.append(gen.model.normalize(gen.tokenizer.encode(warped)))
    return stack_views(out)


def generate_request(gen, request: GenerationRequest, sampling: SamplingConfig | None) -> np.ndarray:
    """A request's views (``video`` = the front view, ``views`` = the others, in rig order) and trajectory ->
    uint8 (frames, H, V*W, 3): the views side by side, front first."""
    check_views_model(gen)
    if request.video is None:
        raise ConfigError("this model continues synchronized views: give the first frame of every view "
                          "(--input-views front.png,left.png,right.png).")  # fmt: skip
    inputs = [request.video, *(request.views or [])]
    if len({tuple(x.shape[1:3]) for x in inputs}) != 1:
        raise ConfigError(f"every view must have the same size, got {[tuple(x.shape[1:3]) for x in inputs]}.")
    k = min(len(x) for x in inputs)
    views = torch.stack([to_tensor(fit_frames(x[:k], gen.size, gen.cs)) for x in inputs])[None]  # (1, V, 3, k, H, W)
    trajectory = None
    if request.trajectory is not None:
        trajectory = torch.as_tensor(np.asarray(request.trajectory, dtype=np.float32))[None]
    frames = request.frames or (trajectory.shape[1] if trajectory is not None else gen.chunk_frames)
    out = rollout_views(gen, views, trajectory, frames, [request.prompt], sampling, request.seed)[0]  # (V, 3, T, H, W)
    return to_uint8(torch.cat(list(out), dim=-1).cpu())
