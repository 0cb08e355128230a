"""2-process FSDP2 on CPU (gloo) through torchrun: the same run as one process, sharded, saved whole, resumable."""

from __future__ import annotations

from pathlib import Path

import ddp_train_script as script
import pytest
import torch
import torch.distributed as dist
from trainer_toys import ToyNet

from worldsmith.train.checkpoint import read_train_state
from worldsmith.weights import load_pretrained, load_tensors

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="needs torch.distributed with gloo")  # fmt: skip


@pytest.fixture(scope="module")
def fsdp(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fsdp")
    script.launch(out, "fsdp")
    return out


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single")
    for kind in ("plain", "gan"):
        script.train_single(out / kind, kind)
    return out


def test_fsdp_matches_single_process(fsdp, single):
    script.assert_matches_single_process(fsdp / "plain", single / "plain")


def test_fsdp_shards_the_weights_and_checkpoints_them_whole(fsdp):
    run = fsdp / "plain"
    saved = read_train_state(run / "train_state")
    assert saved.state["step"] == 6 and saved.state["world_size"] == 2
    shards = [load_tensors(run / f"rank{r}.safetensors") for r in (0, 1)]
    for name, whole in saved.model.items():
        if name == "scale":  # a buffer: every rank holds it whole
            assert all(torch.equal(s[f"model.{name}"], whole) for s in shards)
            continue
        rows = [s[f"model.{name}"] for s in shards]
        assert [len(r) for r in rows] == [len(c) for c in whole.chunk(2)], name  # each rank holds its half
        assert torch.equal(torch.cat(rows), whole), name
    # the files load into a plain, unsharded model
    raw = load_pretrained(ToyNet, run, ema=False)
    assert all(torch.equal(v, saved.model[k]) for k, v in raw.state_dict().items())
    ema = load_pretrained(ToyNet, run)
    assert all(torch.equal(p, saved.ema[n]) for n, p in ema.named_parameters())


def test_fsdp_hooks_run_on_every_rank_with_the_ema_weights(fsdp, single):
    run = fsdp / "plain"
    expected = sorted(f"eval_rank{r}_step{s}" for r in (0, 1) for s in (2, 4, 6))
    assert sorted(p.name for p in run.glob("eval_rank*")) == expected
    # eval/pred_norm (a forward through the gathered EMA weights) is checked against one process here
    script.assert_matches_single_process(run, single / "plain", files=())


def test_fsdp_trains_a_loss_network_like_one_process_and_resumes_it_exactly(fsdp, single):
    shards = [load_tensors(fsdp / "gan" / f"rank{r}.safetensors") for r in (0, 1)]
    assert [len(s["loss.disc.body.weight"]) for s in shards] == [4, 4]  # the discriminator is sharded too
    script.assert_matches_single_process(fsdp / "gan", single / "gan", script.WEIGHTS + script.LOSS_WEIGHTS)
    script.assert_same_run(fsdp / "gan", fsdp / "gan_straight")
