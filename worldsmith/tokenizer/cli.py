"""``worldsmith tokenizer train|encode|decode|eval``: thin commands over worldsmith/tokenizer/pipeline.py.

Mounted by worldsmith/cli.py as ``app.add_typer(tokenizer_app, name="tokenizer")``; errors are WorldsmithErrors
that the root command prints as one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Train causal video tokenizers; encode videos to latents/tokens and back; evaluate.",
                  no_args_is_help=True)  # fmt: skip

DeviceOption = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N.")


@app.command()
def train(
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (config.yaml, model.safetensors, logs)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Training shards (directory, glob, .tar, manifest)."),
    preset: str = typer.Option("cv4x8x8-small", "--preset", "-p", help="Tokenizer preset (see `worldsmith info`)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file with (partial) model/train/data sections."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Override a value, e.g. --set train.steps=2000."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Start from this run's weights (fine-tuning)."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete the run's outputs and start over instead of resuming."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
) -> None:
    """Train a tokenizer on clip shards. Run the same command again to resume."""
    from worldsmith.config import dump_yaml
    from worldsmith.tokenizer import pipeline

    cfg = pipeline.resolve_run_config(preset, config, overrides or [], data=data,
                                      init_from=str(init_from) if init_from else None)  # fmt: skip
    if dry_run:
        typer.echo(dump_yaml(cfg), nl=False)
        return
    typer.echo(json.dumps(pipeline.train(out, cfg, fresh=fresh), indent=2, default=str))


@app.command()
def encode(
    run: Path = typer.Argument(..., help="Tokenizer run directory."),
    inputs: list[Path] = typer.Argument(..., help="Video files or folders of videos."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the <name>.safetensors latent files."),
    size: Optional[int] = typer.Option(None, "--size", min=8, help="Resize the short side first (then crop)."),
    chunk: int = typer.Option(16, "--chunk", min=1, help="Frames per network call (memory bound)."),
    device: str = DeviceOption,
) -> None:
    """Encode videos to latents (continuous) or integer tokens (discrete), streaming in bounded memory."""
    from worldsmith.tokenizer import pipeline

    for result in pipeline.encode(run, list(inputs), out, size=size, device=device, chunk=chunk):
        typer.echo(json.dumps(result))


@app.command()
def decode(
    run: Path = typer.Argument(..., help="Tokenizer run directory."),
    inputs: list[Path] = typer.Argument(..., help="Latent files written by `worldsmith tokenizer encode`."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the decoded <name>.mp4 files."),
    device: str = DeviceOption,
) -> None:
    """Decode latent/token files back to mp4 videos, streaming."""
    from worldsmith.tokenizer import pipeline

    for result in pipeline.decode(run, list(inputs), out, device=device):
        typer.echo(json.dumps(result))


@app.command("eval")
def evaluate(
    run: Path = typer.Argument(..., help="Tokenizer run directory."),
    data: list[str] = typer.Argument(..., help="Shards (directory, glob, .tar, manifest) or video files/folders."),
    frames: Optional[int] = typer.Option(None, "--frames", "-t", min=1, help="Frames per clip (default 1 + 4*ct)."),
    size: Optional[int] = typer.Option(None, "--size", min=8, help="Shards: crop size; videos: short side."),
    max_clips: int = typer.Option(16, "--max-clips", "-n", min=1, help="Clips to evaluate."),
    video: Optional[Path] = typer.Option(None, "--video", help="Write a side-by-side mp4 (input | recon | error)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    device: str = DeviceOption,
) -> None:
    """Reconstruction quality: PSNR, SSIM and Fréchet distance on EfficientNet-lite0 features."""
    from worldsmith.tokenizer.evaluation import evaluate as run_eval
    from worldsmith.tokenizer.evaluation import format_results

    result = run_eval(run, list(data), frames=frames, size=size, max_clips=max_clips, video=video, device=device)
    typer.echo(json.dumps(result, indent=2) if as_json else format_results(result))
