"""One set of contract tests that every model family (and every conditioned variant) joins, as diffusers'
``PipelineTesterMixin``: a subclass names the family, the tiny config it trains in seconds on real simulated
clips, and a generation request; the tests below then hold for it.

    class TestDiffusionFamily(FamilyContract):
        name = "diffusion"
        needs = ("cv_tokenizer",)               # session fixtures of conftest.py it trains on
        def config(self, data): ...             # a tiny run config (4 steps, constant lr, checkpoints every 2)
        def request(self, data): ...            # a GenerationRequest
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from helpers import run_cli

from worldsmith import config as C
from worldsmith.families import FAMILIES, family_of
from worldsmith.family import Family, GenerationRequest
from worldsmith.weights import load_tensors

ROOT = Path(__file__).resolve().parents[1]


class FamilyContract:
    name: str  # the family's name in worldsmith.families.FAMILIES
    needs: tuple[str, ...] = ()  # session fixtures (conftest.py) the config needs besides "arm_shards"
    sampling: dict[str, Any] = {}  # sampling settings for the tests' generations
    returns_given_frames: bool = True  # the output starts with the request's frames, unchanged

    def config(self, data: dict[str, Path]) -> Any:
        raise NotImplementedError

    def request(self, data: dict[str, Path]) -> GenerationRequest:
        raise NotImplementedError

    @property
    def family(self) -> Family:
        return FAMILIES[self.name]

    # -- one training run per family, shared by the tests of the class ---------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def data(cls, request) -> dict[str, Path]:
        return {name: request.getfixturevalue(name) for name in ("arm_shards", *cls.needs)}

    @pytest.fixture(scope="class")
    @classmethod
    def trained(cls, data, tmp_path_factory) -> dict[str, Any]:
        run = tmp_path_factory.mktemp(cls.name) / "run"
        cfg = cls().config(data)
        return {"cfg": cfg, "run": run, "summary": FAMILIES[cls.name].train(cfg, run)}

    def generator(self, trained):
        return self.family.generator.from_run(trained["run"])

    def generate(self, trained, data, seed: int = 0) -> np.ndarray:
        gen = self.generator(trained)
        request = self.request(data)
        request.seed = seed
        return gen.generate(request, C.merge(gen.Sampling(), self.sampling))

    # -- the contract -----------------------------------------------------------------------------------------
    def test_training_writes_a_run_of_this_family(self, trained):
        run = trained["run"]
        assert trained["summary"]["steps"] == trained["cfg"].train.steps
        assert (run / "config.yaml").is_file() and (run / "model.safetensors").is_file()
        assert family_of(run) is self.family
        assert [name for name, f in FAMILIES.items() if f.owns(run)] == [self.name]

    def test_generation_gives_uint8_frames_of_the_asked_shape(self, trained, data):
        request, video = self.request(data), self.generate(trained, data)
        frames = request.frames or (len(request.actions) + 1 if request.actions is not None else len(request.video))
        height, width = request.video.shape[1:3] if request.video is not None else video.shape[1:3]
        assert video.dtype == np.uint8 and video.shape == (frames, height, width, 3)
        if self.returns_given_frames and request.video is not None:
            assert np.array_equal(video[: len(request.video)], request.video)

    def test_generation_is_deterministic_for_a_seed(self, trained, data):
        assert np.array_equal(self.generate(trained, data, seed=3), self.generate(trained, data, seed=3))

    def test_save_load_round_trip_is_bit_exact(self, trained, tmp_path):
        model = self.family.model.from_pretrained(trained["run"])
        model.save_pretrained(tmp_path / "copy")
        again = self.family.model.from_pretrained(tmp_path / "copy")
        assert C.to_dict(again.cfg) == C.to_dict(model.cfg)
        mine, theirs = model.state_dict(), again.state_dict()
        assert list(mine) == list(theirs) and all(torch.equal(mine[k], theirs[k]) for k in mine)

    def test_resume_is_bit_exact(self, trained, tmp_path):
        cfg = trained["cfg"]
        half = C.merge(cfg, {"train": {"steps": cfg.train.steps // 2}})
        self.family.train(half, tmp_path / "run")  # stopped halfway (a checkpoint every 2 steps) ...
        resumed = self.family.train(cfg, tmp_path / "run")  # ... and the same command run again
        assert resumed["resumed_from"] == half.train.steps
        whole, again = load_tensors(trained["run"] / "model.safetensors"), load_tensors(tmp_path / "run" / "model.safetensors")
        assert list(whole) == list(again) and all(torch.equal(whole[k], again[k]) for k in whole)

    def test_cli_dry_run_prints_the_resolved_config(self, data, tmp_path, capsys):
        code, out, err = run_cli(capsys, "train", self.name, "--out", str(tmp_path / "r"), "--set", "train.steps=7",
                                 "--dry-run")  # fmt: skip
        assert code == 0, err
        printed = yaml.safe_load(out)
        assert printed["train"]["steps"] == 7 and set(printed) >= {"model", "train", "data"}

    @pytest.mark.parametrize("args, says", [
        (("--set", "model.nope=1"), "unknown config key 'model.nope'"),
        (("--set", "train.lr=fast"), "train.lr must be a number"),
        (("--preset", "huge"), "preset 'huge'"),
        ((), "no training data"),
    ])  # fmt: skip
    def test_cli_errors_are_one_sentence(self, tmp_path, capsys, args, says):
        code, _, err = run_cli(capsys, "train", self.name, "--out", str(tmp_path / "r"), *args)
        assert code == 1 and err.startswith("error: ") and err.count("\n") == 1 and says in err, err

    def test_generate_on_a_folder_that_is_no_run_is_one_sentence(self, tmp_path, capsys):
        code, _, err = run_cli(capsys, "generate", "--model", str(tmp_path), "--out", str(tmp_path / "x.mp4"))
        assert code == 1 and err.count("\n") == 1 and "not a worldsmith run directory" in err, err

    def test_generation_imports_nothing_of_training(self):
        module = self.family.generator.__module__
        probe = (f"import sys, {module}; "
                 f"print(sorted(m for m in sys.modules if m == 'worldsmith.train' or m.startswith('worldsmith.train.')))")
        out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip() == "[]", f"{module} imports training code: {out.stdout.strip()}"
