"""Train the toy model for the exact-resume test, optionally SIGKILLing itself at a chosen moment.

The test runs the uninterrupted reference and the final resume in-process through :func:`train`.

    python tests/train_resume_script.py RUN_DIR [--loss plain|gan]
                                        [--kill after_ckpt|mid_write|between_renames --kill-step K]

``--loss gan`` trains with ``ToyGANLoss`` (a trainable discriminator with its own optimizer, a frozen network).

* ``after_ckpt``: right after the checkpoint of step K is complete;
* ``mid_write``: while writing the checkpoint of step K (weights written into the temporary directory, optimizer
  and state.json not yet);
* ``between_renames``: inside ``atomic_dir`` after ``train_state`` became ``.train_state.old`` and before the new
  directory took its place.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from trainer_toys import ToyConfig, ToyGANLoss, ToyNet, batches, toy_loss  # noqa: E402

from worldsmith import atomic  # noqa: E402
from worldsmith.train import checkpoint as ckpt  # noqa: E402
from worldsmith.train.train_config import TrainConfig  # noqa: E402
from worldsmith.train.trainer import Trainer  # noqa: E402

STEPS = 12


def make_config(steps: int = STEPS) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=4, lr=1e-2, warmup_steps=2, grad_accum=2, grad_clip=0.5,
                       ema_decay=0.9, ema_warmup="simple", log_every=1, ckpt_every=2, tensorboard=False,
                       progress=False)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install_kill(mode: str, kill_step: int) -> None:
    current = {"step": -1}
    save = Trainer.save_checkpoint

    def save_checkpoint(self: Trainer, step: int) -> None:
        current["step"] = step
        save(self, step)
        if mode == "after_ckpt" and step == kill_step:
            _die()

    Trainer.save_checkpoint = save_checkpoint  # type: ignore[method-assign]

    if mode == "mid_write":
        encode = ckpt.encode_optimizer_state

        def encode_then_die(state):  # called after model/ema.safetensors are in the temporary directory
            if current["step"] == kill_step:
                _die()
            return encode(state)

        ckpt.encode_optimizer_state = encode_then_die

    if mode == "between_renames":
        class OsWithDyingReplace:
            def __getattr__(self, name: str):
                return getattr(os, name)

            def replace(self, src, dst) -> None:
                os.replace(src, dst)
                if Path(dst).name == ".train_state.old" and current["step"] == kill_step:
                    _die()

        atomic.os = OsWithDyingReplace()  # type: ignore[assignment]


def train(run_dir: str | Path, loss: str = "plain") -> None:
    """The run under test (also called in-process by the test, with one thread like here)."""
    torch.manual_seed(0)
    model = ToyNet(ToyConfig())
    loss_fn = ToyGANLoss() if loss == "gan" else toy_loss
    Trainer(model, loss_fn, make_config(), run_dir, batches, full_config={"loss": {"name": loss}}).fit()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--loss", choices=["plain", "gan"], default="plain")
    parser.add_argument("--kill", choices=["after_ckpt", "mid_write", "between_renames"])
    parser.add_argument("--kill-step", type=int, default=-1)
    args = parser.parse_args()
    torch.set_num_threads(1)  # same kernels and reduction order in every run
    if args.kill:
        install_kill(args.kill, args.kill_step)
    train(args.run_dir, args.loss)


if __name__ == "__main__":
    main()
