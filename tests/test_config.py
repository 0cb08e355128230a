"""Typed configs: presets, YAML, --set overrides, errors, saving."""

from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from worldsmith import config as C
from worldsmith.errors import ConfigError
from worldsmith.families import FAMILIES


@dataclass
class Inner:
    depth: int = 2
    levels: tuple[int, ...] = (8, 8, 8)
    kind: Literal["cv", "dv"] = "cv"
    dropout: Optional[float] = None


@dataclass
class Run:
    model: Inner = field(default_factory=Inner)
    lr: float = 1e-3
    name: str = "run"
    flags: list[str] = field(default_factory=list)


def test_overrides_are_typed_and_nested():
    cfg = C.resolve(Run(), overrides=["model.depth=4", "lr=3e-4", "model.levels=[5, 5]", "model.kind=dv",
                                      "model.dropout=0.1", "flags=[a, b]", "name=123"])
    assert cfg == Run(Inner(4, (5, 5), "dv", 0.1), 3e-4, "123", ["a", "b"])
    assert C.resolve(Run(), overrides=["model.dropout=null"]).model.dropout is None


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.depth=abc", "model.depth must be an integer"),
        ("model.depth=1.5", "model.depth must be an integer"),
        ("model.kind=zz", "choose one of: 'cv', 'dv'"),
        ("model.nope=1", "unknown config key 'model.nope'; valid keys here: depth, dropout, kind, levels"),
        ("lr", "must look like key.subkey=value"),
        ("lr=fast", "lr must be a number"),
        ("model=3", "model must be a mapping"),
        ("model.levels=7", "model.levels must be a list"),
    ],
)
def test_override_errors_are_one_clear_sentence(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        C.resolve(Run(), overrides=[override])


def test_yaml_then_overrides_and_round_trip(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("model:\n  depth: 6\nlr: 2.0e-4\n")
    cfg = C.resolve(Run(), path, ["lr=1e-5"])
    assert cfg.model.depth == 6 and cfg.lr == 1e-5 and cfg.model.levels == (8, 8, 8)
    C.save_yaml(cfg, tmp_path / "out" / "config.yaml")
    assert C.from_dict(Run, C.load_yaml(tmp_path / "out" / "config.yaml")) == cfg
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_bad_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        C.load_yaml(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        C.load_yaml(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        C.load_yaml(tmp_path / "list.yaml")


def test_presets_are_fresh_objects_and_unknown_ones_are_named():
    family = FAMILIES["diffusion"]
    a, b = family.preset("tiny"), family.preset("tiny")
    assert a == b and a is not b  # fresh object each time
    with pytest.raises(ConfigError, match="unknown diffusion preset 'huge'; choose one of: tiny"):
        family.preset("huge")


def test_dataclass_validation_becomes_config_error():
    with pytest.raises(ConfigError, match="model.dit.width"):
        C.resolve(FAMILIES["diffusion"].preset("tiny"), overrides=["dit.width=7"])
