"""``worldsmith ar train|tokenize|generate|score``: thin commands over worldsmith/autoregressive/pipeline.py.

Mount in worldsmith/cli.py with ``app.add_typer(ar_app, name="ar")``; errors are WorldsmithErrors that the root
command prints as one line. ``worldsmith generate`` for autoregressive runs calls ``pipeline.generate_from_run``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Autoregressive world model: a GPT over discrete video tokens (train, generate, score).",
                  no_args_is_help=True)  # fmt: skip

DeviceOption = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N.")


@app.command()
def train(
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (config.yaml, model.safetensors, logs)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Clip shards to tokenize and train on."),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="DV tokenizer run directory."),
    tokens: Optional[Path] = typer.Option(None, "--tokens", help="Token set folder (default: <out>/tokens)."),
    preset: str = typer.Option("tiny", "--preset", "-p", help="Model size: tiny, small, base."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file with (partial) model/train/data sections."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Override a value, e.g. --set train.steps=2000."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete the run's outputs and start over instead of resuming."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
) -> None:
    """Tokenize clip shards with a DV tokenizer and train the GPT on them. Run the same command again to resume."""
    from worldsmith.config import dump_yaml
    from worldsmith.autoregressive import pipeline

    cfg = pipeline.resolve_run_config(preset, config, overrides or [], data=data,
                                      tokens=str(tokens) if tokens else None,
                                      tokenizer=str(tokenizer) if tokenizer else None)  # fmt: skip
    if dry_run:
        typer.echo(dump_yaml(cfg), nl=False)
        return
    typer.echo(json.dumps(pipeline.train(out, cfg, fresh=fresh), indent=2, default=str))


@app.command()
def tokenize(
    tokenizer: Path = typer.Argument(..., help="DV tokenizer run directory."),
    data: str = typer.Argument(..., help="Clip shards: directory, glob, .tar or manifest."),
    out: Path = typer.Option(..., "--out", "-o", help="Token set folder to write (resumable)."),
    size: int = typer.Option(64, "--size", min=8, help="Frame size (square) before tokenizing."),
    device: str = DeviceOption,
) -> None:
    """Encode every clip of the shards to discrete token grids (a token set for training)."""
    from worldsmith.autoregressive.data import tokenize_shards

    index = tokenize_shards(tokenizer, data, out, size=size, device=device)
    typer.echo(json.dumps({k: v for k, v in index.items() if k != "files"}, indent=2))


@app.command()
def generate(
    run: Path = typer.Argument(..., help="Autoregressive run directory."),
    input_path: Path = typer.Option(..., "--input", "-i", help="Video or image whose last frames are the context."),
    out: Path = typer.Option(..., "--out", "-o", help="Output mp4 (context, then the generated frames)."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="Text that conditions the rollout."),
    frames: int = typer.Option(16, "--frames", "-t", min=1, help="Frames to generate."),
    context_frames: Optional[int] = typer.Option(None, "--context-frames", min=1, help="Input frames to condition on."),
    temperature: float = typer.Option(1.0, "--temperature", min=0.0, help="Sampling temperature (0: greedy)."),
    top_k: int = typer.Option(0, "--top-k", min=0, help="Sample among the k most likely tokens (0: all)."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass in (0, 1] (1: all)."),
    samples: int = typer.Option(1, "--samples", "-n", min=1, help="Rollouts drawn in one batch, tiled side by side."),
    seed: int = typer.Option(0, "--seed"),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="DV tokenizer run (default: the run's)."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the decode step (slow start, faster steps)."),
    threads: int = typer.Option(1, "--threads", min=0, help="torch threads while generating (0: torch's default)."),
    device: str = DeviceOption,
) -> None:
    """Continue a video with the autoregressive model, frame by frame."""
    from worldsmith.autoregressive.pipeline import generate_from_run

    path = generate_from_run(run, input_path=input_path, prompt=prompt, frames=frames, temperature=temperature,
                             top_k=top_k, top_p=top_p, seed=seed, out=out, context_frames=context_frames,
                             samples=samples, tokenizer_run=tokenizer, device=device, compile=compile,
                             threads=threads or None)  # fmt: skip
    typer.echo(str(path))


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
    from worldsmith.autoregressive.evaluation import score_rollouts
    from worldsmith.autoregressive.pipeline import torch_threads
    from worldsmith.autoregressive.sampling import SamplingConfig

    with torch_threads(threads or None):
        result = score_rollouts(run, tokenizer, data, context_frames=context_frames, frames=frames,
                                max_clips=max_clips, sampling=SamplingConfig(temperature, top_k, top_p), seed=seed,
                                device=device)  # fmt: skip
    typer.echo(json.dumps(result, indent=2))


if __name__ == "__main__":  # `python -m worldsmith.autoregressive.cli ...` (e.g. under torchrun)
    app()
