"""The Trainer shared by every worldsmith model.

It knows nothing about what it trains. It takes a model and a loss (EDM2's ``loss(net, batch)`` shape)::

    loss(model, batch) -> (loss, logs)     # loss: scalar tensor; logs: {name: float | 0-d tensor}, same keys on
                                           # every rank; averaged between log steps like the loss
    model.checkpoint_modules()             # optional: blocks for activation checkpointing (and FSDP units)
    model.fsdp_modules()                   # optional: FSDP units when they differ from the above
    model.no_weight_decay()                # optional: parameter names kept out of weight decay
    model.cfg                              # the model's config dataclass, saved as config.yaml's ``model:``
    model.pretrained_state(state)          # optional: the part of the state model.safetensors keeps (LoRA: adapters)

A loss that is an ``nn.Module`` may own networks of its own: frozen ones (a perceptual feature net: requires_grad
False) are never saved, and trainable ones (a GAN discriminator) get their own AdamW with the same settings, stay
out of the EMA and of ``model.safetensors``, and are checkpointed in ``train_state/`` so that resume is exact.

One optimizer step = ``grad_accum`` micro-batches, each ``(loss / grad_accum).backward()``; then global-norm
clipping, AdamW with the warmup + cosine learning rate of :func:`lr_at`, and the EMA update. bf16 autocast on CUDA
(``precision: auto``). Device, rank and world size come from :func:`worldsmith.train.runtime.init_runtime` (the
caller may have asked first, to place frozen helpers on the same device). Under ``torchrun`` the model trains
with DDP (gradients synchronised on the last micro-step only) or, with ``fsdp: true``, FSDP2 (GPUs with NCCL or
CPUs with gloo; tests/test_fsdp.py runs it on 2 CPU processes). The Trainer switches the model between train and
eval mode, never the loss: a loss module keeps its frozen networks in eval mode itself.

Resume: run the same command again. If ``run_dir/train_state`` exists the run continues from it, after checking
that the ``model``, ``loss`` and ``train`` config sections match (see ``RESUME_SAFE_KEYS``); on CPU the losses and
weights then equal those of an uninterrupted run bit for bit. ``resume=False`` deletes the run's outputs and starts
over. Data positions are restored as described in :mod:`worldsmith.train.data_stream`.

Hooks run every ``sample_every`` / ``eval_every`` steps with the model in eval mode, under ``torch.no_grad``,
autocast and the EMA weights (the weights ``model.safetensors`` holds), with the training RNG streams untouched:
``sample_fn(model, step, out_dir)`` (may return a dict of metrics) and ``eval_fn(model, step) -> dict``. Their
metrics are logged as ``sample/NAME`` and ``eval/NAME``. They run on rank 0 only, except under FSDP where every rank
must take part in the forward: there they run on all ranks and should write files only when
``worldsmith.train.runtime.is_main()``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from worldsmith.config import dump_yaml, load_yaml, save_yaml, to_dict
from worldsmith.errors import DataError
from worldsmith.train import checkpoint as ckpt
from worldsmith.train import parallel
from worldsmith.train.data_stream import DataStream, count_samples, move_to_device
from worldsmith.train.ema import EMA
from worldsmith.train.optim import build_optimizer
from worldsmith.train.progress import LossMeter, RunLog
from worldsmith.train.rng import capture_rng_state, restore_rng_state, rng_isolated, seed_everything
from worldsmith.precision import cpu_has_native_bf16, use_bf16
from worldsmith.train.runtime import barrier, gather_json, init_runtime
from worldsmith.train.schedule import lr_at
from worldsmith.train.train_config import RESUME_SAFE_KEYS, TrainConfig
from worldsmith.weights import class_path, save_tensors

Loss = Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, Any]]]

STATE_FORMAT = 1


@dataclass
class FitResult:
    step: int  # optimizer steps completed
    resumed_from: int | None  # checkpoint step the run continued from (None for a fresh start)
    already_complete: bool  # the run directory already held a finished run; nothing was done
    last_logs: dict[str, Any] = field(default_factory=dict)  # the last record written to logs.jsonl


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        loss: Loss,
        cfg: TrainConfig,
        run_dir: str | Path,
        data: Iterable[Any] | Callable[[int], Iterable[Any]],
        *,
        full_config: dict[str, Any] | None = None,
        sample_fn: Callable[[nn.Module, int, Path], dict[str, Any] | None] | None = None,
        eval_fn: Callable[[nn.Module, int], dict[str, Any]] | None = None,
        resume: bool = True,
    ):
        if not callable(loss):
            raise TypeError(f"loss must be a callable loss(model, batch) -> (loss, logs), got {type(loss).__name__}.")
        self.cfg, self.run_dir, self.resume = cfg, Path(run_dir), resume
        self.model, self.loss = model, loss
        self.sample_fn, self.eval_fn = sample_fn, eval_fn
        self.data = DataStream(data)
        self.config = self._resolve_config(full_config, getattr(model, "cfg", None))
        self.dist = init_runtime(cfg.device)
        self.device = self.dist.device
        self.bf16 = use_bf16(cfg.precision, self.device, training=True)
        if self.bf16 and self.device.type == "cpu" and cpu_has_native_bf16() is False:
            print("note: train.precision=bf16 on a CPU without native bf16 (no AVX512-BF16/AMX) is emulated and "
                  "slower than fp32; set train.precision=fp32.", flush=True)
        self.fsdp = cfg.fsdp and torch.distributed.is_initialized()
        if cfg.fsdp and not self.fsdp:
            print("note: train.fsdp is ignored in a single process not launched by torchrun.", flush=True)
        model.to(self.device)
        # a loss module's own trainable networks (a discriminator): their own optimizer, no EMA, not in the weights
        self.loss_module = loss if isinstance(loss, nn.Module) else None
        if self.loss_module is not None:
            if {id(p) for p in model.parameters()} & {id(p) for p in self.loss_module.parameters()}:
                raise ValueError(f"the loss {_name(loss)} holds parameters of the model (does it keep a reference to "
                                 f"it?); the Trainer passes the model to the loss as its first argument.")
            self.loss_module.to(self.device)
        has_aux = self.loss_module is not None and any(p.requires_grad for p in self.loss_module.parameters())
        if cfg.activation_checkpointing:
            parallel.apply_activation_checkpointing(model)
        step_module: nn.Module = parallel.LossStep(model, loss)
        if self.fsdp:
            parallel.apply_fsdp(step_module, bf16=self.bf16, device=self.device)
        elif self.dist.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            step_module = DistributedDataParallel(step_module, device_ids=ids)  # broadcasts rank 0's weights
        self.fsdp_root = step_module if self.fsdp else None
        self.step_module = torch.compile(step_module) if cfg.compile else step_module
        # the fused AdamW kernel: one pass over all parameters (~13 % of a small CPU model's step saved)
        fused = self.device.type in ("cuda", "cpu") and not self.fsdp
        self.optimizer = build_optimizer(model, cfg, fused=fused)
        self.loss_optimizer = build_optimizer(self.loss_module, cfg, fused=fused) if has_aux else None
        self.ema = EMA(model, cfg) if cfg.ema_enabled else None
        self.samples_seen = 0
        self._aliases: dict[str, list[str]] = {}  # parameter name -> every state-dict name of that tensor
        first: dict[int, str] = {}
        for name, p in model.named_parameters(remove_duplicate=False):
            self._aliases.setdefault(first.setdefault(id(p), name), []).append(name)

    # -- config ---------------------------------------------------------------------------------------------------
    def _resolve_config(self, full_config: dict[str, Any] | None, model_config: Any) -> dict[str, Any]:
        """config.yaml's content: ``model_class``, ``model`` (model.cfg), ``train`` (cfg), full_config's rest."""
        rest = {k: v for k, v in (full_config or {}).items() if k != "model_class"}
        train = to_dict(self.cfg)
        model = to_dict(model_config) if model_config is not None else rest.get("model")
        for name, mine, source in (("train", train, "the TrainConfig"), ("model", model, "model.cfg")):
            if name in rest and to_dict(rest.pop(name)) != mine:
                raise ValueError(f"full_config[{name!r}] differs from {source} given to the Trainer; pass the same.")
        config = {"model_class": class_path(type(self.model))}
        if model is not None:
            config["model"] = model
        config |= {"train": train, **rest}
        return yaml.safe_load(dump_yaml(config))  # exactly what config.yaml will read back

    # -- run ------------------------------------------------------------------------------------------------------
    def fit(self) -> FitResult:
        """Train to ``cfg.steps`` (resuming if the run directory holds a checkpoint); see the module docstring."""
        main = self.dist.is_main
        start, state_dir = self._prepare()
        if start >= self.cfg.steps:
            if main:
                print(f"run in {self.run_dir} is already complete ({start}/{self.cfg.steps} steps).", flush=True)
            return FitResult(step=start, resumed_from=start, already_complete=True)
        log = RunLog(self.run_dir, start_step=start, total_steps=self.cfg.steps, enabled=main,
                     tensorboard=self.cfg.tensorboard, progress=self.cfg.progress)
        log.message(f"resuming {self.run_dir} from step {start}." if state_dir else f"training {self.run_dir}.")
        last: dict[str, Any] = {}
        meter, self._t0 = LossMeter(), time.perf_counter()
        self.model.train()
        try:
            for step in range(start + 1, self.cfg.steps + 1):
                lr, grad_norm = self._train_step(step, meter)
                log.advance()
                record: dict[str, Any] = {}
                if step % self.cfg.log_every == 0 or step == self.cfg.steps:
                    record, meter = self._train_record(step, lr, grad_norm, meter), LossMeter()
                t_pause = time.perf_counter()
                record |= self._run_hooks(step)
                if record:
                    last = log.write({"step": step, **record})
                if step % self.cfg.ckpt_every == 0 or step == self.cfg.steps:
                    self.save_checkpoint(step)
                meter.paused += time.perf_counter() - t_pause
        finally:
            log.close()
        return FitResult(step=self.cfg.steps, resumed_from=start if state_dir else None, already_complete=False,
                         last_logs=last)

    def _train_record(self, step: int, lr: float, grad_norm: torch.Tensor, meter: LossMeter) -> dict[str, Any]:
        """The logs.jsonl record of a log step: means since the last one (over ranks too), lr, norm, speed."""
        now = time.perf_counter()
        means = meter.means()
        if not math.isfinite(means["loss"]):
            raise FloatingPointError(
                f"the training loss is {means['loss']} at step {step}; lower train.lr or set train.grad_clip, then "
                f"resume from the last checkpoint or start over with --fresh."
            )
        busy = max(now - meter.started - meter.paused, 1e-9)
        return {"step": step, "loss": means.pop("loss"), "lr": lr, "grad_norm": float(grad_norm),
                "samples_per_s": meter.samples * self.dist.world_size / busy, "time": now - self._t0,
                "epoch": self.data.epoch, **means}

    def _prepare(self) -> tuple[int, Path | None]:
        """Check/clean the run directory, write config.yaml, seed, and load the checkpoint; returns (step, dir)."""
        cfg_path = self.run_dir / "config.yaml"
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if not self.resume:
                ckpt.remove_run_outputs(self.run_dir)
            ckpt.remove_stale_temporaries(self.run_dir)
        barrier()
        state_dir = ckpt.find_train_state(self.run_dir)
        if state_dir is not None and cfg_path.is_file():
            ckpt.check_resumable(load_yaml(cfg_path), self.config, {"train": RESUME_SAFE_KEYS})
        if state_dir is not None:
            saved_step = int(ckpt.read_state_json(state_dir)["step"])
            if saved_step >= self.cfg.steps:
                return saved_step, state_dir
        barrier()  # every rank has read what it needs before rank 0 rewrites config.yaml
        if self.dist.is_main:
            save_yaml(self.config, cfg_path)
        seed_everything(self.cfg.seed, self.dist.rank)
        step = self._load(state_dir) if state_dir is not None else 0
        return step, state_dir

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _sync(self, enabled: bool) -> contextlib.AbstractContextManager:
        """No gradient all-reduce on non-final accumulation micro-steps (DDP ``no_sync`` / FSDP2 flag)."""
        if self.fsdp_root is not None:
            parallel.set_gradient_sync(self.fsdp_root, enabled)
        ddp = self.step_module
        ddp = getattr(ddp, "_orig_mod", ddp)  # under torch.compile
        if isinstance(ddp, DistributedDataParallel) and not enabled:
            return ddp.no_sync()
        return contextlib.nullcontext()

    def _train_step(self, step: int, meter: LossMeter) -> tuple[float, torch.Tensor]:
        """One optimizer step (step is 1-based); returns (learning rate, pre-clip gradient norm)."""
        cfg = self.cfg
        lr = lr_at(step - 1, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        for micro in range(cfg.grad_accum):
            batch = move_to_device(next(self.data), self.device)
            samples = count_samples(batch) or cfg.batch_size
            with self._sync(micro == cfg.grad_accum - 1):
                with self._autocast():
                    out = self.step_module(batch)
                loss, logs = _check_loss_output(out, self.loss)
                (loss / cfg.grad_accum).backward()
            meter.add(loss, logs, samples)
            self.samples_seen += samples * self.dist.world_size
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        if self.fsdp and hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()  # a replicated DTensor under FSDP; stays on the GPU (no sync)
        optimizers = [self.optimizer]
        if self.loss_optimizer is not None:
            torch.nn.utils.clip_grad_norm_(self.loss_module.parameters(), max_norm)
            for group in self.loss_optimizer.param_groups:
                group["lr"] = lr
            optimizers.append(self.loss_optimizer)
        for optimizer in optimizers:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(step)
        return lr, grad_norm

    def _run_hooks(self, step: int) -> dict[str, Any]:
        cfg, out = self.cfg, {}
        due_eval = self.eval_fn is not None and cfg.eval_every > 0 and step % cfg.eval_every == 0
        due_sample = self.sample_fn is not None and cfg.sample_every > 0 and step % cfg.sample_every == 0
        if not (due_eval or due_sample) or not (self.dist.is_main or self.fsdp):
            return out
        swap = self.ema.swapped_in() if self.ema is not None else contextlib.nullcontext()
        self.model.eval()
        try:  # EMA weights into the (sharded) parameters first, then gathered for a forward outside the root's
            with rng_isolated(), swap, parallel.gathered(self.fsdp_root), torch.no_grad(), self._autocast():
                if due_eval:
                    out |= {f"eval/{k}": v for k, v in (self.eval_fn(self.model, step) or {}).items()}
                if due_sample:
                    sample_dir = self.run_dir / "samples" / f"step_{step:08d}"
                    sample_dir.mkdir(parents=True, exist_ok=True)
                    out |= {f"sample/{k}": v for k, v in (self.sample_fn(self.model, step, sample_dir) or {}).items()}
        finally:
            self.model.train()
        return out

    # -- checkpoints ----------------------------------------------------------------------------------------------
    def save_checkpoint(self, step: int) -> None:
        """Write ``train_state/`` and ``model.safetensors`` (rank 0 writes; every rank must call this)."""
        model_sd = parallel.full_model_state(self.model, self.fsdp)
        optim_sd = parallel.full_optimizer_state(self.model, self.optimizer, self.fsdp)
        ema_sd = {n: parallel.full_tensor(t) for n, t in self.ema.shadow.items()} if self.ema is not None else None
        aux = None
        if self.loss_optimizer is not None:  # the loss's trainable networks (not its frozen ones)
            keep = trainable_state_names(self.loss_module)
            aux_sd = {n: t for n, t in parallel.full_model_state(self.loss_module, self.fsdp).items() if n in keep}
            aux = (aux_sd, parallel.full_optimizer_state(self.loss_module, self.loss_optimizer, self.fsdp))
        try:
            ranks = gather_json({"rng": capture_rng_state(), "data": self.data.state_dict()})
        except TypeError as e:
            raise DataError(f"the data's state_dict() must hold only JSON-serialisable values ({e}).") from None
        if self.dist.is_main:
            assert ranks is not None
            state = {"format": STATE_FORMAT, "step": step, "world_size": self.dist.world_size,
                     "samples_seen": self.samples_seen, "lr": lr_at(step - 1, self.cfg), "ranks": ranks}
            weights = dict(model_sd)
            for name, t in (ema_sd or {}).items():
                for alias in self._aliases[name]:
                    weights[alias] = t.to(model_sd[alias].dtype)
            if callable(getattr(self.model, "pretrained_state", None)):  # e.g. a LoRA model keeps its adapters only
                weights = self.model.pretrained_state(weights)
            # weights first: a crash before train_state is swapped in only redoes steps that recreate them exactly
            save_tensors(weights, self.run_dir / "model.safetensors")
            ckpt.write_train_state(self.run_dir, model_sd, ema_sd, optim_sd, state, loss=aux)
        barrier()

    def _load(self, state_dir: Path) -> int:
        """Load weights, optimizer, EMA, data position and RNG from ``state_dir`` (every rank); returns the step."""
        files = ckpt.read_train_state(state_dir)
        parallel.load_model_state(self.model, files.model, f"{state_dir}/model.safetensors", self.fsdp)
        parallel.load_optimizer_state(self.model, self.optimizer, files.optimizer, self.fsdp)
        if self.ema is not None:
            if files.ema is None:
                raise ckpt.CheckpointError(
                    f"{state_dir} has no ema.safetensors although EMA is on; start over with --fresh."
                )
            self.ema.load_state_dict({n: parallel.shard_like(t, self.ema.shadow[n]) for n, t in files.ema.items()})
        if (files.loss is None) != (self.loss_optimizer is None):
            problem = (f"has no loss.safetensors although the loss {_name(self.loss)} has trainable networks (e.g. a "
                       f"discriminator)" if files.loss is None else
                       f"holds a loss's trainable networks but the loss {_name(self.loss)} has none")  # fmt: skip
            raise ckpt.CheckpointError(f"{state_dir} {problem}; resume with the loss the run used, or start over "
                                       f"with --fresh.")  # fmt: skip
        if files.loss is not None:
            loss_sd, loss_optim = files.loss
            keep = trainable_state_names(self.loss_module)
            parallel.load_model_state(self.loss_module, loss_sd, f"{state_dir}/loss.safetensors", self.fsdp, keep)
            parallel.load_optimizer_state(self.loss_module, self.loss_optimizer, loss_optim, self.fsdp)
        state, rank = files.state, self.dist.rank
        ranks = state["ranks"]
        if state["world_size"] != self.dist.world_size and self.dist.is_main:
            print(f"note: resuming a {state['world_size']}-process run with {self.dist.world_size} processes; the data "
                  f"order and random streams will differ from an uninterrupted run.", flush=True)
        self.data.load_state_dict(ranks[min(rank, len(ranks) - 1)]["data"])  # may advance the global RNGs...
        if rank < len(ranks):
            restore_rng_state(ranks[rank]["rng"])  # ...so the checkpoint's RNG state is restored after it
        else:
            seed_everything(self.cfg.seed + int(state["step"]), rank)
        self.samples_seen = int(state.get("samples_seen", 0))
        return int(state["step"])


def trainable_state_names(module: nn.Module) -> set[str]:
    """State-dict names of what training changes in a loss module: its trainable parameters, and every buffer
    whose nearest enclosing module with parameters has a trainable one (a discriminator's statistics, a spectral
    norm's vectors). A frozen network (parameters, none trainable) contributes nothing: the loss rebuilds it."""
    trains: dict[str, bool | None] = {}  # module name -> holds a trainable parameter (None: holds no parameters)
    for prefix, sub in module.named_modules():
        flags = [p.requires_grad for p in sub.parameters()]
        trains[prefix] = any(flags) if flags else None
    names = {n for n, p in module.named_parameters() if p.requires_grad}
    for name, _ in module.named_buffers():
        owner = name.rpartition(".")[0]
        while owner and trains[owner] is None:  # a module without parameters: ask the one around it
            owner = owner.rpartition(".")[0]
        if trains[owner]:
            names.add(name)
    return names


def _check_loss_output(out: Any, loss: Loss) -> tuple[torch.Tensor, dict[str, Any]]:
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], torch.Tensor) and out[0].ndim == 0
            and isinstance(out[1], dict)):
        got = f"a tuple of {len(out)}" if isinstance(out, tuple) else f"a {type(out).__name__}"
        raise TypeError(f"the loss {_name(loss)}(model, batch) must return (scalar loss tensor, dict of logs), "
                        f"not {got}.")
    return out


def _name(loss: Loss) -> str:
    return getattr(loss, "__name__", type(loss).__name__)
