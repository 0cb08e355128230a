"""``DiffusionWorldModel``: the DiT wrapped by EDM's preconditioning, over a tokenizer's normalised latents.

Latents (B, C, T', H', W') are normalised per channel with statistics measured on the training data (buffers saved
with the weights) to the standard deviation ``sigma_data`` that EDM assumes. The model denoises (``denoiser``) and
samples (``generate``); its training objective lives in losses.py, its data in data.py.
"""

from __future__ import annotations

import torch
from torch import nn

from worldsmith.conditioning.action import ActionEmbedder
from worldsmith.conditioning.camera import CameraEmbedder
from worldsmith.conditioning.origin import OriginEmbedder, TravelEmbedder
from worldsmith.conditioning.tip import TipEmbedder
from worldsmith.conditioning.views import TrajectoryEmbedder, ViewEmbedder
from worldsmith.conditioning.warp import WarpEmbedder
from worldsmith.diffusion.condition import Condition
from worldsmith.diffusion.config import WorldModelConfig
from worldsmith.diffusion.dit import DiT
from worldsmith.diffusion.edm import EDMDenoiser
from worldsmith.diffusion.samplers import sample
from worldsmith.errors import ConfigError
from worldsmith.nn.lora import adapt, trained_state, with_base
from worldsmith.weights import Pretrained

EMBEDDERS = "denoiser.net.embedders."  # parameter names of the condition embedders (trained in a LoRA post-training)


