"""``worldsmith train decoder``, and the decoder family's record for the CLI, the tests and ``worldsmith info``.

Decoding goes through ``worldsmith generate --model GPT_RUN --decoder RUN`` (the autoregressive family's rollouts)
or ``worldsmith generate --model RUN --input clip.mp4`` (a clip reconstructed through its discrete tokens).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from worldsmith import config as C
from worldsmith.cli_options import ConfigOption, DataOption, DryRunOption, FreshOption, OutOption, SetOption, preset_option
from worldsmith.decoder.config import PRESETS
from worldsmith.decoder.generate import DecoderGenerator
from worldsmith.decoder.model import DiffusionDecoder
from worldsmith.decoder.train import DecoderRunConfig, train
from worldsmith.family import Family


def train_command(
    out: Path = OutOption,
    data: Optional[str] = DataOption,
    tokens: Optional[str] = typer.Option(None, "--tokens", help="The discrete (DV/DI) tokenizer run whose tokens "
                                         "the decoder decodes (the autoregressive model's tokenizer)."),
    latents: Optional[str] = typer.Option(None, "--latents", help="The continuous (CV/CI) tokenizer run whose "
                                          "latents the decoder generates; same temporal compression."),
    preset: str = preset_option("small", ", ".join(PRESETS)),
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
    fresh: bool = FreshOption,
    dry_run: bool = DryRunOption,
) -> None:  # fmt: skip
    """Train a diffusion decoder: it generates a continuous tokenizer's latents of a clip from the clip's discrete
    tokens, restoring the detail the discrete tokenizer loses. Run the same command again to resume."""
    cfg = FAMILY.resolve(preset, config, overrides or [],
                         {"data": {"shards": data, "token_tokenizer": tokens, "tokenizer": latents}})  # fmt: skip
    if dry_run:
        typer.echo(C.dump_yaml(cfg), nl=False)
        return
    typer.echo(json.dumps(train(cfg, out, fresh=fresh), indent=2, default=str))


FAMILY = Family(
    name="decoder",
    help="Diffusion decoder: discrete (DV) tokens -> continuous latents -> frames, for autoregressive rollouts.",
    presets=PRESETS,
    default_preset="small",
    run_config=DecoderRunConfig,
    train=train,
    model=DiffusionDecoder,
    generator=DecoderGenerator,
    train_command=train_command,
)
