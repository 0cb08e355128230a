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

from worldsmith import config as C
from worldsmith.cli_options import ConfigOption, DeviceOption, DryRunOption, SetOption
from worldsmith.curate.pipeline import CurateConfig, plan, run_curation
from worldsmith.data.inspect import format_stats, inspect
from worldsmith.demo import DemoConfig, quick_config, run_demo
from worldsmith.errors import WorldsmithError
from worldsmith.envs import cli as envs_cli
from worldsmith.eval import cli as eval_cli
from worldsmith.families import FAMILIES, load_generator, with_decoder
from worldsmith.guard import cli as guard_cli
from worldsmith.info import collect_info, format_info
from worldsmith.jobs import request_for, run_jobs, run_request, sampling_config
from worldsmith.posttrain import posttrain_config
from worldsmith.serve import cli as serve_cli
from worldsmith.upsample import cli as upsample_cli
from worldsmith.upsample.upsampler import UpsampleConfig
from worldsmith.worlds.generate import simulate

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
app.add_typer(eval_cli.app, name="eval")
app.command("plan")(envs_cli.plan)
app.command("synth")(envs_cli.synth)
app.command("serve")(serve_cli.serve)
app.command("play")(serve_cli.play)
app.add_typer(guard_cli.app, name="guard")
app.command("upsample")(upsample_cli.upsample)
eval_cli.app.command("policies")(envs_cli.policies)
train_app.command("policy")(envs_cli.train_policy)
for _family in FAMILIES.values():  # `worldsmith train NAME` and `worldsmith NAME ...` for every family
    train_app.command(_family.name, help=_family.train_command.__doc__)(_family.train_command)
    if _family.commands is not None:
        app.add_typer(_family.commands, name=_family.name)

_state = {"debug": False}

@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _state["debug"] = debug


# ---------------------------------------------------------------------------------------------------------------
@app.command()
def info() -> None:
    """Print versions, threads, accelerators, and the worlds, model families and presets that exist."""
    typer.echo(format_info(collect_info()))


