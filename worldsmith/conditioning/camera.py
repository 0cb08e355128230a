"""Camera poses as a condition: Plücker ray embeddings per latent pixel (Cosmos, arXiv 2501.03575, Sec. 6.1).

A clip's cameras are OpenCV intrinsics ``K`` (3, 3) in the sample's pixels and camera-to-world ``c2w`` (4, 4) per
frame (x right, y down, z forward). They travel packed as one tensor per latent frame, ``camera`` (B, T', 25) =
``c2w`` flattened (16) + ``K`` flattened (9) (``pack_camera``). A latent frame that covers ``ct`` video frames
(temporal compression) takes the pose of the last frame of its group; latent frame 0 is video frame 0
(``per_latent_frame``): with the per-frame tokenizers the shipped models use, every frame has its own pose.

The embedder re-expresses every pose relative to the first latent frame of the window it sees (so a model never
depends on where the world's origin is, and a sliding window is the same problem as a first chunk), or with
``reference = "previous"`` each pose relative to the latent frame before it (frame 0 to itself): the step's camera
motion, which is what a step-by-step (``next_frame_only``) model must turn into image motion from its last given
frame; there the rays of the unmoved camera are subtracted, so a still camera embeds to zero. It casts one ray
through the centre of every latent pixel (``stride`` image pixels per latent pixel), and forms the Plücker
coordinates (o x d, d) of each ray: 6 channels per latent pixel, unit directions, translations in the world's
units (metres in the built-in worlds). The paper concatenates these as channels to the latents; with a linear patch
embedding that is exactly adding a linear projection of each token's ray patch to the token, which is what this
embedder does (``target = "tokens"``). Its projection starts at zero, so a base model post-trained with it starts
as the base (a channel concatenation would change the base's patch embedding instead). ``every_block`` instead
gives each of the DiT's ``depth`` blocks its own projection, added to the tokens before the block (cosmos-predict2's
way, ``target = "blocks"``).
"""

from __future__ import annotations

import torch
from torch import nn

from worldsmith.errors import ConfigError
from worldsmith.nn.embeddings import patchify

PACKED = 25  # 16 (c2w) + 9 (K)


