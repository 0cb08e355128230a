"""The frozen tokenizers a diffusion model works with, loaded from a run directory or a shipped name, with one
sentence for the wrong kind."""

from __future__ import annotations

from pathlib import Path

import torch

from worldsmith.errors import CheckpointError, ConfigError
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.zoo import resolve


def load_tokenizer(run_dir: str | Path, device: str | torch.device = "cpu") -> CausalVideoTokenizer:
    """The continuous tokenizer of ``run_dir`` in eval mode; clear errors for a missing or discrete one."""
    if not run_dir:
        raise ConfigError("no tokenizer: pass --tokenizer with the run directory of a trained continuous tokenizer.")
    run_dir = resolve(run_dir)  # a run directory, or a shipped tokenizer's name
    if not (Path(run_dir) / "config.yaml").is_file():
        raise CheckpointError(f"{run_dir} is not a tokenizer run directory (no config.yaml); train one with "
                              f"`worldsmith train tokenizer` and pass its --out directory.")  # fmt: skip
    tok = CausalVideoTokenizer.from_pretrained(run_dir, device=device)
    if tok.fsq is not None:
        raise ConfigError(f"the diffusion model needs a continuous tokenizer (cv*), but {run_dir} holds a discrete "
                          f"{tok.cfg.name} one; the discrete tokens are for the autoregressive model.")  # fmt: skip
    return tok.requires_grad_(False)


def load_discrete_tokenizer(run_dir: str | Path, device: str | torch.device = "cpu") -> CausalVideoTokenizer:
    """The discrete (DV/DI) tokenizer of ``run_dir`` in eval mode, frozen; one sentence for a continuous one."""
    run_dir = resolve(run_dir)
    if not (Path(run_dir) / "config.yaml").is_file():
        raise CheckpointError(f"{run_dir} is not a tokenizer run directory (no config.yaml); pass the --out folder of "
                              f"`worldsmith train tokenizer --preset dv4x8x8-...`.")  # fmt: skip
    tok = CausalVideoTokenizer.from_pretrained(run_dir, device=device)
    if tok.fsq is None:
        raise ConfigError(f"{run_dir} holds a continuous {tok.cfg.name} tokenizer, but discrete tokens (a dv*/di* "
                          f"tokenizer) are needed here.")  # fmt: skip
    return tok.eval().requires_grad_(False)