@app.command("config")
def show_config(
    family: str = typer.Argument(..., help=f"Model family: {', '.join(FAMILIES)}."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Named preset of that family."),
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """Print the resolved training config of a model family: preset <- YAML file <- --set overrides."""
    if family not in FAMILIES:
        raise WorldsmithError(f"unknown model family {family!r}; choose one of: {', '.join(FAMILIES)}.")
    typer.echo(C.dump_yaml(FAMILIES[family].resolve(preset, config, overrides or [])), nl=False)


@data_app.command("inspect")
def data_inspect(
    path: Path = typer.Argument(..., help="A shard directory, a .tar shard, a glob or a manifest.parquet."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the contact-sheet PNG."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
) -> None:
    """Print statistics of a clip dataset and write a contact sheet of a few clips."""
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
    rig: Optional[str] = typer.Option(None, "--rig", help="Drive only: camera yaws, wide (default: front cameras at "
                                      "+-50 degrees) or overlap (+-30: neighbouring views share half the image)."),
    behaviour: Optional[str] = typer.Option(None, "--behaviour", help="Drive only: the scripted driver, lane "
                                            "(default: follows its lane) or mixed (half the episodes free left/right "
                                            "turns, speed changes and stops, for trajectory-conditioned models)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=1, help="Parallel processes (default: cores)."),
    branches: int = typer.Option(1, "--branches", min=1, help="Play each episode's scene this many times with "
                                 "independent policies (same first frame, other actions)."),
) -> None:  # fmt: skip
    """Simulate a physical world and write clips with actions, poses and ground truth as shards.

    Run the same command again after an interruption to finish the missing episodes.
    """
    summary = simulate(
        world, episodes=episodes, frames=frames, size=size, fps=fps, out=out, seed=seed, views=views, rig=rig,
        behaviour=behaviour,
        workers=workers, branches=branches,
    )
    typer.echo(json.dumps(summary, indent=2, default=str))


UpsampleOption = typer.Option(False, "--upsample", help="Rewrite the prompt in detail first (objects, layout, "
                              "camera, lighting, motion), offline: see `worldsmith upsample --help`.")  # fmt: skip
SAMPLING_HELP = "Sampling setting (applies to the families that have it; see `worldsmith generate --help`)."


@app.command()
def generate(
    model: str = typer.Option(..., "--model", "-m", help="A run directory of any model family, or a shipped "
                              "model's name (`worldsmith info` lists them)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output mp4."),
    prompt: str = typer.Option("", "--prompt", help="What happens in the video."),
    input_path: Optional[Path] = typer.Option(None, "--input", "-i", help="Image or video to continue (Video2World)."),
    frames: Optional[int] = typer.Option(None, "--frames", min=1, help="Frames in the output, the input's included "
                                         "(default: the model's)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same video."),
    actions: Optional[Path] = typer.Option(None, "--actions", help="Action models: a .npy or .json (N, A) array, "
                                           "one action per frame transition from the input frame on."),
    camera: Optional[str] = typer.Option(None, "--camera", help="Camera models: a named path (orbit_left, "
                                         "orbit_right, dolly_in, dolly_out, pan_left, pan_right, tilt_up, tilt_down, "
                                         "crane_up, crane_down, static; add :AMOUNT in degrees or metres, e.g. "
                                         "orbit_left:45) or a JSON file of OpenCV camera-to-world poses or keyframes "
                                         "(see worldsmith/worlds/camera_paths.py). --frames poses (default 17)."),
    fov: Optional[float] = typer.Option(None, "--fov", help="Camera models: the input's vertical field of view in "
                                        "degrees (default 50)."),
    input_views: Optional[str] = typer.Option(None, "--input-views", help="Multi-view models: the first frame "
                                              "(image or video) of every camera, comma-separated, front first, e.g. "
                                              "front.png,left.png,right.png; writes OUT (views side by side) and "
                                              "OUT.view0.mp4 ... one per view."),
    trajectory: Optional[str] = typer.Option(None, "--trajectory", help="Multi-view models: the ego trajectory, a "
                                             "named manoeuvre (straight, left, right, stop; add :AMOUNT, e.g. "
                                             "left:0.8) or a JSON file (see worldsmith/worlds/manoeuvres.py). "
                                             "--frames states (default 17)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Diffusion: sampler steps (default 10; a "
                                        "decoder run: 3)."),
    guidance: Optional[float] = typer.Option(None, "--guidance", min=0.0, help="Diffusion: classifier-free "
                                             "guidance (default 1 = none)."),
    negative_prompt: Optional[str] = typer.Option(None, "--negative-prompt", help="Diffusion: prompt to avoid."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="Diffusion: euler, heun or dpm++2m (default; a "
                                          "decoder run: euler)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", min=0.0, help="Autoregressive: sampling "
                                                "temperature (default 1; 0 = greedy)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=0, help="Autoregressive: the k likeliest tokens."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Autoregressive: nucleus mass in (0, 1]."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Any other sampling setting, e.g. "
                                                  "--set steps=20."),
    device: str = DeviceOption,
    no_guardrail: bool = guard_cli.NoGuardOption,
    allow: Optional[list[str]] = guard_cli.AllowOption,
    deny: Optional[list[str]] = guard_cli.DenyOption,
    audit_log: Optional[Path] = guard_cli.AuditOption,
    llm_judge: Optional[str] = guard_cli.JudgeOption,
    upsample: bool = UpsampleOption,
    decoder: Optional[str] = typer.Option(None, "--decoder", help="Autoregressive: decode the tokens with this "
                                          "diffusion decoder run (`worldsmith train decoder`) instead of the DV "
                                          "tokenizer's own decoder."),
) -> None:  # fmt: skip
    """Generate a video with a trained model of any family (the run directory says which): Text2World from a
    prompt, or Video2World continuing --input. Guardrails check the prompt and the output (faces are blurred)."""
    values = {"steps": steps, "guidance": guidance, "negative_prompt": negative_prompt, "sampler": sampler,
              "temperature": temperature, "top_k": top_k, "top_p": top_p}  # fmt: skip
    values = {k: v for k, v in values.items() if v is not None} | C.parse_overrides(overrides or [])
    generator = with_decoder(load_generator(model, device), decoder, device)
    sampling = sampling_config(generator, values)
    request = request_for(prompt, input_path, frames, seed, actions, camera, fov, input_views, trajectory)
    rails = guard_cli.rails_for("generate", out.parent, no_guardrail=no_guardrail, allow=allow, deny=deny,
                                audit_log=audit_log, llm_judge=llm_judge)  # fmt: skip
    upsampling = UpsampleConfig() if upsample else None
    typer.echo(str(run_request(generator, request, sampling, out, rails, upsampling)))


@app.command()
def batch(
    jobs: Path = typer.Argument(..., help='JSONL file: one {"prompt": ..., "input"?, "frames"?, "seed"?, "name"?, '
                                '<sampling settings>?} per line.'),
    model: str = typer.Option(..., "--model", "-m", help="A run directory of any model family, or a shipped "
                              "model's name (`worldsmith info` lists them)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for <name>.mp4 outputs (existing ones are kept)."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Sampling settings for every job that does not "
                                                  "set its own, e.g. --set steps=20."),
    device: str = DeviceOption,
    no_guardrail: bool = guard_cli.NoGuardOption,
    allow: Optional[list[str]] = guard_cli.AllowOption,
    deny: Optional[list[str]] = guard_cli.DenyOption,
    audit_log: Optional[Path] = guard_cli.AuditOption,
    llm_judge: Optional[str] = guard_cli.JudgeOption,
    upsample: bool = UpsampleOption,
) -> None:  # fmt: skip
    """Generate every job of a JSONL file with one model; run again to finish an interrupted batch. Guardrails
    check every prompt and output; a refused job is reported and the batch goes on."""
    generator = load_generator(model, device)
    rails = guard_cli.rails_for("batch", out, no_guardrail=no_guardrail, allow=allow, deny=deny,
                                audit_log=audit_log, llm_judge=llm_judge)  # fmt: skip
    upsampling = UpsampleConfig() if upsample else None
    for result in run_jobs(generator, jobs, out, C.parse_overrides(overrides or []), rails, upsampling):
        typer.echo(json.dumps(result))


@app.command()
def posttrain(
    mode: str = typer.Argument(..., help="action (condition on the clips' actions), instruction (on their captions) "
                               "camera (on their camera poses: Plücker rays; diffusion models) or views (every "
                               "synchronized camera jointly, on the ego trajectory; diffusion models)."),
    base: str = typer.Option(..., "--from", help="The base world model: a run directory or a shipped model's name."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="The clips (shards with actions, or with c2w and "
                                       "intrinsics for camera, e.g. from `worldsmith sim orbit`; several views and an ego "
                                       "array for views, e.g. `worldsmith sim drive`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory of the post-trained model."),
    lora: int = typer.Option(0, "--lora", min=0, help="Train rank-R LoRA adapters instead of every weight (0: full)."),
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
    fresh: bool = typer.Option(False, "--fresh", help="Delete the run's outputs and start over instead of resuming."),
    dry_run: bool = DryRunOption,
) -> None:  # fmt: skip
    """Post-train a base world model on a robot's clips: with their actions (per-frame control), their task
    instructions, a camera's poses (camera control), or all of a vehicle's cameras at once along its trajectory. Starts from the base's weights and architecture; run the
    same command again to resume."""
    family, cfg = posttrain_config(mode, base, data, lora_rank=lora, config_yaml=config, overrides=overrides or [])
    if dry_run:
        typer.echo(C.dump_yaml(cfg), nl=False)
        return
    typer.echo(json.dumps(family.train(cfg, out, fresh=fresh), indent=2, default=str))


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_output"), "--out", "-o", help="Output directory (report: OUT/index.html)."),
    quick: bool = typer.Option(False, "--quick", help="Seconds-long tiny version (what the tests run)."),
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
    dry_run: bool = DryRunOption,
) -> None:
    """Ask the shipped action-conditioned world model "what happens if the robot does X": simulate held-out arm
    scenes played twice with different actions, roll the model out from each first frame under each action
    sequence, score it against the simulator (PSNR, gripper / object positions, action discrimination, floors and
    ceiling) and write an HTML report. Nothing is trained or downloaded. Run it again to resume.

    Settings (see --dry-run): model, reader, scenes, frames, seed, sampling ... e.g. --set scenes=32.
    """
    cfg = C.resolve(quick_config() if quick else DemoConfig(), config, overrides or [])
    if dry_run:
        typer.echo(C.dump_yaml(cfg), nl=False)
        return
    run_demo(cfg, out)
    typer.echo(f"next: drive {cfg.model} yourself with `worldsmith play` (prints a page's address; the simulator "
               f"can run beside it).")  # fmt: skip


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
