"""LoRA (Hu et al. 2021, arXiv 2106.09685): post-train a large network by learning low-rank updates of its linears.

``W x`` becomes ``W x + (alpha / r) B A x`` with ``A`` (r, in) random, ``B`` (out, r) zero (eq. 3 and Sec. 4.1): the
adapted network starts exactly as the base, the base weights stay frozen, and only ``A``, ``B`` (and whatever else is
left trainable, such as a new condition embedder) are learned and saved. ``LoRALinear`` *is* an ``nn.Linear`` (its
``weight`` / ``bias`` keep their state-dict names), so a base checkpoint loads into an adapted model unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldsmith.errors import ConfigError
from worldsmith.weights import WEIGHTS, load_tensors
from worldsmith.zoo import resolve


@dataclass
class LoRAConfig:
    rank: int = 0  # 0: no LoRA (full fine-tuning)
    alpha: float = 0.0  # scale numerator; 0: alpha = rank (scale 1)
    base: str = ""  # the run (or shipped name) whose weights the adapters apply to; saved runs hold adapters only

    def __post_init__(self) -> None:
        if self.rank < 0 or self.alpha < 0:
            raise ConfigError(f"model.lora.rank and model.lora.alpha must be >= 0, got {self.rank} and {self.alpha}.")

    @property
    def scale(self) -> float:
        return (self.alpha or self.rank) / max(self.rank, 1)


class LoRALinear(nn.Linear):
    def __init__(self, linear: nn.Linear, rank: int, scale: float) -> None:
        super().__init__(linear.in_features, linear.out_features, bias=linear.bias is not None,
                         device=linear.weight.device, dtype=linear.weight.dtype)  # fmt: skip
        self.load_state_dict(linear.state_dict())
        self.scale = scale
        self.lora_a = nn.Parameter(torch.empty(rank, linear.in_features, device=linear.weight.device))
        self.lora_b = nn.Parameter(torch.zeros(linear.out_features, rank, device=linear.weight.device))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # as nn.Linear initialises its weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scale


def apply_lora(module: nn.Module, cfg: LoRAConfig) -> list[str]:
    """Replace every ``nn.Linear`` inside ``module`` by a ``LoRALinear`` of ``cfg.rank``; returns their names."""
    names = []
    for name, child in list(module.named_modules()):
        for attr, sub in list(child.named_children()):
            if type(sub) is nn.Linear:
                setattr(child, attr, LoRALinear(sub, cfg.rank, cfg.scale))
                names.append(f"{name}.{attr}" if name else attr)
    return names


def is_adapter(name: str) -> bool:
    return name.endswith(".lora_a") or name.endswith(".lora_b")


def adapt(model: nn.Module, blocks: nn.Module, cfg: LoRAConfig, embedders: str) -> None:
    """LoRA on every linear of ``blocks`` (a part of ``model``); only the adapters and the parameters whose names
    start with ``embedders`` (the new condition's) stay trainable."""
    apply_lora(blocks, cfg)
    for name, p in model.named_parameters():
        p.requires_grad_(is_adapter(name) or name.startswith(embedders))


def trained_state(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What a LoRA run's model.safetensors keeps of ``state``: the trainable parameters and the buffers (the rest
    is its base run's)."""
    trained = {n for n, p in model.named_parameters() if p.requires_grad} | {n for n, _ in model.named_buffers()}
    return {k: v for k, v in state.items() if k in trained}


def with_base(model_config: dict, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A LoRA run's saved state completed with the weights of the base its config names (unchanged otherwise)."""
    lora = model_config.get("lora") or {}
    if lora.get("rank") and lora.get("base"):
        return load_tensors(resolve(lora["base"]) / WEIGHTS) | state
    return state
