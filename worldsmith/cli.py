"""The ``worldsmith`` command line. Thin: it parses arguments, calls library functions and prints.

Errors a user can cause (a bad file, flag or config value) are ``WorldsmithError``s: they print one sentence and
exit with status 1. ``worldsmith --debug COMMAND`` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from worldsmith.errors import WorldsmithError

app = typer.Typer(
    name="worldsmith",
    help="worldsmith: build a digital twin of the world from video. Simulate data, curate it, train video "
    "tokenizers and world models, generate and evaluate rollouts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
data_app = typer.Typer(help="Inspect clip shards and manifests.", no_args_is_help=True)
app.add_typer(data_app, name="data")
train_app = typer.Typer(help="Train a model family on clip shards (resume: run the same command again).",
                        no_args_is_help=True)  # fmt: skip
app.add_typer(train_app, name="train")


def _mount_model_families() -> None:
    """Each model family brings a typer sub-app (its commands import the heavy modules lazily)."""
    from worldsmith.autoregressive import cli as ar_cli
    from worldsmith.diffusion import cli as diffusion_cli
    from worldsmith.tokenizer import cli as tokenizer_cli

    app.add_typer(tokenizer_cli.app, name="tokenizer")
    app.add_typer(diffusion_cli.app, name="diffusion")
    app.add_typer(ar_cli.app, name="autoregressive")
    train_app.command("tokenizer", help="Train a causal video tokenizer (same as `worldsmith tokenizer train`).")(
        tokenizer_cli.train
    )
    train_app.command("diffusion", help="Train a diffusion world model (same as `worldsmith diffusion train`).")(
        diffusion_cli.train
    )
    train_app.command("autoregressive", help="Train an autoregressive world model on tokenized clips.")(
        ar_cli.train
    )


_mount_model_families()

_state = {"debug": False}

SetOption = typer.Option(
    None, "--set", help="Override a config value, e.g. --set train.lr=3e-4 (repeatable; values are type-checked)."
)
ConfigOption = typer.Option(None, "--config", help="YAML file with (partial) config sections to apply.")
DryRunOption = typer.Option(False, "--dry-run", help="Print the resolved config and exit without running.")


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _state["debug"] = debug


# ---------------------------------------------------------------------------------------------------------------
@app.command()
def info() -> None:
    """Print versions, threads, accelerators, and the worlds, model families and presets that exist."""
    from worldsmith.info import collect_info, format_info

    typer.echo(format_info(collect_info()))


@app.command("config")
def show_config(
    family: str = typer.Argument(..., help="Model family, e.g. 'baseline' (see `worldsmith info`)."),
    preset: str = typer.Option("tiny", "--preset", "-p", help="Named preset of that family."),
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """Print the resolved config of a model family: preset <- YAML file <- --set overrides."""
    from worldsmith import config as C

    C.load_all_presets()
    cfg = C.resolve(C.preset(family, preset), config, overrides or [])
    typer.echo(C.dump_yaml(cfg), nl=False)


@data_app.command("inspect")
def data_inspect(
    path: Path = typer.Argument(..., help="A shard directory, a .tar shard, a glob or a manifest.parquet."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the contact-sheet PNG."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
) -> None:
    """Print statistics of a clip dataset and write a contact sheet of a few clips."""
    from worldsmith.data.inspect import format_stats, inspect

    stats = inspect(str(path), out_png=out)
    typer.echo(json.dumps(stats, indent=2, default=str) if as_json else format_stats(stats))


@app.command()
def sim(
    world: str = typer.Argument(..., help="Which world: arm, orbit, drive or bounce."),
    episodes: int = typer.Option(8, "--episodes", "-n", min=1, help="Number of episodes (one clip each)."),
    frames: int = typer.Option(32, "--frames", "-t", min=2, help="Frames per episode."),
    size: int = typer.Option(64, "--size", min=16, help="Frame size in pixels (square)."),
    fps: float = typer.Option(10.0, "--fps", min=1.0, help="Video frame rate."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory for shards and manifest.parquet."),
    seed: int = typer.Option(0, "--seed", help="Base seed; same seed gives identical frames, actions, captions."),
    views: Optional[int] = typer.Option(None, "--views", min=1, help="Synchronized cameras (drive: default 3)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=1, help="Parallel processes (default: cores)."),
) -> None:
    """Simulate a physical world and write clips with actions, poses and ground truth as shards.

    Run the same command again after an interruption to finish the missing episodes.
    """
    from worldsmith.worlds.generate import simulate

    summary = simulate(
        world, episodes=episodes, frames=frames, size=size, fps=fps, out=out, seed=seed, views=views, workers=workers
    )
    typer.echo(json.dumps(summary, indent=2, default=str))


def model_family(run_dir: Path) -> str:
    """'diffusion' or 'autoregressive', from the ``model_class`` a run directory's config.yaml records."""
    from worldsmith.config import load_yaml
    from worldsmith.errors import CheckpointError

    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(f"{run_dir} is not a run directory (no config.yaml); pass the folder a training run wrote.")
    model_class = str(load_yaml(run_dir / "config.yaml").get("model_class", ""))
    for family in ("diffusion", "autoregressive"):
        if model_class.startswith(f"worldsmith.{family}."):
            return family
    raise CheckpointError(f"{run_dir} holds a {model_class or 'unknown'} model, not a diffusion or autoregressive world model.")


