"""2-process DDP training of the toy model on CPU (gloo), launched by tests/test_ddp.py through torchrun:

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_train_script.py RUN_DIR

Each rank takes every other sample of the global batch. The run trains 3 steps, then a second Trainer resumes it
to 6 steps (all ranks load rank 0's checkpoint). Each rank then writes its final weights to
``RUN_DIR/rank{r}.safetensors``, and the eval hook leaves a marker file per call, to check it ran on rank 0 only.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

from trainer_toys import ToyConfig, ToyNet, batches  # noqa: E402

from worldsmith.train import TrainConfig, Trainer, cleanup, init_distributed  # noqa: E402

GLOBAL_BATCH = 8


def make_config(steps: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=GLOBAL_BATCH // 2, lr=1e-2, lr_schedule="constant", grad_accum=2,
                       ema_decay=0.9, log_every=1, ckpt_every=2, eval_every=2, tensorboard=False, progress=False)


def toy_model(seed: int) -> ToyNet:
    torch.manual_seed(seed)
    return ToyNet(ToyConfig(dropout=0.0, flip=False))


def main() -> None:
    run_dir = Path(sys.argv[1])
    info = init_distributed("cpu")
    data = functools.partial(batches, batch_size=GLOBAL_BATCH, noise=0.0, start=info.rank, stride=info.world_size)

    def eval_fn(model: torch.nn.Module, step: int) -> dict[str, float]:
        (run_dir / f"eval_rank{info.rank}_step{step}").touch()
        return {"out_norm": float(model.out.weight.norm())}

    # rank 1 starts from different weights: DDP must broadcast rank 0's
    model = toy_model(seed=info.rank)
    Trainer(model, make_config(3), run_dir, data, model_config=model.cfg, eval_fn=eval_fn).fit()
    model = toy_model(seed=100 + info.rank)  # overwritten by the checkpoint on every rank
    Trainer(model, make_config(6), run_dir, data, model_config=model.cfg, eval_fn=eval_fn).fit()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(run_dir / f"rank{info.rank}.safetensors"))
    cleanup()


if __name__ == "__main__":
    main()