class DiffusionWorldModel(nn.Module, Pretrained):
    Config = WorldModelConfig

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.denoiser = EDMDenoiser(DiT(cfg.dit, self.make_embedders(cfg)), cfg.edm)
        c = cfg.dit.latent_channels
        self.register_buffer("latent_mean", torch.zeros(c))  # per-channel statistics of the training latents
        self.register_buffer("latent_std", torch.ones(c))
        self.register_buffer("residual_scale", torch.ones(()))  # sigma_data / std of frame-to-frame differences
        if cfg.lora.rank:  # LoRA: adapters on every linear of the blocks; only they and the condition embedders train
            adapt(self, self.net.blocks, cfg.lora, EMBEDDERS)

    def make_embedders(self, cfg: WorldModelConfig) -> list[nn.Module]:
        """The extra-condition slot's embedders, from the config: actions when ``cfg.action_dim`` > 0, the rollout's
        origin when ``cfg.origin`` (and the commanded fingertip when ``cfg.tip``), camera poses (Plücker rays) when
        ``cfg.camera``, view embeddings when ``cfg.views`` > 0, the ego trajectory when ``cfg.trajectory``, the warped
        first frame when ``cfg.warp``."""
        embedders: list[nn.Module] = []
        if cfg.action_dim:
            embedders.append(ActionEmbedder(cfg.action_dim, cfg.dit.width, cfg.action_chunk))
        if cfg.origin:
            embedders += [OriginEmbedder(cfg.dit.latent_channels, cfg.dit.width, cfg.dit.patch),
                          TravelEmbedder(cfg.action_dim, cfg.dit.width)]
        if cfg.tip:
            embedders.append(TipEmbedder(cfg.dit.width, cfg.dit.patch))
        if cfg.camera:
            every = cfg.dit.depth if cfg.camera_every_block else 0
            embedders.append(CameraEmbedder(cfg.dit.width, cfg.dit.patch, cfg.camera_stride or 8, every,
                                            cfg.camera_reference))
        if cfg.views:
            embedders.append(ViewEmbedder(cfg.views, cfg.dit.width, cfg.dit.patch))
        if cfg.trajectory:
            embedders.append(TrajectoryEmbedder(cfg.dit.width, cfg.action_chunk, reference=cfg.trajectory_reference))
        if cfg.warp:  # last: the weights of a model post-trained into a warp model keep their names
            embedders.append(WarpEmbedder(cfg.dit.latent_channels, cfg.dit.width, cfg.dit.patch))
        return embedders

    def embedder(self, name: str) -> nn.Module | None:
        """The condition embedder whose value is ``extras[name]``, or None."""
        return next((e for e in self.net.embedders if e.name == name), None)

    def pretrained_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What model.safetensors keeps: everything, or with LoRA the adapters, the embedders and the buffers (the
        rest is the base run's, named in ``cfg.lora.base``)."""
        return trained_state(self, state) if self.cfg.lora.rank else state

    @classmethod
    def upgrade(cls, model_config: dict, state: dict, run_dir) -> tuple[dict, dict]:
        """A LoRA run saves adapters only: complete them with its base run's weights."""
        return model_config, with_base(model_config, state)

    @property
    def net(self) -> DiT:
        return self.denoiser.net

    # -- latent scaling ---------------------------------------------------------------------------------------
    def _stats(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1, 1)
        return self.latent_mean.view(shape).to(z), self.latent_std.view(shape).to(z)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Tokenizer latents (B, C, T', H', W') -> model space (std sigma_data)."""
        mean, std = self._stats(z)
        return (z - mean) / std * self.cfg.edm.sigma_data

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return x / self.cfg.edm.sigma_data * std + mean

    @torch.no_grad()
    def set_latent_stats(self, latents: torch.Tensor, extras: dict | None = None) -> None:
        """Measure per-channel mean and std on tokenizer latents (N, C, T', H', W'), and the scale that gives the
        differences of consecutive normalised latent frames the std ``sigma_data``. ``extras``: the same samples'
        other cached tensors, for subclasses whose statistics need them (the diffusion decoder's)."""
        flat = latents.transpose(0, 1).reshape(latents.shape[1], -1).float()
        self.latent_mean.copy_(flat.mean(1))
        self.latent_std.copy_(flat.std(1).clamp_min(1e-4))
        if latents.shape[2] > 1:
            diffs = self.normalize(latents.float()).diff(dim=2)
            self.residual_scale.fill_(self.cfg.edm.sigma_data / float(diffs.std().clamp_min(1e-4)))

    # -- training hooks (the Trainer's) -------------------------------------------------------------------------
    def checkpoint_modules(self) -> list[nn.Module]:
        return list(self.net.blocks)

    def no_weight_decay(self) -> list[str]:
        return [f"denoiser.net.{n}" for n in self.net.no_weight_decay()]

    # -- generation -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self, cond: Condition, shape: tuple[int, int, int], *, steps: int = 10, guidance: float = 1.0,
        uncond: Condition | None = None, sampler: str = "dpm++2m", generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None, sigma_max: float = 0.0,
    ) -> torch.Tensor:  # fmt: skip
        """Model-space latents (B, C, T', H', W') for a (T', H', W') grid; Video2World when ``cond.mask`` is set.
        ``noise``: the starting noise (B, C, T', H', W') instead of a draw from ``generator``. ``sigma_max``: the
        level sampling starts from (0: ``edm.sigma_max``); a lower one needs a residual model, whose sampling starts
        at its anchor (SDEdit from the anchor), not at zero latents."""
        b, dev = cond.batch, cond.text.device
        if noise is None:
            noise = torch.randn((b, self.cfg.dit.latent_channels, *shape), generator=generator, device=dev)
        edm = self.cfg.edm
        start = sigma_max or edm.sigma_max
        if start < edm.sigma_max:  # the sampler starts at zero residual, i.e. at the anchor, which must exist
            found = self._anchor(cond)
            if found is None or not bool(found[1].any()):
                raise ConfigError(f"sampling from sigma_max={sigma_max} (below the model's {edm.sigma_max}) starts "
                                  f"from the anchor of a residual model given frames; this model or request has none: "
                                  f"leave sigma_max at 0.")  # fmt: skip
        if start <= edm.sigma_min:
            raise ConfigError(f"sampling needs sigma_max above the model's sigma_min ({edm.sigma_min}), got {start}.")
        x = sample(self.denoiser, noise, cond, steps=steps, guidance=guidance, uncond=uncond, sampler=sampler,
                   sigma_min=edm.sigma_min, sigma_max=start, rho=edm.rho)  # fmt: skip
        return self.from_residual(x, cond)

    # -- residual Video2World ---------------------------------------------------------------------------------
    def _anchor(self, cond: Condition) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The last given latent frame of each sample (B, C, 1, H', W') and where residuals apply (B, 1, T', 1, 1);
        with ``cfg.warp`` the first frame warped to each frame's camera instead (B, C, T', H', W')."""
        if not self.cfg.residual or cond.mask is None:
            return None
        k = cond.mask.flatten(1).sum(1).long()  # (B,) given frames
        if self.cfg.warp:
            if "warped" not in cond.extras:
                raise ConfigError("this model anchors its frames at the warped first frame, but no 'warped' was given.")
            return cond.extras["warped"].to(cond.frames), (cond.mask == 0) & (k > 0).view(-1, 1, 1, 1, 1)
        idx = (k - 1).clamp_min(0).view(-1, 1, 1, 1, 1).expand(-1, cond.frames.shape[1], 1, *cond.frames.shape[3:])
        anchor = cond.frames.gather(2, idx)  # (B, C, 1, H', W')
        return anchor, (cond.mask == 0) & (k > 0).view(-1, 1, 1, 1, 1)

    def to_residual(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Latents -> what the model generates: with ``cfg.residual``, each new frame minus the last given one,
        times ``residual_scale``; given frames (and Text2World samples) unchanged."""
        found = self._anchor(cond)
        if found is None:
            return x
        anchor, where = found
        return torch.where(where, (x - anchor) * self.residual_scale.to(x), x)

    def from_residual(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        found = self._anchor(cond)
        if found is None:
            return x
        anchor, where = found
        return torch.where(where, x / self.residual_scale.to(x) + anchor, x)


def with_condition_frames(
    cond: Condition, x0: torch.Tensor, k: torch.Tensor, sigma_cond: torch.Tensor, noise: torch.Tensor | None = None
) -> Condition:  # fmt: skip
    """``cond`` plus Video2World conditions: the first k[b] latent frames of x0 (B, C, T', H', W') are given,
    seen by the network as ``x0 + sigma_cond * noise``."""
    b, t = x0.shape[0], x0.shape[2]
    mask = (torch.arange(t, device=x0.device)[None] < k.view(b, 1)).to(x0.dtype).view(b, 1, t, 1, 1)
    noise = torch.randn_like(x0) if noise is None else noise
    frames_in = x0 + sigma_cond.view(b, 1, 1, 1, 1).to(x0) * noise
    return Condition(cond.text, cond.text_mask, cond.fps, mask, x0, frames_in, sigma_cond.to(x0), cond.extras)