@app.command()
def generate(
    model: Path = typer.Option(..., "--model", "-m", help="A diffusion or autoregressive run directory."),
    out: Path = typer.Option(..., "--out", "-o", help="Output mp4."),
    prompt: str = typer.Option("", "--prompt", help="What happens in the video."),
    input_path: Optional[Path] = typer.Option(None, "--input", "-i", help="Image or video to continue (Video2World)."),
    frames: Optional[int] = typer.Option(None, "--frames", min=1, help="Frames to generate (default: the model's)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same video."),
    steps: int = typer.Option(10, "--steps", min=1, help="Diffusion: sampler steps."),
    guidance: float = typer.Option(1.0, "--guidance", min=0.0, help="Diffusion: classifier-free guidance (1 = none)."),
    negative_prompt: Optional[str] = typer.Option(None, "--negative-prompt", help="Diffusion: prompt to avoid."),
    sampler: str = typer.Option("dpm++2m", "--sampler", help="Diffusion: euler, heun or dpm++2m."),
    temperature: float = typer.Option(1.0, "--temperature", min=0.0, help="Autoregressive: sampling temperature."),
    top_k: int = typer.Option(0, "--top-k", min=0, help="Autoregressive: sample among the k likeliest tokens."),
    top_p: float = typer.Option(1.0, "--top-p", help="Autoregressive: nucleus mass in (0, 1]."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
) -> None:
    """Generate a video with a trained world model; the run directory says which family it is."""
    family = model_family(model)
    if family == "diffusion":
        from worldsmith.diffusion.generation import generate_from_run

        path = generate_from_run(model, prompt=prompt, input_path=input_path, frames=frames, steps=steps,
                                 guidance=guidance, seed=seed, out=out, negative_prompt=negative_prompt,
                                 sampler=sampler, device=device)  # fmt: skip
    else:
        from worldsmith.autoregressive.pipeline import generate_from_run

        if input_path is None:
            raise WorldsmithError("the autoregressive model continues a video: pass --input image.png or video.mp4.")
        path = generate_from_run(model, input_path=input_path, prompt=prompt or None, frames=frames or 16,
                                 temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, out=out,
                                 device=device)  # fmt: skip
    typer.echo(str(path))


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_output"), "--out", "-o", help="Output directory (report: OUT/index.html)."),
    quick: bool = typer.Option(False, "--quick", help="Seconds-long tiny version (what the tests run)."),
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
    dry_run: bool = DryRunOption,
) -> None:
    """Run the platform end to end on built-in data: simulate arm-world episodes, train a video tokenizer and a
    diffusion world model, generate Video2World continuations of held-out episodes and score them against the
    simulator in an HTML report. Run it again to resume after an interruption.

    Settings (see --dry-run): world, episodes, frames, size, tokenizer.*, diffusion.* ... e.g.
    --set diffusion.train.steps=2000.
    """
    from worldsmith import config as C
    from worldsmith.demo import DemoConfig, quick_config, run_demo

    cfg = C.resolve(quick_config() if quick else DemoConfig(), config, overrides or [])
    if dry_run:
        typer.echo(C.dump_yaml(cfg), nl=False)
        return
    run_demo(cfg, out)


@app.command()
def curate(
    input_path: str = typer.Argument(..., metavar="INPUT", help="Videos to curate: a folder (searched recursively), "
                                     "a quoted glob ('raw/**/*.mp4'), a .txt list of paths, or a worldsmith shard "
                                     "folder / manifest.parquet (e.g. the output of `worldsmith sim`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: shards, manifest.parquet, report.html."),
    engine: Optional[str] = typer.Option(None, "--engine", help="local (worker processes; default) or ray (Ray Data)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join this Ray cluster ('auto', "
                                              "'ray://head:10001'; implies --engine ray); default: a local Ray."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=1, help="Worker processes (default: cores)."),
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and the inputs found; write nothing."),
) -> None:  # fmt: skip
    """Turn raw videos into clean, captioned, deduplicated training shards: split into shots and clips, filter
    (motion, quality, text overlay, video type), caption, deduplicate, shard by resolution / aspect / length.

    Unreadable files are listed in the report and skipped; the input is never modified. Interrupted? Run the same
    command again to resume. Settings: see --dry-run, e.g. --set split.detector=adaptive --set filters.motion.enabled=false.
    """
    from worldsmith import config as C
    from worldsmith.curate.pipeline import CurateConfig, plan, run_curation

    cfg = C.resolve(CurateConfig(), config, overrides or [])
    engine = engine or ("ray" if ray_address else None)
    flags = {"engine": engine, "ray_address": ray_address, "workers": workers}
    cfg = C.merge(cfg, {k: v for k, v in flags.items() if v is not None})
    if dry_run:
        sources, bad = plan(input_path, out)
        typer.echo(C.dump_yaml(cfg), nl=False)
        typer.echo(f"# {len(sources)} source(s) found in {input_path}; {len(bad)} bad file(s):")
        for b in bad:
            typer.echo(f"#   {b.path}: {b.reason}")
        return
    s = run_curation(input_path, out, cfg)
    typer.echo(f"kept {s['kept']} of {s['clips']} clips ({s['hours_out'] * 60:.1f} of {s['hours_in'] * 60:.1f} min) "
               f"from {s['sources']} input files ({s['bad_files']} unreadable) in {s['seconds']:.1f} s.")  # fmt: skip
    typer.echo(f"report:   {s['report']}\nmanifest: {s['manifest']}\nshards:   {out}/res_*/ar_*/frames_*/part-*.tar")


# ---------------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; user errors print one sentence, never a traceback (unless --debug)."""
    try:
        app(args=argv, standalone_mode=True)
    except WorldsmithError as e:
        if _state["debug"]:
            raise
        typer.echo(f"error: {e}", err=True)
        sys.exit(1)
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as e:
        if _state["debug"]:
            raise
        typer.echo(f"error: {e.strerror or e}: {e.filename}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted; run the same command again to resume.", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
