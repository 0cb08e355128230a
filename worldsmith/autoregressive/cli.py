"""``worldsmith train autoregressive`` and ``worldsmith autoregressive tokenize|score``, and the family's record.

Generation goes through the top-level ``worldsmith generate`` / ``worldsmith batch`` (the Generator protocol).
Errors are WorldsmithErrors that the root command prints as one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from worldsmith import config as C
from worldsmith.autoregressive.config import PRESETS, SamplingConfig
from worldsmith.autoregressive.data import tokenize_shards
from worldsmith.autoregressive.evaluation import score_rollouts
from worldsmith.autoregressive.generate import ARGenerator, torch_threads
from worldsmith.autoregressive.model import VideoGPT
from worldsmith.autoregressive.train import ARRunConfig, train
from worldsmith.cli_options import (ConfigOption, DataOption, DeviceOption, DryRunOption, FreshOption, OutOption,
                                    SetOption, preset_option)  # fmt: skip
from worldsmith.family import Family

app = typer.Typer(help="Autoregressive world model: tokenize clips into token sets, score rollouts.",
                  no_args_is_help=True)  # fmt: skip


def train_command(
    out: Path = OutOption,
    data: Optional[str] = DataOption,
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", "-t", help="DV tokenizer run directory."),
    tokens: Optional[Path] = typer.Option(None, "--tokens", help="Token set folder (default: <out>/tokens)."),
    preset: str = preset_option("tiny", ", ".join(PRESETS)),
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
    fresh: bool = FreshOption,
    dry_run: bool = DryRunOption,
) -> None:
    """Tokenize clip shards with a DV tokenizer and train the GPT on them. Run the same command again to resume."""
    flags = {"data": {"shards": data, "tokens": str(tokens) if tokens else None},
             "tokenizer": str(tokenizer.resolve()) if tokenizer else None}  # fmt: skip
    cfg = FAMILY.resolve(preset, config, overrides or [], flags)
    if dry_run:
        typer.echo(C.dump_yaml(cfg), nl=False)
        return
    typer.echo(json.dumps(train(cfg, out, fresh=fresh), indent=2, default=str))


@app.command()
def tokenize(
    tokenizer: Path = typer.Argument(..., help="DV tokenizer run directory."),
    data: str = typer.Argument(..., help="Clip shards: directory, glob, .tar or manifest."),
    out: Path = typer.Option(..., "--out", "-o", help="Token set folder to write (resumable)."),
    size: int = typer.Option(64, "--size", min=8, help="Frame size (square) before tokenizing."),
    hysteresis: float = typer.Option(0.0, "--hysteresis", min=0.0, max=0.49, help="Tokens that do not flicker: a "
                                     "code digit keeps its value until the encoder moves 0.5 + this many grid steps "
                                     "from it (train with --set data.hysteresis to match)."),
    device: str = DeviceOption,
) -> None:
    """Encode every clip of the shards to discrete token grids (a token set for training)."""
    index = tokenize_shards(tokenizer, data, out, size=size, device=device, hysteresis=hysteresis)
    typer.echo(json.dumps({k: v for k, v in index.items() if k != "files"}, indent=2))


@app.command()
def score(
    run: Path = typer.Argument(..., help="Autoregressive run directory."),
    data: str = typer.Argument(..., help="Held-out clip shards (the truth)."),
    context_frames: int = typer.Option(1, "--context-frames", min=1, help="Frames the rollout starts from."),
    frames: int = typer.Option(16, "--frames", "-t", min=1, help="Frames to roll out and score."),
    max_clips: int = typer.Option(16, "--max-clips", "-n", min=1, help="Clips to score."),
    temperature: float = typer.Option(1.0, "--temperature", min=0.0),
    top_k: int = typer.Option(0, "--top-k", min=0),
    top_p: float = typer.Option(1.0, "--top-p"),
    seed: int = typer.Option(0, "--seed"),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="DV tokenizer run (default: the run's)."),
    threads: int = typer.Option(1, "--threads", min=0, help="torch threads while scoring (0: torch's default)."),
    device: str = DeviceOption,
) -> None:
    """PSNR, SSIM and feature Fréchet distance of rollouts against the clips' true continuation (JSON)."""
    with torch_threads(threads or None):
        result = score_rollouts(run, tokenizer, data, context_frames=context_frames, frames=frames,
                                max_clips=max_clips, sampling=SamplingConfig(temperature, top_k, top_p), seed=seed,
                                device=device)  # fmt: skip
    typer.echo(json.dumps(result, indent=2))


FAMILY = Family(
    name="autoregressive",
    help="Autoregressive world model: a GPT over discrete FSQ tokens, fast enough for real-time play.",
    presets=PRESETS,
    default_preset="tiny",
    run_config=ARRunConfig,
    train=train,
    model=VideoGPT,
    generator=ARGenerator,
    train_command=train_command,
    commands=app,
)
