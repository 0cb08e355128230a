"""Diffusion world model (Cosmos design): latent DiT, EDM preconditioning and loss, samplers, generation."""

from worldsmith.diffusion.condition import Condition
from worldsmith.diffusion.dit import DiT
from worldsmith.diffusion.edm import EDMDenoiser, edm_loss, karras_sigmas
from worldsmith.diffusion.model import DiffusionWorldModel
from worldsmith.diffusion.presets import DiTConfig, EDMConfig, WorldModelConfig
from worldsmith.diffusion.samplers import SAMPLERS, guided, sample

__all__ = ["SAMPLERS", "Condition", "DiT", "DiTConfig", "DiffusionWorldModel", "EDMConfig", "EDMDenoiser",
           "WorldModelConfig", "edm_loss", "guided", "karras_sigmas", "sample"]
