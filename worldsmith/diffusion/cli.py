"""``worldsmith diffusion train|generate|batch``: thin commands over pipeline.py and generation.py.

Mounted by worldsmith/cli.py as ``app.add_typer(diffusion_app, name="diffusion")``; ``worldsmith train diffusion``
and ``worldsmith generate`` can call the same functions (``train`` and ``generate`` below are plain functions
too). Errors are WorldsmithErrors that the root command prints as one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Diffusion world model: train on shards through a tokenizer; Text2World / Video2World.",
                  no_args_is_help=True)  # fmt: skip

DeviceOption = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N.")
StepsOption = typer.Option(10, "--steps", min=1, help="Sampler steps (dpm++2m: 10 is plenty; heun: ~35).")
GuidanceOption = typer.Option(1.0, "--guidance", min=0.0, help="Classifier-free guidance scale; 1 = none.")
SamplerOption = typer.Option("dpm++2m", "--sampler", help="euler, heun or dpm++2m.")
NegativeOption = typer.Option(None, "--negative-prompt", help="Prompt to steer away from (with --guidance > 1).")


@app.command()
def train(
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (config.yaml, model.safetensors, logs)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Training shards: directory, glob, .tar or manifest."),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", "-t", help="Trained continuous tokenizer run."),
    preset: str = typer.Option("small", "--preset", "-p", help="Model preset: tiny, small, base, 2b."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file with (partial) model/train/data sections."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Override a value, e.g. --set train.steps=2000."),
    cache_latents: bool = typer.Option(False, "--cache-latents", help="Encode the clips once and train from the cache."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete the run's outputs and start over instead of resuming."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
) -> None:
    """Train a diffusion world model on clip shards. Run the same command again to resume."""
    from worldsmith.config import dump_yaml, merge
    from worldsmith.diffusion import pipeline

    cfg = pipeline.resolve_run_config(preset, config, overrides or [], data=data,
                                      tokenizer=str(tokenizer) if tokenizer else None)  # fmt: skip
    if cache_latents:
        cfg = merge(cfg, {"data": {"cache_latents": True}})
    if dry_run:
        typer.echo(dump_yaml(cfg), nl=False)
        return
    typer.echo(json.dumps(pipeline.train_diffusion(cfg, out, fresh=fresh), indent=2, default=str))


@app.command()
def generate(
    model: Path = typer.Option(..., "--model", "-m", help="Diffusion run directory."),
    out: Path = typer.Option(..., "--out", "-o", help="Output mp4."),
    prompt: str = typer.Option("", "--prompt", help="What happens in the video."),
    input_path: Optional[Path] = typer.Option(None, "--input", "-i", help="Image or video to continue (Video2World)."),
    frames: Optional[int] = typer.Option(None, "--frames", min=1, help="Frames to output (default: training length)."),
    steps: int = StepsOption,
    guidance: float = GuidanceOption,
    negative_prompt: Optional[str] = NegativeOption,
    sampler: str = SamplerOption,
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same video."),
    device: str = DeviceOption,
) -> None:
    """Text2World, or Video2World with --input; longer --frames extend the video chunk by chunk."""
    from worldsmith.diffusion.generation import generate_from_run

    path = generate_from_run(model, prompt=prompt, input_path=input_path, frames=frames, steps=steps,
                             guidance=guidance, seed=seed, out=out, negative_prompt=negative_prompt,
                             sampler=sampler, device=device)  # fmt: skip
    typer.echo(str(path))


@app.command()
def batch(
    model: Path = typer.Option(..., "--model", "-m", help="Diffusion run directory."),
    jobs: Path = typer.Argument(..., help='JSONL file: one {"prompt": ..., "input"?, "frames"?, "seed"?, ...} per line.'),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for <name>.mp4 outputs (existing ones are kept)."),
    frames: Optional[int] = typer.Option(None, "--frames", min=1, help="Default frames per video."),
    steps: int = StepsOption,
    guidance: float = GuidanceOption,
    sampler: str = SamplerOption,
    device: str = DeviceOption,
) -> None:
    """Generate every job of a JSONL file; run again to finish an interrupted batch."""
    from worldsmith.diffusion.generation import generate_batch

    for result in generate_batch(model, jobs, out, device=device, frames=frames, steps=steps, guidance=guidance,
                                 sampler=sampler):  # fmt: skip
        typer.echo(json.dumps(result))
