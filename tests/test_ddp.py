"""2-process DDP on CPU (gloo) through torchrun, against a single-process run with the same global batch."""

from __future__ import annotations

from pathlib import Path

import ddp_train_script as script
import pytest
import torch
import torch.distributed as dist

from worldsmith.train.checkpoint import read_train_state
from worldsmith.weights import load_tensors

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="needs torch.distributed with gloo")  # fmt: skip


@pytest.fixture(scope="module")
def ddp(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    script.launch(out, "ddp")
    return out


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single")
    for kind in ("plain", "gan"):
        script.train_single(out / kind, kind)
    return out


def test_two_process_gloo_ddp_matches_single_process(ddp, single):
    run = ddp / "plain"
    # both ranks hold the same weights, and rank 0 checkpointed exactly them
    rank0, rank1 = (load_tensors(run / f"rank{r}.safetensors") for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    saved = read_train_state(run / "train_state")
    assert saved.state["step"] == 6 and saved.state["world_size"] == 2 and len(saved.state["ranks"]) == 2
    assert all(torch.equal(saved.model[k], rank0[f"model.{k}"]) for k in saved.model)
    # the eval hook ran on rank 0 only, every 2 steps, across the resume at step 3
    assert sorted(p.name for p in run.glob("eval_rank*")) == [f"eval_rank0_step{s}" for s in (2, 4, 6)]
    # rank-averaged losses == the global batch's, and the same weights as one process with the whole batch
    script.assert_matches_single_process(run, single / "plain")


def test_ddp_trains_a_loss_network_like_one_process_and_resumes_it_exactly(ddp, single):
    rank0, rank1 = (load_tensors(ddp / "gan" / f"rank{r}.safetensors") for r in (0, 1))
    assert any(k.startswith("loss.disc.") for k in rank0) and all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    script.assert_matches_single_process(ddp / "gan", single / "gan", script.WEIGHTS + script.LOSS_WEIGHTS)
    script.assert_same_run(ddp / "gan", ddp / "gan_straight")
