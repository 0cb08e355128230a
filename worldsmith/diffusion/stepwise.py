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

import numpy as np
import torch

from worldsmith import progress
from worldsmith.conditioning.camera import pack_camera
from worldsmith.diffusion.config import SamplingConfig
from worldsmith.errors import ConfigError
from worldsmith.io.video import to_tensor, to_uint8


def window_and_context(gen, sampling: SamplingConfig) -> tuple[int, int]:
    """(latent frames per model call, as in training; latent frames given per call) for ``gen`` under ``sampling``."""
    window = 1 + (gen.chunk_frames - 1) // gen.ct
    return window, min(sampling.context or gen.model.cfg.max_cond_latents, window - 1)


def continue_video(gen, video: torch.Tensor, frames: int, prompts: list[str], sampling: SamplingConfig,
                   seed: int, camera: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Videos (B, 3, frames, H, W) in [-1, 1]: ``video`` (B, 3, k, H, W) unchanged, then the frames that follow,
    generated latent frame by latent frame; ``camera`` (B, >= frames, 25): every frame's packed pose (camera
    models). The given frames are cut to ``1 + m * ct`` (whole latent frames) before encoding."""
    model, ct = gen.model, gen.ct
    given = video[:, :, : 1 + (video.shape[2] - 1) // ct * ct].to(gen.device, torch.float32)
    latents = 1 + (frames - 1 + ct - 1) // ct
    window, context = window_and_context(gen, sampling)
    cond, uncond = gen.conditions(prompts, sampling)
    gens = [torch.Generator(gen.device).manual_seed(seed + i) for i in range(len(prompts))]
    out = [model.normalize(gen.tokenizer.encode(given))]
    have = out[0].shape[2]
    for n in range(have, latents):
        with progress.span(n - have, latents - have):
            z = torch.cat(out, dim=2)
            k = min(context, z.shape[2])
            posed, _ = gen.posed(cond, None, camera, (z.shape[2] - k) * ct, given[:, :, :1])
            out.append(gen.window_step(z[:, :, -k:], window, posed.extras, cond, uncond, sampling, gens))
    x = gen.tokenizer.decode(model.denormalize(torch.cat(out, dim=2))).clamp(-1, 1)[:, :, :frames]
    keep = min(video.shape[2], frames)
    return torch.cat([video[:, :, :keep].to(x), x[:, :, keep:]], dim=2)


class CameraRollout:
    """A camera model stepped one pose at a time (play sessions: each key press moves the camera): ``reset`` with a
    first frame, its intrinsics and camera-to-world pose; ``step(c2w)`` generates the frame seen from the next pose,
    with the same windows as ``continue_video``. Poses are OpenCV camera-to-world in the world's frame (the floor at
    z = 0, which a warp model needs), or relative to a first pose of identity (placed at the model's typical
    height and pitch, as named paths are). Memory stays bounded: the last ``context`` latents, the first frame
    and pose, and the window's poses."""

    def __init__(self, gen, sampling: SamplingConfig | None = None, seed: int = 0) -> None:
        cfg = gen.model.cfg
        if not cfg.camera or not cfg.dit.next_frame_only or gen.ct != 1:
            raise ConfigError("stepping a camera one pose at a time needs a next-frame-only camera model on a "
                              "per-frame (ct=1) tokenizer, such as orbit-camera.")  # fmt: skip
        self.gen, self.sampling, self.seed = gen, sampling or gen.default_sampling(), seed
        self.window, self.context = window_and_context(gen, self.sampling)
        self.cond, self.uncond = gen.conditions([""], self.sampling)
        self.first = self.z = None
        self.poses: list[np.ndarray] = []

    @torch.no_grad()
    def reset(self, frame: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> None:
        """Start from ``frame`` uint8 (S, S, 3) at the model's size, seen with intrinsics ``K`` (3, 3) from ``c2w``."""
        gen = self.gen
        if frame.shape != (gen.size, gen.size, 3) or np.shape(K) != (3, 3) or np.shape(c2w) != (4, 4):
            raise ConfigError(f"a camera rollout starts from a uint8 ({gen.size}, {gen.size}, 3) frame, K (3, 3) and a "
                              f"c2w (4, 4); got {frame.shape}, {np.shape(K)}, {np.shape(c2w)}.")  # fmt: skip
        self.first = to_tensor(frame[None])[None].to(gen.device)  # (1, 3, 1, S, S)
        self.z = gen.model.normalize(gen.tokenizer.encode(self.first))
        self.K, self.first_pose = np.asarray(K, dtype=np.float64), np.asarray(c2w, dtype=np.float64)
        self.poses = [self.first_pose]  # the last context + 1 poses
        self.generators = [torch.Generator(gen.device).manual_seed(self.seed)]

    @torch.no_grad()
    def step(self, c2w: np.ndarray) -> np.ndarray:
        """The frame uint8 (S, S, 3) seen from the next pose ``c2w`` (4, 4)."""
        if self.z is None:
            raise ConfigError("call reset() before step() on a camera rollout.")
        gen, k = self.gen, min(self.context, self.z.shape[2])
        self.poses = (self.poses + [np.asarray(c2w, dtype=np.float64)])[-(k + 1) :]  # the context's, then the new
        camera = pack_camera(torch.from_numpy(np.stack([self.first_pose] + self.poses))[None],
                             torch.from_numpy(self.K)[None, None])  # fmt: skip
        posed, _ = gen.posed(self.cond, None, camera, 1, self.first)  # frame 0: the first pose (for the warp)
        new = gen.window_step(self.z[:, :, -k:], self.window, posed.extras, self.cond, self.uncond, self.sampling,
                              self.generators)  # fmt: skip
        self.z = torch.cat([self.z, new], dim=2)[:, :, -self.context :]
        return to_uint8(gen.tokenizer.decode(gen.model.denormalize(new)).clamp(-1, 1)[0].cpu())[0]
