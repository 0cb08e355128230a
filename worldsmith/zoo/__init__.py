"""Shipped models: small trained models inside the package, each a run folder with a model card, loaded by name.

``worldsmith generate --model arm-action ...`` works without training first: wherever a run directory is taken, a
shipped model's name is too (``resolve``). Each folder holds ``config.yaml``, ``model.safetensors`` (< 20 MB), what
generation needs (``generation.json``, naming its tokenizer by its shipped name) and ``MODEL_CARD.md`` (data,
the command that reproduces it, metrics, licence). ``benchmarks/zoo.py`` rebuilds them.
"""

from __future__ import annotations

from pathlib import Path

from worldsmith.errors import CheckpointError

ZOO = Path(__file__).resolve().parent


def shipped() -> dict[str, Path]:
    """Names of the shipped models and their folders."""
    return {p.name: p for p in sorted(ZOO.iterdir()) if (p / "config.yaml").is_file()}


def resolve(run: str | Path) -> Path:
    """A run directory as given, or the folder of the shipped model of that name; one sentence when neither."""
    path = Path(run)
    if path.is_dir():
        return path
    models = shipped()
    if str(run) in models:
        return models[str(run)]
    names = ", ".join(models) or "none"
    raise CheckpointError(f"{run} is neither a run directory nor a shipped model (shipped: {names}); pass the folder "
                          f"a training run wrote.")  # fmt: skip
