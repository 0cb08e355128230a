"""The contract every model family keeps, so the CLI, the demo, the benchmarks and the tests loop over families.

A family (``tokenizer``, ``diffusion``, ``autoregressive``, and later the decoder) is a folder with the same rooms::

    <family>/config.py    the model's dataclass configs (+ its sampling settings) and ``PRESETS``, a plain dict
                          {name: () -> model config}, as DiT's ``DiT_models``
    <family>/model.py     the network(s): ``Model(cfg)``, ``Model.from_pretrained(run)`` (worldsmith.weights);
                          knows nothing of training loops, files or devices
    <family>/losses.py    ``loss(model, batch) -> (loss, logs)`` callables or loss modules (a discriminator or a
                          frozen feature net lives here, never in the model)
    <family>/train.py     ``RunConfig`` (sections model / train / data ...) and ``train(cfg, run_dir)`` on the
                          shared Trainer; resume = run the same command again
    <family>/generate.py  ``<Family>Generator.from_run(run)`` and ``generate(request, sampling)``; imports nothing
                          from worldsmith.train
    <family>/cli.py       thin typer commands and the family's :class:`Family` record, ``FAMILY``

``worldsmith.families.FAMILIES`` lists the records. A conditioned variant (actions, camera, views) is not a new
family: it is a config naming its embedders, plugged into the backbone's conditioning slot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import typer

from worldsmith import config as C
from worldsmith.errors import ConfigError
from worldsmith.weights import read_run_config


@dataclass
class GenerationRequest:
    """What to generate, in the terms every family understands (uint8 frames at the I/O boundary)."""

    prompt: str = ""  # what happens in the video ("" = no text)
    video: np.ndarray | None = None  # uint8 (k, H, W, 3): frames to continue (world models) or code (tokenizer)
    frames: int | None = None  # frames in the output, the given ones included; None = the model's default
    seed: int = 0  # the same seed gives the same video
    fps: float | None = None  # frame rate of ``video`` (the output's when the model has none of its own)
    # float (N, A): the action after each frame, from the first given frame on (actions[t] leads from frame t to
    # t + 1), for action-conditioned models; the output then has N + 1 frames unless ``frames`` says fewer
    actions: np.ndarray | None = None
    # float (N, 4, 4): OpenCV camera-to-world pose of each output frame from the first given frame on (any world
    # frame: camera models see poses relative to the first), for camera-controlled models
    camera: np.ndarray | None = None
    intrinsics: np.ndarray | None = None  # float (3, 3): K in the pixels of ``video`` (None: 50-degree vertical fov)
    # multi-view models: the other synchronized views' frames, each uint8 (k, H, W, 3) like ``video`` (the front
    # view), in the rig's order; the output is then every view side by side, (frames, H, V*W, 3)
    views: list[np.ndarray] | None = None
    trajectory: np.ndarray | None = None  # float (T, 4): the ego (x, y, yaw, speed) per output frame (multi-view)


class Generator(Protocol):
    """A trained model ready to generate, loaded from a run directory (or a shipped model's name)."""

    Sampling: type  # the family's dataclass of sampling settings (steps, guidance, temperature ...)
    fps: float | None  # frame rate of its outputs (None: that of the request's video)

    @classmethod
    def from_run(cls, run: str | Path, device: str = "cpu") -> "Generator": ...

    def generate(self, request: GenerationRequest, sampling: Any = None) -> np.ndarray:
        """uint8 (T, H, W, 3): the given frames (if any) followed by the generated ones."""
        ...


class RolloutStepper(Protocol):
    """A generator that also steps an action-conditioned rollout one frame per action (environments, play, the
    planner, ``eval rollouts --one-step``): both world-model families implement it, so everything that steps a
    model takes either. The state's ``repeat(n)`` copies every rollout n times, each copy drawing its own noise
    (a planner's candidates)."""

    size: int  # frame side the model works at
    ct: int  # frames per latent frame: a step's frames (1 for environments and play)
    device: Any
    rollout_context: int  # latent frames a step reads before the new one (at most)

    def start_rollout(self, video: Any, prompts: list[str], sampling: Any = None, seeds: list[int] | None = None,
                      actions: Any = None) -> Any:  # fmt: skip
        """State of B rollouts continuing float video (B, 3, 1 + m * ct, H, W) in [-1, 1] after ``actions``
        (B, m * ct, A) taken between its frames; row i draws its noise from ``seeds[i]`` alone."""
        ...

    def step_rollout(self, state: Any, actions: Any) -> Any:
        """The next ct frames (B, 3, ct, H, W) in [-1, 1] under actions (B, ct, A)."""
        ...

    def planning_sampling(self) -> Any:
        """The sampling settings a planner imagines its candidates with."""
        ...


@dataclass(frozen=True)
class Family:
    name: str
    help: str  # one line for `worldsmith info` and the CLI
    presets: dict[str, Callable[[], Any]]  # config.PRESETS: name -> fresh model config
    default_preset: str
    run_config: type  # train.RunConfig: a dataclass with a ``model`` field (+ train, data ...)
    train: Callable[[Any, Path], dict[str, Any]]  # train(cfg, run_dir) -> summary
    model: type  # the model class a run directory's ``model_class`` names
    generator: type  # implements Generator
    train_command: Callable[..., None]  # the typer command behind `worldsmith train NAME`
    commands: typer.Typer | None = None  # `worldsmith NAME ...`: the family's other commands
    variants: tuple[str, ...] = field(default=())  # conditioned variants (configs), for info and the tests

    def preset(self, name: str) -> Any:
        """A fresh model config for preset ``name``; a ConfigError names the valid ones."""
        if name not in self.presets:
            raise ConfigError(f"unknown {self.name} preset {name!r}; choose one of: {', '.join(self.presets)}.")
        return self.presets[name]()

    def resolve(self, preset: str | None = None, config_yaml: str | Path | None = None,
                overrides: list[str] | tuple[str, ...] = (), flags: dict[str, Any] | None = None) -> Any:  # fmt: skip
        """The run config: preset <- YAML file <- ``--set`` overrides <- command-line flags (e.g. ``--data``), each
        layer merged once and type-checked; flags that are None are left out."""
        cfg = C.resolve(self.run_config(model=self.preset(preset or self.default_preset)), config_yaml, overrides)
        return C.merge(cfg, _drop_none(flags or {}))

    def owns(self, run_dir: str | Path) -> bool:
        """Whether ``run_dir`` holds a model of this family (by the ``model_class`` its config.yaml records)."""
        recorded = str(read_run_config(run_dir).get("model_class", ""))
        return recorded.split(":")[0].startswith(f"worldsmith.{self.name}.")


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _drop_none(v)
            if v:
                out[k] = v
        elif v is not None:
            out[k] = v
    return out
