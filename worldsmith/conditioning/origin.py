"""The rollout's origin as a condition: where a step-by-step rollout started, and the actions taken since.

A next-frame-only model sees the last two frames. In a rollout those are its own, and one step's small error in where
the gripper is becomes the next step's truth: over 16 frames the gripper's error grows five-fold though one step from
the true frames stays near the tokenizer's ceiling (benchmarks/RESULTS.md, action models). Nothing in the window
tells the model where the gripper *should* be. The origin does: the rollout's first frame (true, given by the user)
and the sum of the actions taken since it (``travel``), so the model can place the gripper from the start and the
commanded displacement instead of from its own last frame, and correct what it drifted.

Two embedders in the conditioning slot, both zero at initialisation (a base post-trained with them starts out as
the base):

- ``OriginEmbedder`` ("origin", target "tokens"): the origin's latent frame (B, C, H', W'), model space, patchified
  and projected onto every frame's tokens at their own positions.
- ``TravelEmbedder`` ("travel", target "modulation"): per latent frame of the window, the actions accumulated from
  the origin to that frame and the number of video frames since the origin, (B, T', A + 1), divided by their std on
  the training data (``set_scale``) after clamping them to the range seen there, through an MLP into the noise
  embedding (as the actions themselves enter).

Actions accumulate (``model.travel``) as a plain sum ("sum": velocities, or deltas in a fixed frame such as a robot's
base), or as poses ("pose": end-effector deltas in the end effector's own frame, (dx, dy, dz, rotation vector, the
rest), composed as the arm world's controller composes them, so a turn of the gripper does not scramble where its
later moves went: the arm's scripted grasps turn it by 0.28 rad on average over 16 frames, up to 1.5).

The origin stays at most ``horizon`` latent frames back (``model.origin``): training draws it uniformly in that range
before each window (``origin_windows``), and a longer rollout moves it to the oldest frame it keeps before it would
fall further back (``OriginState``), so the model never sees a gap it was not trained on. Travel is derived from the
actions, so it is guidable (dropped with them by condition guidance), and zero actions travel nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldsmith.errors import ConfigError
from worldsmith.nn.embeddings import LatentTokens


class OriginEmbedder(LatentTokens):
    name = "origin"

    def forward(self, origin: torch.Tensor, latent_shape: tuple[int, int, int, int]) -> torch.Tensor:
        """origin (B, C, H', W') -> (B, T', h*w, D), the same for every frame."""
        b, t, hh, ww = latent_shape
        if origin.ndim != 4 or origin.shape[1] != self.latent_channels or tuple(origin.shape[2:]) != (hh, ww):
            raise ConfigError(f"the origin must be one latent frame (B, {self.latent_channels}, {hh}, {ww}), got "
                              f"{tuple(origin.shape)}.")  # fmt: skip
        tokens = self.tokens(origin[:, :, None])  # (B, 1, h*w, D)
        return tokens.expand(b, t, *tokens.shape[2:])


class TravelEmbedder(nn.Module):
    name = "travel"
    guidable = True  # it is the actions' sum: condition guidance drops it with them
    target = "modulation"
    channels = 0

    def __init__(self, action_dim: int, width: int, hidden: int = 256) -> None:
        super().__init__()
        self.dim = action_dim + 1  # summed actions and the frames since the origin
        self.fc1 = nn.Linear(self.dim, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, width, bias=False)
        nn.init.zeros_(self.fc2.weight)
        self.register_buffer("scale", torch.ones(self.dim))
        # the range of the training windows' travel: values beyond it (a key held for many frames in play, a gripper
        # command summed past its limits) are clamped to it, so the MLP never extrapolates
        self.register_buffer("low", torch.full((self.dim,), -torch.inf))
        self.register_buffer("high", torch.full((self.dim,), torch.inf))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # runs saved before the range was measured: no clamping
        state_dict.setdefault(prefix + "low", torch.full((self.dim,), -torch.inf))
        state_dict.setdefault(prefix + "high", torch.full((self.dim,), torch.inf))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def set_scale(self, travel: torch.Tensor) -> None:
        """Measure the per-dimension std and range of travel values (..., A + 1) on the training windows."""
        flat = travel.reshape(-1, self.dim).float()
        self.scale.copy_(flat.std(0).clamp_min(1e-3))
        self.low.copy_(flat.min(0).values)
        self.high.copy_(flat.max(0).values)

    def forward(self, travel: torch.Tensor, latent_shape: tuple[int, int, int, int]) -> torch.Tensor:
        """travel (B, T', A + 1) -> (B, T', D) added to each latent frame's noise embedding."""
        if travel.ndim != 3 or travel.shape[1:] != (latent_shape[1], self.dim):
            raise ConfigError(f"travel must be (B, {latent_shape[1]}, {self.dim}): per latent frame, the actions "
                              f"summed since the origin and the frames since it; got {tuple(travel.shape)}.")  # fmt: skip
        inside = torch.minimum(torch.maximum(travel.float(), self.low), self.high)
        return self.fc2(F.silu(self.fc1(inside / self.scale)))


MODES = ("sum", "pose")  # how actions accumulate into travel (``model.travel``)


def skew_exp(rotvec: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (B, 3, 3) of rotation vectors (B, 3) (Rodrigues)."""
    angle = rotvec.norm(dim=1, keepdim=True).clamp_min(1e-9)
    x, y, z = (rotvec / angle).unbind(1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], 1).view(-1, 3, 3)
    a = angle[:, :, None]
    return torch.eye(3, dtype=rotvec.dtype, device=rotvec.device) + a.sin() * k + (1 - a.cos()) * (k @ k)


def skew_log(rot: torch.Tensor) -> torch.Tensor:
    """Rotation vectors (B, 3) of rotation matrices (B, 3, 3), for angles below pi."""
    cos = ((rot.diagonal(dim1=1, dim2=2).sum(1) - 1) / 2).clamp(-1 + 1e-6, 1 - 1e-6)
    angle = cos.acos()
    vee = torch.stack([rot[:, 2, 1] - rot[:, 1, 2], rot[:, 0, 2] - rot[:, 2, 0], rot[:, 1, 0] - rot[:, 0, 1]], 1)
    factor = torch.where(angle < 1e-4, 0.5 + angle**2 / 12, angle / (2 * angle.sin().clamp_min(1e-9)))
    return vee * factor[:, None]


def quat_to_mat(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (B, 4) (w, x, y, z) -> rotation matrices (B, 3, 3)."""
    w, x, y, z = F.normalize(q, dim=-1).unbind(-1)
    rows = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]  # fmt: skip
    return torch.stack(rows, dim=-1).view(*q.shape[:-1], 3, 3)


def mat_to_quat(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (B, 3, 3) -> unit quaternions (B, 4) (w, x, y, z)."""
    w = (1 + m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]).clamp_min(1e-12).sqrt() / 2
    x = ((1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2]).clamp_min(0).sqrt() / 2).copysign(m[:, 2, 1] - m[:, 1, 2])
    y = ((1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2]).clamp_min(0).sqrt() / 2).copysign(m[:, 0, 2] - m[:, 2, 0])
    z = ((1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]).clamp_min(0).sqrt() / 2).copysign(m[:, 1, 0] - m[:, 0, 1])
    return F.normalize(torch.stack([w, x, y, z], dim=-1), dim=-1)


def moved_body(body: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """A robot's body (B, >= 7: position, quaternion (w, x, y, z), the rest; conditioning/tip.py) after a travel
    ``state`` (B, >= 6) in pose mode: the end-effector pose composed as the controller composes it (``p' = p + R d``,
    ``R' = R exp(r)``); the rest unchanged."""
    rot = quat_to_mat(body[:, 3:7])
    pos = body[:, :3] + (rot @ state[:, :3, None])[..., 0]
    return torch.cat([pos, mat_to_quat(rot @ skew_exp(state[:, 3:6])), body[:, 7:]], dim=1)


def accumulate(state: torch.Tensor, action: torch.Tensor, mode: str) -> torch.Tensor:
    """Travel state (B, A) after one more action (B, A). ``sum``: the actions' sum. ``pose``: actions are end-effector
    deltas in the end effector's own frame, (dx, dy, dz, rotation vector, the rest), as the arm world takes them
    (``p' = p + R d``, ``R' = R exp(r)``): the state is the pose relative to the origin's (translation, rotation
    vector) and the rest summed, so a turn of the gripper does not scramble where its later moves went."""
    if mode == "sum":
        return state + action
    rot = skew_exp(state[:, 3:6])
    pos = state[:, :3] + (rot @ action[:, :3, None])[..., 0]
    turned = skew_log(rot @ skew_exp(action[:, 3:6]))
    return torch.cat([pos, turned, state[:, 6:] + action[:, 6:]], dim=1)


def states_from(first: torch.Tensor, actions: torch.Tensor, chunk: int, mode: str) -> torch.Tensor:
    """Travel states (B, 1 + N / chunk, A) at a run of latent frames: ``first`` (B, A) at the first, then after
    each ``chunk`` of the actions (B, N, A) between them."""
    states, state = [first], first
    for i in range(actions.shape[1]):
        state = accumulate(state, actions[:, i], mode)
        if (i + 1) % chunk == 0:
            states.append(state)
    return torch.stack(states, dim=1)


def with_frames(states: torch.Tensor, since: int, chunk: int) -> torch.Tensor:
    """Travel states (B, T', A) -> travel values (B, T', A + 1): with the video frames since the origin, ``since``
    latent frames at the first."""
    frames = chunk * (since + torch.arange(states.shape[1], device=states.device, dtype=states.dtype))
    return torch.cat([states, frames.view(1, -1, 1).expand(states.shape[0], -1, 1)], dim=2)


def origin_windows(actions: torch.Tensor, starts: torch.Tensor, window: int, horizon: int, chunk: int,
                   generator: torch.Generator, mode: str = "sum") -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """For training windows of ``window`` latent frames starting at ``starts`` (N,) of clips with ``actions``
    (N, T - 1, A): each window's origin, a latent frame drawn uniformly from those at most ``horizon`` frames before
    the window's last frame and not after its first, (N,); and the travel of each window frame (N, window, A + 1).
    All clips advance together, frame by frame, each only between its origin and its window's last frame."""
    low = (starts + window - 1 - horizon).clamp_min(0)
    origins = low + (torch.rand(len(starts), generator=generator) * (starts - low + 1)).long().clamp_max(starts - low)
    n, a = len(starts), actions.shape[2]
    state = actions.new_zeros(n, a)
    out = actions.new_zeros(n, window, a)
    rows = torch.arange(n)
    for t in range(int((starts + window).max())):
        inside = (t >= starts) & (t < starts + window)  # record the state at latent frame t
        out[rows[inside], (t - starts)[inside]] = state[inside]
        moving = (t >= origins) & (t < starts + window - 1)
        if bool(moving.any()):
            for i in range(chunk):
                step = accumulate(state[moving], actions[moving, t * chunk + i], mode)
                state = state.index_put((rows[moving],), step)
    gaps = (starts - origins).to(actions.dtype)[:, None] + torch.arange(window, dtype=actions.dtype)
    return origins, torch.cat([out, (gaps * chunk)[:, :, None]], dim=2)


@dataclass
class OriginState:
    """A rollout's origin: its latent frame (B, C, H', W') model space, the travel states (B, k, A) of the rollout's
    kept latent frames (its newest k), the latent frames from the origin to the newest, and (models with
    ``model.tip``, when the caller knows it) the robot's body at the origin (B, 33; conditioning/tip.py)."""

    frame: torch.Tensor
    states: torch.Tensor
    since: int
    horizon: int
    chunk: int
    mode: str
    body: torch.Tensor | None = None

    @classmethod
    def start(cls, latents: torch.Tensor, actions: torch.Tensor, chunk: int, horizon: int, mode: str,
              body: torch.Tensor | None = None) -> "OriginState":  # fmt: skip
        """The origin of a rollout that continues ``latents`` (B, C, L, H', W') given with the ``actions`` between
        them (B, (L - 1) * chunk, A): their first frame, or the one ``horizon - 1`` frames back when more are given
        (the next frame is then ``horizon`` from it). ``body``: the robot's body at the first given frame."""
        first = max(0, latents.shape[2] - horizon)
        zero = actions.new_zeros(actions.shape[0], actions.shape[2])
        states = states_from(zero, actions[:, first * chunk :], chunk, mode)
        if body is not None and first:  # the body at the origin: moved by the actions before it
            body = moved_body(body, states_from(zero, actions[:, : first * chunk], chunk, mode)[:, -1])
        return cls(latents[:, :, first], states, latents.shape[2] - 1 - first, horizon, chunk, mode, body)

    def window(self, actions: torch.Tensor, given: int, window: int) -> torch.Tensor:
        """Travel (B, window, A + 1) of a step's window: the ``given`` newest frames, then the new one reached by
        ``actions`` (B, chunk, A); frames past it repeat it (a next-frame-only model reads the new frame's only)."""
        new = states_from(self.states[:, -1], actions, self.chunk, self.mode)[:, 1:]  # (B, 1, A)
        states = torch.cat([self.states[:, -given:], new.expand(-1, window - given, -1)], dim=1)
        return with_frames(states, self.since - given + 1, self.chunk)

    def advance(self, actions: torch.Tensor, latents: torch.Tensor, kept_actions: torch.Tensor) -> None:
        """After a step under ``actions`` (B, chunk, A), with the rollout keeping ``latents`` (B, C, k, H', W') and
        the ``kept_actions`` after their first. When the next frame would be more than ``horizon`` from the origin,
        the origin moves to the oldest kept frame (the next window's first, as in training)."""
        new = states_from(self.states[:, -1], actions, self.chunk, self.mode)[:, 1:]
        self.states, self.since = torch.cat([self.states, new], dim=1)[:, -latents.shape[2] :], self.since + 1
        if self.since >= self.horizon:
            body = None if self.body is None else moved_body(self.body, self.states[:, 0])  # at the oldest kept frame
            moved = OriginState.start(latents, kept_actions, self.chunk, self.horizon, self.mode, body)
            self.frame, self.states, self.since, self.body = moved.frame, moved.states, moved.since, moved.body

    def select(self, idx: torch.Tensor) -> "OriginState":
        return OriginState(self.frame[idx], self.states[idx], self.since, self.horizon, self.chunk, self.mode,
                           None if self.body is None else self.body[idx])  # fmt: skip
