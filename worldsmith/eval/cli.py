"""``worldsmith eval rollouts|camera|multiview|reader``: score a world model against the simulator; train the state reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from worldsmith import config as C
from worldsmith.atomic import atomic_write_text
from worldsmith.cli_options import (
    ConfigOption,
    DeviceOption,
    DryRunOption,
    FreshOption,
    OutOption,
    SetOption,
)
from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_shard
from worldsmith.errors import CheckpointError
from worldsmith.eval.camera import PATHS, evaluate_camera
from worldsmith.eval.camera import format_report as format_camera
from worldsmith.eval.reader_train import (
    ReaderRunConfig,
    load_frames,
    reader_error,
    train_reader,
)
from worldsmith.eval.rollouts import evaluate_rollouts
from worldsmith.eval.state_reader import StateReader
from worldsmith.eval.views import MANOEUVRE_NAMES, evaluate_multiview
from worldsmith.eval.views import format_report as format_views
from worldsmith.families import load_generator, with_decoder
from worldsmith.jobs import sampling_config
from worldsmith.weights import read_run_config
from worldsmith.zoo import resolve

app = typer.Typer(help="Measure models against the simulator's ground truth.", no_args_is_help=True)


@app.command()
def rollouts(
    model: str = typer.Option(..., "--model", "-m", help="A world-model run directory or a shipped model's name."),
    data: str = typer.Option(..., "--data", "-d", help="Held-out simulated clips (seeds never used in training)."),
    frames: int = typer.Option(16, "--frames", "-t", min=1, help="Frames generated after the given first frame."),
    episodes: int = typer.Option(64, "--episodes", "-n", min=1, help="Held-out clips to roll out."),
    reader: Optional[str] = typer.Option("arm-reader", "--reader", help="State reader run or shipped name ('' = none)."),
    base: Optional[str] = typer.Option(None, "--base", help="Also score this base model (a floor) on the same clips."),
    decoder: Optional[str] = typer.Option(None, "--decoder", help="Autoregressive models: decode the tokens with "
                                          "this diffusion decoder run instead of the DV tokenizer's decoder."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Sampling settings, e.g. --set steps=10."),
    seed: int = typer.Option(0, "--seed"),
    one_step: bool = typer.Option(False, "--one-step", help="Also score every frame predicted from the true frames "
                                  "before it (teacher forcing): the error of one step, before it compounds."),
    as_json: Optional[Path] = typer.Option(None, "--json", help="Also write the whole report to this JSON file."),
    device: str = DeviceOption,
) -> None:  # fmt: skip
    """Roll out from the first frame of each held-out clip (with its actions, for an action model; with its caption,
    the instruction, for a model without actions) and score the rollouts against the simulator: PSNR, SSIM, FD,
    gripper / object pixel errors, instruction following (the named object moves, the others stay), action or
    caption discrimination, floors and ceiling."""
    generator = with_decoder(load_generator(resolve(model), device), decoder, device)
    sampling = sampling_config(generator, C.parse_overrides(overrides or []))
    clips = []
    for shard in list_shards(data):
        clips += [c for c in iter_shard(shard) if c.num_frames > frames]
        if len(clips) >= episodes:
            break
    state_reader = StateReader.from_pretrained(resolve(reader), device=device) if reader else None
    base_gen = load_generator(resolve(base), device) if base else None
    report = evaluate_rollouts(generator, clips[:episodes], frames=frames, reader=state_reader, sampling=sampling,
                               seed=seed, base=base_gen, one_step=one_step)  # fmt: skip
    if as_json:
        atomic_write_text(as_json, json.dumps(report, indent=2))
    typer.echo(format_report(report))


def format_report(r: dict) -> str:
    rows = [("model", "model"), ("one step from the true frames", "one_step"), ("no actions (zeroed)", "no_action"),
            ("no robot state", "no_state"),
            ("no instruction (empty caption)", "no_instruction"), ("base model", "base"),
            ("copy the first frame (floor)", "copy_first"), ("tokenizer reconstruction (ceiling)", "tokenizer")]  # fmt: skip
    lines = [f"{r['episodes']} held-out episodes, {r['frames']} generated frames each",
             f"{'':38} {'PSNR dB':>14} {'SSIM':>7} {'FD':>7} {'gripper px':>11} {'objects px':>11}"]  # fmt: skip
    for label, key in rows:
        if key not in r:
            continue
        m = r[key]
        grip = f"{m['gripper_error_px']:.2f}" if "gripper_error_px" in m else "-"
        obj = f"{m['object_error_px']:.2f}" if "object_error_px" in m else "-"
        fd = f"{m['fd']:.2f}" if m.get("fd") is not None else "-"
        lines.append(f"{label:38} {m['psnr']:>8.2f} ±{m['psnr_sem']:.2f} {m['ssim']:>7.3f} {fd:>7} {grip:>11} {obj:>11}")
    if "instruction_following" in r:
        floors = ", ".join(f"{label} {r[key]['instruction_following']:.0%}" for label, key in
                           (("no instruction", "no_instruction"), ("copy", "copy_first"), ("tokenizer", "tokenizer"))
                           if "instruction_following" in r.get(key, {}))  # fmt: skip
        lines.append(f"instruction following: the object the caption names moves to its true place and the others "
                     f"stay in {r['instruction_following']:.1%} of the {r['instruction_episodes']} episodes where the "
                     f"truth moves it (named object {r['named_object_error_px']:.2f} px off); {floors}")  # fmt: skip
    if "action_discrimination" in r:
        kind = "action" if "no_action" in r else "caption"
        lines.append(f"{kind} discrimination: {r['action_discrimination']:.1%} of {r['discrimination_pairs']} rollouts "
                     f"closer to their own truth than to the other branch's")  # fmt: skip
    return "\n".join(lines)


def held_out_clips(data: str, frames: int, episodes: int, views: bool = False) -> list:
    """The first ``episodes`` clips of ``data`` with >= ``frames`` frames (and extra views, with ``views``)."""
    clips = []
    for shard in list_shards(data):
        clips += [c for c in iter_shard(shard) if c.num_frames >= frames and (c.views or not views)]
        if len(clips) >= episodes:
            break
    return clips[:episodes]


@app.command()
def camera(
    model: str = typer.Option(..., "--model", "-m", help="A camera-controlled run (`worldsmith posttrain camera`) or "
                              "a shipped model's name."),
    data: str = typer.Option(..., "--data", "-d", help="Held-out orbit clips (`worldsmith sim orbit`, seeds never "
                             "used in training): their scenes are re-rendered along every path."),
    frames: int = typer.Option(17, "--frames", "-t", min=3, help="Frames per video, the given first one included."),
    episodes: int = typer.Option(32, "--episodes", "-n", min=1, help="Held-out scenes."),
    base: Optional[str] = typer.Option(None, "--base", help="The floor: this model without the camera (default: "
                                       "the run's post-training base, '' for none)."),
    paths: Optional[list[str]] = typer.Option(None, "--path", help=f"Camera paths to score (repeat; default all: "
                                              f"{', '.join(PATHS)})."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Sampling settings, e.g. --set steps=10."),
    seed: int = typer.Option(0, "--seed"),
    as_json: Optional[Path] = typer.Option(None, "--json", help="Also write the whole report to this JSON file."),
    device: str = DeviceOption,
) -> None:  # fmt: skip
    """Score camera control against the simulator: for held-out scenes and camera paths (including ones unlike
    training), the 3D consistency of the generated video (Sampson error, pose-estimation success, rotation and
    translation errors), PSNR / SSIM / FD against the simulator's renders of the same path, beside the true renders'
    own figures and the floors (the base model without the camera; the first frame repeated)."""
    generator = load_generator(resolve(model), device)
    sampling = sampling_config(generator, C.parse_overrides(overrides or []))
    clips = held_out_clips(data, frames, episodes)
    if base is None:  # the run's post-training base without a camera (a camera model post-trained further: its base's)
        base = read_run_config(resolve(model)).get("init_from") or ""
        try:
            while base and ((config := read_run_config(resolve(base))).get("model") or {}).get("camera"):
                base = config.get("init_from") or ""
            base = str(resolve(base)) if base else ""
        except CheckpointError:
            base = ""
        if not base:
            typer.echo("note: no base without camera found along the run's init_from, so the no-camera floor is "
                       "skipped (pass --base).", err=True)  # fmt: skip
    base_gen = load_generator(resolve(base), device) if base else None
    report = evaluate_camera(generator, clips[:episodes], frames=frames, base=base_gen, sampling=sampling, seed=seed,
                             paths=tuple(paths) if paths else PATHS)  # fmt: skip
    if as_json:
        atomic_write_text(as_json, json.dumps(report, indent=2))
    typer.echo(format_camera(report))


@app.command()
def multiview(
    model: str = typer.Option(..., "--model", "-m", help="A multi-view run (`worldsmith posttrain views`) or a "
                              "shipped model's name."),
    data: str = typer.Option(..., "--data", "-d", help="Held-out drive clips (`worldsmith sim drive`, seeds never "
                             "used in training): the same episodes are re-simulated for the manoeuvres."),
    frames: int = typer.Option(17, "--frames", "-t", min=3, help="Frames per video, the given first one included."),
    episodes: int = typer.Option(32, "--episodes", "-n", min=1, help="Held-out episodes."),
    manoeuvre: Optional[list[str]] = typer.Option(None, "--manoeuvre", help="Named manoeuvres to command from each "
                                                  "episode's start (repeat; default left and right; 'none' for none)."),
    no_floor: bool = typer.Option(False, "--no-floor", help="Skip the independent per-view floor (faster)."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Sampling settings, e.g. --set steps=10."),
    seed: int = typer.Option(0, "--seed"),
    as_json: Optional[Path] = typer.Option(None, "--json", help="Also write the whole report to this JSON file."),
    device: str = DeviceOption,
) -> None:  # fmt: skip
    """Score a multi-view driving model against the simulator: cross-view consistency (CSE, under the rig's known
    calibration), temporal consistency per view (TSE), the yaw rate read from the generated front view against the
    commanded one, left/right manoeuvres told apart, PSNR / SSIM / FD per view; beside the true renders' own figures
    and the floors (every view generated alone; the first frame repeated)."""
    generator = load_generator(resolve(model), device)
    sampling = sampling_config(generator, C.parse_overrides(overrides or []))
    clips = held_out_clips(data, frames, episodes, views=True)
    names = tuple(m for m in (manoeuvre or list(MANOEUVRE_NAMES)) if m != "none")
    report = evaluate_multiview(generator, clips[:episodes], frames=frames, sampling=sampling, seed=seed,
                                manoeuvres=names, floor=not no_floor)  # fmt: skip
    if as_json:
        atomic_write_text(as_json, json.dumps(report, indent=2))
    typer.echo(format_views(report))


@app.command("reader")
def reader_command(
    out: Path = OutOption,
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Simulated arm clips (`worldsmith sim arm`)."),
    heldout: Optional[str] = typer.Option(None, "--heldout", help="Held-out arm clips to report the reader's error on."),
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
    fresh: bool = FreshOption,
    dry_run: bool = DryRunOption,
) -> None:  # fmt: skip
    """Train the state reader (gripper and object pixel positions from a frame) on simulated arm clips and report
    its error on held-out ones. Run the same command again to resume."""
    cfg = C.resolve(ReaderRunConfig(), config, overrides or [])
    if data:
        cfg = C.merge(cfg, {"data": {"shards": data}})
    if dry_run:
        typer.echo(C.dump_yaml(cfg), nl=False)
        return
    summary = train_reader(cfg, out, fresh=fresh)
    if heldout:
        summary["heldout"] = reader_error(StateReader.from_pretrained(out), load_frames(heldout))
    typer.echo(json.dumps(summary, indent=2, default=str))
