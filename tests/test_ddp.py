"""2-process DDP on CPU (gloo) through torchrun, against a single-process run with the same global batch."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import ddp_train_script as script
import pytest
import torch
import torch.distributed as dist
from trainer_toys import batches

from worldsmith.train import Trainer, read_logs
from worldsmith.train.checkpoint import load_tensors, read_train_state

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_two_process_gloo_ddp_matches_single_process(tmp_path):
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    env |= {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(Path(__file__).with_name("ddp_train_script.py")), str(ddp_dir)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]

    # both ranks hold the same weights, and rank 0 checkpointed exactly them
    rank0, rank1 = (load_tensors(ddp_dir / f"rank{r}.safetensors") for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    saved = read_train_state(ddp_dir / "train_state")
    assert saved.state["step"] == 6 and saved.state["world_size"] == 2 and len(saved.state["ranks"]) == 2
    assert all(torch.equal(saved.model[k], rank0[k]) for k in rank0)
    # the eval hook ran on rank 0 only, every 2 steps, across the resume at step 3
    assert sorted(p.name for p in ddp_dir.glob("eval_rank*")) == [f"eval_rank0_step{s}" for s in (2, 4, 6)]

    # one process, the whole global batch, 6 steps straight
    torch.manual_seed(0)
    model = script.toy_model(seed=0)
    data = functools.partial(batches, batch_size=script.GLOBAL_BATCH, noise=0.0)
    Trainer(model, script.make_config(6), single_dir, data).fit()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(rank0[k], v, rtol=1e-5, atol=1e-6)
    ddp_logs, single_logs = read_logs(ddp_dir / "logs.jsonl"), read_logs(single_dir / "logs.jsonl")
    assert [r["step"] for r in ddp_logs] == list(range(1, 7))
    for a, b in zip(ddp_logs, single_logs, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)  # rank-averaged loss == global-batch loss
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
        assert a["samples_per_s"] > 0
