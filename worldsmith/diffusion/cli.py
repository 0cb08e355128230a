"""``worldsmith train diffusion``, and the diffusion family's record for the CLI, the demo and the tests.

Generation goes through the top-level ``worldsmith generate`` / ``worldsmith batch`` (the Generator protocol).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from worldsmith import config as C
from worldsmith.cli_options import ConfigOption, DataOption, DryRunOption, FreshOption, OutOption, SetOption, preset_option
from worldsmith.diffusion.config import PRESETS
from worldsmith.diffusion.generate import DiffusionGenerator
from worldsmith.diffusion.model import DiffusionWorldModel
from worldsmith.diffusion.train import DiffusionRunConfig, train
from worldsmith.family import Family


def train_command(
    out: Path = OutOption,
    data: Optional[str] = DataOption,
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", "-t", help="Trained continuous tokenizer run."),
    preset: str = preset_option("small", ", ".join(PRESETS)),
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
    cache_latents: Optional[bool] = typer.Option(None, "--cache-latents", help="Encode the clips once and train "
                                                 "from the cache (fast on a CPU)."),
    fresh: bool = FreshOption,
    dry_run: bool = DryRunOption,
) -> None:  # fmt: skip
    """Train a diffusion world model (latent DiT) on clip shards through a trained tokenizer. Run the same command
    again to resume."""
    flags = {"data": {"shards": data, "tokenizer": str(tokenizer) if tokenizer else None, "cache_latents": cache_latents}}
    cfg = FAMILY.resolve(preset, config, overrides or [], flags)
    if dry_run:
        typer.echo(C.dump_yaml(cfg), nl=False)
        return
    typer.echo(json.dumps(train(cfg, out, fresh=fresh), indent=2, default=str))


FAMILY = Family(
    name="diffusion",
    help="Diffusion world model: a latent DiT over continuous tokens (Text2World + Video2World).",
    presets=PRESETS,
    default_preset="small",
    run_config=DiffusionRunConfig,
    train=train,
    model=DiffusionWorldModel,
    generator=DiffusionGenerator,
    train_command=train_command,
)
