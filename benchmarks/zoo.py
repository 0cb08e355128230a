"""Publish trained runs as shipped models (worldsmith/zoo/<name>/), each < 20 MB with its model card.

For every model: ``config.yaml`` (paths to other runs replaced by the shipped names of those models),
``model.safetensors`` (the run's weights, stored as float16: half the size, and float32 again when loaded),
``generation.json`` where the family has one, and ``MODEL_CARD.md`` (what it is, data, the command that reproduces
it, metrics, licence). The cards' metrics come from the JSON reports the benchmark scripts wrote.

    python benchmarks/zoo.py --work runs/foundation
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from worldsmith.atomic import atomic_write_text
from worldsmith.weights import load_tensors, save_tensors

ZOO = Path(__file__).resolve().parents[1] / "worldsmith" / "zoo"
LIMIT = 20_000_000  # bytes per shipped model
LICENCE = "Apache-2.0, like worldsmith; trained only on video simulated by worldsmith's own MuJoCo worlds."


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("runs/foundation"))
    return p.parse_args()


def rename_paths(value, names: dict[str, str]):
    """Replace run paths (as strings) by the shipped names of those runs, recursively."""
    if isinstance(value, dict):
        return {k: rename_paths(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [rename_paths(v, names) for v in value]
    if isinstance(value, str) and value in names:
        return names[value]
    return value


def publish(run: Path, name: str, names: dict[str, str], card: str) -> Path:
    dest = ZOO / name
    dest.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config = {k: v for k, v in rename_paths(config, names).items() if k in ("model_class", "model", "data", "tokenizer")}
    for key in ("shards", "tokens", "eval_shards"):  # where it was trained: not needed to load it
        (config.get("data") or {}).pop(key, None)
    atomic_write_text(dest / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    state = {k: v.half() if v.is_floating_point() else v for k, v in load_tensors(run / "model.safetensors").items()}
    save_tensors(state, dest / "model.safetensors")
    if (run / "generation.json").is_file():
        info = rename_paths(json.loads((run / "generation.json").read_text()), names)
        atomic_write_text(dest / "generation.json", json.dumps(info, indent=2))
    atomic_write_text(dest / "MODEL_CARD.md", card)
    size = sum(p.stat().st_size for p in dest.iterdir())
    if size > LIMIT:
        raise SystemExit(f"{name} is {size / 1e6:.1f} MB, over the {LIMIT / 1e6:.0f} MB a shipped model may take.")
    print(f"{name}: {size / 1e6:.1f} MB in {dest}")
    return dest


def params(run: Path) -> int:
    return sum(t.numel() for t in load_tensors(run / "model.safetensors").values() if t.is_floating_point())


def main() -> None:
    a = parse()
    w = a.work.resolve()
    cards = json.loads((w / "cards.json").read_text())  # written by the benchmark scripts: {name: {run, card}}
    names = {str(Path(entry["run"]).resolve()): name for name, entry in cards.items()}
    names |= {str(Path(entry["run"])): name for name, entry in cards.items()}
    for name, entry in cards.items():
        run = Path(entry["run"])
        card = entry["card"].replace("{params}", f"{params(run) / 1e6:.2f}M")
        publish(run, name, names, card + f"\n\n## Licence\n\n{LICENCE}\n")


if __name__ == "__main__":
    main()
