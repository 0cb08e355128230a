"""The tokenizer's commands: ``worldsmith train tokenizer`` (``train_command``) and ``worldsmith tokenizer
encode|decode|eval`` (``app``), and the family record ``FAMILY`` that the top-level CLI mounts.

Thin: each command calls one library function and prints. Errors are WorldsmithErrors, which the root command
prints as one sentence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from worldsmith.cli_options import (
    ConfigOption,
    DataOption,
    DeviceOption,
    DryRunOption,
    FreshOption,
    OutOption,
    SetOption,
    preset_option,
)
from worldsmith.config import dump_yaml
from worldsmith.family import Family
from worldsmith.tokenizer.config import PRESETS
from worldsmith.tokenizer.evaluation import DEFAULT_VIDEO_SIDE, evaluate, format_results
from worldsmith.tokenizer.files import decode_latent_files, encode_videos
from worldsmith.tokenizer.generate import TokenizerGenerator
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.tokenizer.train import TokenizerRunConfig, train

DEFAULT_PRESET = "cv4x8x8-small"

PrecisionOption = typer.Option(
    "auto", "--precision", help="auto (bf16 where this machine computes it natively, ~1.9x faster; else fp32), fp32 "
    "or bf16. Only the arithmetic changes: files hold float32 latents.")  # fmt: skip

app = typer.Typer(help="Encode videos to latents/tokens and back; evaluate a trained causal video tokenizer.",
                  no_args_is_help=True)  # fmt: skip


def train_command(
    out: Path = OutOption,
    data: Optional[str] = DataOption,
    preset: str = preset_option(DEFAULT_PRESET, "VARIANT-SIZE, e.g. cv4x8x8-tiny, dv8x16x16-base, ci8x8-small "
                                "(see `worldsmith info`)"),
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Start from this run's weights (fine-tuning)."),
    fresh: bool = FreshOption,
    dry_run: bool = DryRunOption,
) -> None:
    """Train a causal video tokenizer on clip shards. Run the same command again to resume."""
    flags = {"data": {"shards": data}, "init_from": str(init_from) if init_from else None}
    cfg = FAMILY.resolve(preset, config, overrides or [], flags=flags)
    if dry_run:
        typer.echo(dump_yaml(cfg), nl=False)
        return
    typer.echo(json.dumps(train(cfg, out, fresh=fresh), indent=2, default=str))


@app.command()
def encode(
    run: Path = typer.Argument(..., help="Tokenizer run directory."),
    inputs: list[Path] = typer.Argument(..., help="Video files or folders of videos."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the <name>.safetensors latent files."),
    size: Optional[int] = typer.Option(None, "--size", min=8, help="Resize the short side first (then crop)."),
    chunk: int = typer.Option(16, "--chunk", min=1, help="Frames per network call (memory bound)."),
    device: str = DeviceOption,
    precision: str = PrecisionOption,
) -> None:
    """Encode videos to latents (continuous) or integer tokens (discrete), streaming in bounded memory."""
    for result in encode_videos(run, list(inputs), out, size=size, device=device, chunk=chunk, precision=precision):
        typer.echo(json.dumps(result))


@app.command()
def decode(
    run: Path = typer.Argument(..., help="Tokenizer run directory."),
    inputs: list[Path] = typer.Argument(..., help="Latent files written by `worldsmith tokenizer encode`."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the decoded <name>.mp4 files."),
    device: str = DeviceOption,
    precision: str = PrecisionOption,
) -> None:
    """Decode latent/token files back to mp4 videos, streaming."""
    for result in decode_latent_files(run, list(inputs), out, device=device, precision=precision):
        typer.echo(json.dumps(result))


@app.command("eval")
def evaluate_command(
    run: Path = typer.Argument(..., help="Tokenizer run directory."),
    data: list[str] = typer.Argument(..., help="Shards (directory, glob, .tar, manifest) or video files/folders."),
    frames: Optional[int] = typer.Option(None, "--frames", "-t", min=1, help="Frames per clip (default 1 + 4*ct)."),
    size: Optional[int] = typer.Option(None, "--size", min=8, help="Shards: crop size; videos: short side "
                                       f"(default: {DEFAULT_VIDEO_SIDE}, larger videos scaled down)."),
    full_res: bool = typer.Option(False, "--full-res", help="Videos: evaluate at their own size (slow on HD)."),
    max_clips: int = typer.Option(16, "--max-clips", "-n", min=1, help="Clips to evaluate."),
    video: Optional[Path] = typer.Option(None, "--video", help="Write a side-by-side mp4 (input | recon | error)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    device: str = DeviceOption,
) -> None:
    """Reconstruction quality: PSNR, SSIM and Fréchet distance on EfficientNet-lite0 features."""
    result = evaluate(run, list(data), frames=frames, size=size, max_clips=max_clips, video=video, device=device,
                      full_res=full_res, progress=True)  # fmt: skip
    typer.echo(json.dumps(result, indent=2) if as_json else format_results(result))


FAMILY = Family(
    name="tokenizer",
    help="Causal video tokenizers (Cosmos CV/DV): compress video into latents or tokens and back.",
    presets=PRESETS,
    default_preset=DEFAULT_PRESET,
    run_config=TokenizerRunConfig,
    train=train,
    model=CausalVideoTokenizer,
    generator=TokenizerGenerator,
    train_command=train_command,
    commands=app,
)
