"""Several synchronized cameras and the ego trajectory as conditions (Cosmos' multi-view driving models, Sec. 6.3).

Layout. V views of one clip are generated jointly as one latent: each view's tokenizer latents (C, T', H', W') are
stacked along the height, (C, T', V*H', W'), view 0 (the front camera) on top. Everything that works on latents
(noise, Video2World condition frames, the sampler, residual targets) is then unchanged; the DiT, told the views by
``Condition.extras["views"]`` (B, V) (the view index of each stacked view), gives every view its own (t, h, w)
positions, keeps its per-frame convolutions inside each view, and attends jointly over all views and frames. The
view count comes from the data (1..``max_views``); one view is the plain single-camera model.

``ViewEmbedder`` (target "tokens"): a learned vector per view index (the rig position: front, front_left, ...)
added to that view's tokens, so the model knows which camera a token belongs to. It starts at zero (a base
post-trained with it starts as the base applied to each view).

``TrajectoryEmbedder`` (target "modulation"): the ego vehicle's states per video frame, (B, T, 4) = (x, y, yaw,
speed) in any world frame (metres, radians, m/s). They are re-expressed relative to the first frame of the window
the model sees (forward and left offsets in that frame's heading, yaw change, speed), so a sliding window is the
same problem as a first chunk and the world's origin does not matter. A latent frame covering ``chunk`` video frames
takes its group's states (latent frame 0 takes frame 0's, repeated); divided by their per-dimension std on the
training data (``scale``, saved with the weights) and mapped by an MLP to (B, T', D), added to the noise embedding
of each latent frame like actions. The last layer starts at zero.

Mirrored clips (``data.mirror``, ``mirror_clips``): a driving clip reflected through the car's vertical plane is
another valid clip of a left-right mirrored world: every view flipped horizontally, each view's images moved to its
mirror camera (front_left <-> front_right; front stays), the ego trajectory's lateral offsets and yaws negated and
"left" / "right" swapped in the caption. Roads that mostly curve one way and right-hand traffic make a model learn one
turning direction better than the other; the mirrored copies give it every turn both ways (right-hand traffic
becomes left-hand traffic in them, which is why it is an option).
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from worldsmith.conditioning.camera import REFERENCES
from worldsmith.errors import ConfigError

EGO = 4  # (x, y, yaw, speed)


def view_grid(views: torch.Tensor | None, height: int) -> int:
    """The number of views stacked along a latent height ``height`` (1 without a ``views`` condition)."""
    if views is None:
        return 1
    v = int(views.shape[1])
    if views.ndim != 2 or v < 1 or height % v:
        raise ConfigError(f"views must be (B, V) view indices with the latent height ({height}) a multiple of V, "
                          f"got shape {tuple(views.shape)}.")  # fmt: skip
    return v


def stack_views(latents: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """V per-view latents (B, C, T', H', W') (a list, or one tensor (B, V, C, T', H', W')) -> (B, C, T', V*H', W')."""
    if isinstance(latents, torch.Tensor):
        latents = list(latents.unbind(1))
    return torch.cat(latents, dim=3)


def split_views(latents: torch.Tensor, views: int) -> list[torch.Tensor]:
    """(B, C, T', V*H', W') -> V latents (B, C, T', H', W'), view 0 first."""
    if latents.shape[3] % views:
        raise ConfigError(f"a latent height of {latents.shape[3]} does not split into {views} views.")
    return list(latents.chunk(views, dim=3))


def relative_trajectory(ego: torch.Tensor, reference: str = "first") -> torch.Tensor:
    """(B, T, 4) ego states (x, y, yaw, speed) -> (B, T, 4) (forward, left, yaw change, speed) relative to frame 0,
    or with ``reference = "previous"`` each frame's step from the frame before it, in that frame's heading (frame 0:
    no step): the motion a step-by-step (``next_frame_only``) model turns into image motion from its last given frame."""
    if ego.ndim != 3 or ego.shape[-1] != EGO:
        raise ConfigError(f"a trajectory is one (x, y, yaw, speed) per frame, shape (B, T, 4), got {tuple(ego.shape)}.")
    if reference not in REFERENCES:
        raise ConfigError(f"model.trajectory_reference must be one of {', '.join(REFERENCES)}, got {reference!r}.")
    ego = ego.float()
    ref = ego[:, :1] if reference == "first" else torch.cat([ego[:, :1], ego[:, :-1]], dim=1)
    d = ego[..., :2] - ref[..., :2]
    c, s = torch.cos(ref[..., 2]), torch.sin(ref[..., 2])
    forward, left = d[..., 0] * c + d[..., 1] * s, -d[..., 0] * s + d[..., 1] * c
    turn = ego[..., 2] - ref[..., 2]
    if reference == "previous":  # a step's turn is small: wrap it into (-pi, pi]
        turn = torch.atan2(torch.sin(turn), torch.cos(turn))
    return torch.stack([forward, left, turn, ego[..., 3]], dim=-1)


def trajectory_per_latent_frame(ego: torch.Tensor, latent_frames: int, chunk: int) -> torch.Tensor:
    """(B, T, 4) per video frame -> (B, T', chunk * 4): latent frame 0 takes frame 0 (repeated), latent frame i >= 1
    frames (i - 1) * chunk + 1 .. i * chunk; missing frames past the end repeat the last one."""
    b, t, _ = ego.shape
    need = 1 + (latent_frames - 1) * chunk
    if t < need:
        ego = torch.cat([ego, ego[:, -1:].expand(b, need - t, EGO)], dim=1)
    first = ego[:, :1].expand(b, chunk, EGO).reshape(b, 1, chunk * EGO)
    rest = ego[:, 1:need].reshape(b, latent_frames - 1, chunk * EGO)
    return torch.cat([first, rest], dim=1)


def mirror_order(names: list[str]) -> list[int]:
    """For each view of a rig (camera names, view 0 first), the index of its mirror image's camera: a name with
    "left" and "right" swapped (front -> front, front_left -> front_right)."""
    mirrored = [swap_left_right(n) for n in names]
    missing = [n for n, m in zip(names, mirrored, strict=True) if m not in names]
    if missing:
        raise ConfigError(f"data.mirror needs a left-right symmetric rig, but views {missing} have no mirror camera "
                          f"among {names}; set data.mirror=false.")  # fmt: skip
    return [names.index(m) for m in mirrored]


def swap_left_right(text: str) -> str:
    """"left" <-> "right" as words or name parts, keeping case: "front_left" -> "front_right"."""
    swap = {"left": "right", "right": "left", "Left": "Right", "Right": "Left"}
    return re.sub(r"(?<![A-Za-z])(left|right|Left|Right)(?![a-z])", lambda m: swap[m.group(1)], text)


def mirror_clips(batch: dict, order: list[int]) -> dict:
    """A clip batch (``video`` (B, 3, T, H, W), ``views`` (B, V-1, 3, T, H, W), ``ego`` (B, T, 4), ``caption``) as
    its left-right mirror image; ``order`` from ``mirror_order``. Other arrays (actions, cameras) are refused: their
    mirror depends on what they mean."""
    other = sorted(k for k in ("actions", "c2w", "intrinsics") if k in batch)
    if other:
        raise ConfigError(f"data.mirror mirrors videos, views and ego trajectories only, not {other}; turn those "
                          "conditions off or set data.mirror=false.")  # fmt: skip
    views = [batch["video"], *(batch["views"].unbind(1) if "views" in batch else [])]
    if len(views) != len(order):
        raise ConfigError(f"data.mirror was given a rig of {len(order)} views but the clips have {len(views)}.")
    flipped = [views[j].flip(-1) for j in order]
    out = dict(batch) | {"video": flipped[0], "caption": [swap_left_right(c) for c in batch["caption"]]}
    if "views" in batch:
        out["views"] = torch.stack(flipped[1:], dim=1) if len(flipped) > 1 else batch["views"]
    if "ego" in batch:
        out["ego"] = batch["ego"] * batch["ego"].new_tensor([1.0, -1.0, -1.0, 1.0])
    return out


class ViewEmbedder(nn.Module):
    """View indices (B, V) -> (B, T', V*h*w, D): each view's learned vector on every one of its tokens."""

    name = "views"  # its value's key in the batch / Condition.extras (also what tells the DiT the layout)
    target = "tokens"
    channels = 0

    def __init__(self, max_views: int, width: int, patch: int) -> None:
        super().__init__()
        self.max_views, self.patch = max_views, patch
        self.table = nn.Embedding(max_views, width)
        nn.init.zeros_(self.table.weight)

    def forward(self, views: torch.Tensor, latent_shape: tuple[int, int, int, int]) -> torch.Tensor:
        b, t, hh, ww = latent_shape
        v = view_grid(views, hh)
        if views.shape[0] != b or int(views.max()) >= self.max_views or int(views.min()) < 0:
            raise ConfigError(f"this model knows views 0..{self.max_views - 1}; got view indices "
                              f"{views.tolist()} for a batch of {b}.")  # fmt: skip
        per_view = (hh // v // self.patch) * (ww // self.patch)
        emb = self.table(views.long())  # (B, V, D)
        return emb[:, None, :, None].expand(b, t, v, per_view, -1).reshape(b, t, v * per_view, -1)


class TrajectoryEmbedder(nn.Module):
    """Ego states per video frame (B, T, 4) -> (B, T', D) added to each latent frame's noise embedding."""

    name = "trajectory"
    guidable = True  # condition guidance may drop it (``SamplingConfig.condition_guidance``)
    target = "modulation"
    channels = 0

    def __init__(self, width: int, chunk: int = 1, hidden: int = 256, reference: str = "first") -> None:
        super().__init__()
        if reference not in REFERENCES:
            raise ConfigError(f"model.trajectory_reference must be one of {', '.join(REFERENCES)}, got {reference!r}.")
        self.chunk, self.reference = chunk, reference
        self.fc1 = nn.Linear(chunk * EGO, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, width, bias=False)
        nn.init.zeros_(self.fc2.weight)
        self.register_buffer("scale", torch.ones(EGO))  # per-dimension std of the relative training trajectories

    @torch.no_grad()
    def set_scale(self, ego: torch.Tensor) -> None:
        """Measure the per-dimension std of relative trajectories from training clips' ego states (N, T, 4)."""
        self.scale.copy_(relative_trajectory(ego, self.reference).reshape(-1, EGO).std(0).clamp_min(1e-3))

    def forward(self, ego: torch.Tensor, latent_shape: tuple[int, int, int, int]) -> torch.Tensor:
        rel = relative_trajectory(ego, self.reference) / self.scale
        x = trajectory_per_latent_frame(rel, latent_shape[1], self.chunk)
        return self.fc2(F.silu(self.fc1(x)))