def pack_camera(c2w: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """c2w (..., 4, 4) and K (..., 3, 3) (or one K (3, 3) for all) -> (..., 25)."""
    c2w, K = torch.as_tensor(c2w).float(), torch.as_tensor(K).float()
    if c2w.shape[-2:] != (4, 4) or K.shape[-2:] != (3, 3):
        raise ConfigError(f"cameras must be c2w (..., 4, 4) and K (..., 3, 3), got {tuple(c2w.shape)} and {tuple(K.shape)}.")
    K = K.expand(*c2w.shape[:-2], 3, 3)
    return torch.cat([c2w.flatten(-2), K.flatten(-2)], dim=-1)


def unpack_camera(camera: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 25) -> c2w (..., 4, 4), K (..., 3, 3)."""
    if camera.shape[-1] != PACKED:
        raise ConfigError(f"a packed camera has {PACKED} numbers (c2w 16 + K 9), got shape {tuple(camera.shape)}.")
    return camera[..., :16].unflatten(-1, (4, 4)), camera[..., 16:].unflatten(-1, (3, 3))


def per_latent_frame(camera: torch.Tensor, chunk: int) -> torch.Tensor:
    """Per video frame (B, T, 25) -> per latent frame (B, 1 + (T - 1) // chunk, 25): frame 0, then the last frame
    of each group of ``chunk``."""
    idx = torch.arange(0, camera.shape[1], chunk, device=camera.device)[: 1 + (camera.shape[1] - 1) // chunk]
    return camera[:, idx]


def relative_to_first(c2w: torch.Tensor) -> torch.Tensor:
    """(B, T, 4, 4) -> the same poses in the first camera's frame: inv(c2w[:, 0]) @ c2w[:, t]."""
    return torch.linalg.inv(c2w[:, :1]) @ c2w


def relative_to_previous(c2w: torch.Tensor) -> torch.Tensor:
    """(B, T, 4, 4) -> each pose in the previous frame's camera frame: inv(c2w[:, t-1]) @ c2w[:, t]; frame 0 is the
    identity."""
    prev = torch.cat([c2w[:, :1], c2w[:, :-1]], dim=1)
    return torch.linalg.inv(prev) @ c2w


REFERENCES = ("first", "previous")  # what a pose (or an ego state, conditioning/views.py) is relative to


def plucker_rays(c2w: torch.Tensor, K: torch.Tensor, height: int, width: int, stride: float = 1.0) -> torch.Tensor:
    """Plücker coordinates (o x d, d) of the rays through the centres of a ``height`` x ``width`` grid whose cells
    are ``stride`` image pixels wide: c2w (B, T, 4, 4), K (B, T, 3, 3) in image pixels -> (B, T, 6, H, W)."""
    dev, dt = c2w.device, torch.float32
    # centre of latent cell i in image pixels (integer pixel centres, as OpenCV K): i * stride + (stride - 1) / 2
    v = torch.arange(height, device=dev, dtype=dt) * stride + (stride - 1) / 2
    u = torch.arange(width, device=dev, dtype=dt) * stride + (stride - 1) / 2
    pix = torch.stack([u[None, :].expand(height, width), v[:, None].expand(height, width),
                       torch.ones(height, width, device=dev)], dim=-1)  # (H, W, 3)  # fmt: skip
    d_cam = torch.einsum("btij,hwj->bthwi", torch.linalg.inv(K.float()), pix)  # (B, T, H, W, 3)
    d = torch.einsum("btij,bthwj->bthwi", c2w[..., :3, :3].float(), d_cam)
    d = d / d.norm(dim=-1, keepdim=True)
    o = c2w[..., :3, 3].float()[:, :, None, None].expand_as(d)
    return torch.cat([torch.linalg.cross(o, d), d], dim=-1).permute(0, 1, 4, 2, 3)  # (B, T, 6, H, W)


class CameraEmbedder(nn.Module):
    """Packed cameras (B, T', 25) -> (B, T', h*w, D) added to the DiT's tokens after the patch embedding, or with
    ``every_block`` = depth, (B, T', h*w, depth*D): a slice before each block.

    ``stride``: image pixels per latent pixel (the tokenizer's spatial compression); ``patch``: the DiT's patch."""

    name = "camera"  # its value's key in the batch / Condition.extras
    guidable = True  # condition guidance may drop it (``SamplingConfig.condition_guidance``)
    channels = 0

    def __init__(self, width: int, patch: int, stride: int, every_block: int = 0, reference: str = "first") -> None:
        super().__init__()
        if reference not in REFERENCES:
            raise ConfigError(f"model.camera_reference must be one of {', '.join(REFERENCES)}, got {reference!r}.")
        self.patch, self.stride, self.reference = patch, stride, reference
        self.target = "blocks" if every_block else "tokens"
        self.proj = nn.Linear(6 * patch * patch, width * max(every_block, 1), bias=False)
        nn.init.zeros_(self.proj.weight)
        self.register_buffer("scale", torch.ones(6))  # per-channel std of the training windows' rays (set_scale)

    @torch.no_grad()
    def set_scale(self, camera: torch.Tensor, grid: tuple[int, int]) -> None:
        """Measure the per-channel std of the rays of training windows' cameras (N, T', 25) on the latent grid
        ``grid`` (H', W'). A step's camera motion moves the rays by ~0.01 (centimetres, a degree): unscaled, it would
        reach the zero-initialised projection as nothing (as raw arm actions would, conditioning/action.py)."""
        rays = self.rays(camera, (*camera.shape[:2], *grid), scaled=False)  # (N, T', 6, H', W')
        self.scale.copy_(rays.transpose(0, 2).reshape(6, -1).std(1).clamp_min(1e-4))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # runs saved before the scale existed trained on unscaled rays
        state_dict.setdefault(prefix + "scale", torch.ones(6))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def rays(self, camera: torch.Tensor, latent_shape: tuple[int, int, int, int], scaled: bool = True) -> torch.Tensor:
        """(B, T', 25) -> Plücker rays (B, T', 6, H', W') relative to the first latent frame, or (``previous``) each
        relative to the frame before it, minus the rays of the unmoved camera; divided by ``scale`` (``scaled``)."""
        b, t, hh, ww = latent_shape
        if camera.ndim != 3 or camera.shape[0] != b or camera.shape[1] != t or camera.shape[2] != PACKED:
            raise ConfigError(f"this model takes one camera per latent frame, packed (B={b}, T'={t}, {PACKED}) (c2w + K), "
                              f"got shape {tuple(camera.shape)}.")  # fmt: skip
        c2w, K = unpack_camera(camera.float())
        if self.reference == "first":
            rays = plucker_rays(relative_to_first(c2w), K, hh, ww, self.stride)
        else:
            still = torch.eye(4, device=c2w.device).expand_as(c2w)
            rays = plucker_rays(relative_to_previous(c2w), K, hh, ww, self.stride) - plucker_rays(still, K, hh, ww, self.stride)
        return rays / self.scale.view(6, 1, 1) if scaled else rays

    def forward(self, camera: torch.Tensor, latent_shape: tuple[int, int, int, int]) -> torch.Tensor:
        r = patchify(self.rays(camera, latent_shape).transpose(1, 2), self.patch)  # (B, T', h*w, 6*p*p)
        return self.proj(r.to(self.proj.weight.dtype))
