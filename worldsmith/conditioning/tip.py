"""The commanded fingertip as a spatial condition: where the robot's own state says its gripper is, drawn on the grid.

An arm rollout's gripper drifts: one step from the true frames lands it within 0.8 px of the truth, but the error grows
five-fold over 16 frames (benchmarks/RESULTS.md, action models). The rollout's origin and its travel
(conditioning/origin.py) tell the model how far the end effector has moved since a true frame, as vectors in the
noise embedding, and the model uses them little: turning "moved 4 cm along the gripper's x" into "the gripper is at
that pixel" is a projection a small DiT has to learn from a global vector. A robot knows its own pose
(proprioception) and its camera's calibration, so that projection need not be learnt: ``tips`` composes the origin's
measured end-effector pose with the travel (the commanded pose, as the arm world's controller composes it), puts the
fingertip ``offset`` metres along the end effector's x axis, and projects it through the camera. ``TipEmbedder``
("tip", target "tokens") turns that pixel into a bump on the token grid (Gaussians of three widths around it, its
offset from each token and its height), so the model reads where to draw the gripper at the token that draws it.

The body of a rollout, ``body`` (B, 33): the end-effector pose (position (3,), quaternion (w, x, y, z) (4,), the
finger opening (1,): the arm clips' ``ee`` array) of a frame, the camera intrinsics (3x3, row-major) and its
camera-to-world pose (4x4, OpenCV axes: x right, y down, z forward), as the arm world records them per frame. A rollout
without one (a user's image without its robot state) gets NaN tips, which the embedder turns into nothing: training
drops the tip with probability ``TIP_DROPOUT`` so the model also works without it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from worldsmith.conditioning.origin import moved_body, quat_to_mat
from worldsmith.errors import ConfigError

BODY_DIM = 33  # ee pose (8) + intrinsics (9) + camera-to-world (16)
TIP_DROPOUT = 0.1  # share of training windows whose tip is dropped (a rollout without the robot's state)
SCALES = (0.5, 1.0, 2.0)  # widths (in tokens) of the Gaussians around the tip


def body_of(ee: torch.Tensor, intrinsics: torch.Tensor, c2w: torch.Tensor) -> torch.Tensor:
    """Pack (..., 8) ee poses, (..., 3, 3) intrinsics and (..., 4, 4) camera poses into bodies (..., 33)."""
    return torch.cat([ee.float(), intrinsics.float().flatten(-2), c2w.float().flatten(-2)], dim=-1)


def world_body(world) -> torch.Tensor:
    """The body (33,) of a simulated arm world now: its measured end-effector pose and its main camera."""
    truth = world.truth()
    K, c2w = (torch.from_numpy(truth[k]) for k in ("intrinsics", "c2w"))
    return body_of(torch.from_numpy(truth["ee"]), K if K.ndim == 2 else K[0], c2w if c2w.ndim == 2 else c2w[0])


def body_kwargs(generator, bodies: list[torch.Tensor] | None) -> dict:
    """``{"body": (B, 33)}`` for a generator whose model draws the commanded fingertip (``model.tip``) when every
    rollout's body is known, else ``{}`` (other models' ``start_rollout`` takes no body)."""
    if not bodies or any(b is None for b in bodies) or not getattr(getattr(generator, "model", None), "cfg", None):
        return {}
    return {"body": torch.stack(bodies)} if getattr(generator.model.cfg, "tip", 0) else {}


def tips(body: torch.Tensor, states: torch.Tensor, offset: float) -> torch.Tensor:
    """Fingertips (B, T', 3) of travel ``states`` (B, T', >= 6) from the pose in ``body`` (B, 33): the pixel (u, v)
    of the point ``offset`` m along the commanded end effector's x axis, in [-1, 1] of the frame (-1: its left or
    top edge; the size from the intrinsics' principal point, so any frame size), and its height (m). Rows whose
    body holds NaN give NaN."""
    b, t = states.shape[:2]
    flat = states.reshape(b * t, -1)
    moved = moved_body(body.repeat_interleave(t, 0), flat)
    tip = moved[:, :3] + quat_to_mat(moved[:, 3:7])[:, :, 0] * offset  # (B*T', 3) world
    K, c2w = moved[:, 8:17].view(-1, 3, 3), moved[:, 17:33].view(-1, 4, 4)
    rot, origin = c2w[:, :3, :3], c2w[:, :3, 3]
    cam = (rot.transpose(1, 2) @ (tip - origin)[..., None])[..., 0]  # camera coordinates
    uv = (K @ cam[..., None])[..., :2, 0] / cam[:, 2:3].clamp_min(1e-6)
    # frame width and height from the principal point (at the centre, in pixel-index coordinates: (W - 1) / 2)
    size = 2 * torch.stack([K[:, 0, 2], K[:, 1, 2]], dim=1) + 1
    out = torch.cat([(uv + 0.5) / size * 2 - 1, tip[:, 2:3]], dim=1)
    return out.view(b, t, 3)


class TipEmbedder(nn.Module):
    """Fingertips (B, T', 3) -> per-token embeddings (B, T', h*w, D): features of each token's offset from the tip
    (Gaussians of ``SCALES`` tokens, the offset under the middle one, the height under two) through an MLP whose
    output starts at zero (a model post-trained with it starts out as its base). NaN tips embed to zero."""

    name = "tip"
    guidable = True  # it follows from the actions: condition guidance drops it with them
    target = "tokens"
    channels = 0

    def __init__(self, width: int, patch: int, hidden: int = 64) -> None:
        super().__init__()
        self.patch = patch
        self.fc1 = nn.Linear(len(SCALES) + 4, hidden)  # the bumps, the offset (2), the height (2)
        self.fc2 = nn.Linear(hidden, width, bias=False)
        nn.init.zeros_(self.fc2.weight)
        self.register_buffer("height", torch.tensor([0.0, 1.0]))  # mean and std of the training tips' heights

    @torch.no_grad()
    def set_scale(self, tip: torch.Tensor) -> None:
        heights = tip[..., 2].flatten()
        heights = heights[heights.isfinite()]
        if heights.numel():
            self.height.copy_(torch.stack([heights.mean(), heights.std().clamp_min(1e-3)]))

    def forward(self, tip: torch.Tensor, latent_shape: tuple[int, int, int, int]) -> torch.Tensor:
        b, t, hh, ww = latent_shape
        if tip.ndim != 3 or tip.shape[1:] != (t, 3):
            raise ConfigError(f"tip must be (B, {t}, 3): per latent frame the fingertip's pixel in [-1, 1] and its "
                              f"height; got {tuple(tip.shape)}.")  # fmt: skip
        h, w = hh // self.patch, ww // self.patch
        known = tip.isfinite().all(-1)  # (B, T')
        tip = torch.where(known[..., None], tip.float(), 0.0)
        ys = (torch.arange(h, device=tip.device) + 0.5) / h * 2 - 1
        xs = (torch.arange(w, device=tip.device) + 0.5) / w * 2 - 1
        dx = (tip[:, :, None, None, 0] - xs[None, None, None, :]) * (w / 2)  # (B, T', 1, w) in tokens
        dy = (tip[:, :, None, None, 1] - ys[None, None, :, None]) * (h / 2)  # (B, T', h, 1)
        dx, dy = torch.broadcast_tensors(dx, dy)  # (B, T', h, w)
        d2 = dx.square() + dy.square()
        bumps = [torch.exp(-d2 / (2 * s * s)) for s in SCALES]
        height = ((tip[..., 2] - self.height[0]) / self.height[1])[:, :, None, None]
        feats = torch.stack([*bumps, dx * bumps[1], dy * bumps[1], height * bumps[1], height * bumps[2]], dim=-1)
        out = self.fc2(F.silu(self.fc1(feats.to(self.fc1.weight.dtype))))  # (B, T', h, w, D)
        out = out * known[:, :, None, None, None].to(out.dtype)
        return out.reshape(b, t, h * w, -1)
