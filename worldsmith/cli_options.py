"""Command-line options that several commands share, declared once (typer ``Option`` objects are reusable)."""

from __future__ import annotations

import typer

OutOption = typer.Option(..., "--out", "-o", help="Run directory (config.yaml, model.safetensors, logs).")
DataOption = typer.Option(None, "--data", "-d", help="Training shards: a directory, glob, .tar or manifest.parquet.")
ConfigOption = typer.Option(None, "--config", help="YAML file with (partial) config sections to apply.")
SetOption = typer.Option(
    None, "--set", help="Override a config value, e.g. --set train.lr=3e-4 (repeatable; values are type-checked)."
)
FreshOption = typer.Option(False, "--fresh", help="Delete the run's outputs and start over instead of resuming.")
DryRunOption = typer.Option(False, "--dry-run", help="Print the resolved config and exit without running.")
DeviceOption = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N.")


def preset_option(default: str, choices: str) -> typer.models.OptionInfo:
    return typer.Option(default, "--preset", "-p", help=f"Model preset: {choices}.")
