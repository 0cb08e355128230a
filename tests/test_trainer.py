"""The shared Trainer: schedule, EMA, optimizer groups, accumulation, clipping, checkpoints, logs, hooks, resume."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import train_resume_script
from torch import nn
from trainer_toys import CountingStatefulData, EpochDataset, ToyConfig, ToyGANLoss, ToyNet, batches, toy_loss

from worldsmith.config import from_dict, load_yaml
from worldsmith.errors import CheckpointError, ConfigError, DataError
from worldsmith.train import checkpoint as ckpt
from worldsmith.train.data_stream import DataStream, count_samples, move_to_device
from worldsmith.train.ema import EMA, ema_decay_at
from worldsmith.train.optim import build_optimizer, split_decay
from worldsmith.train.parallel import apply_activation_checkpointing, full_optimizer_state, load_optimizer_state
from worldsmith.train.progress import RunLog, read_logs, truncate_logs
from worldsmith.precision import cpu_has_native_bf16, use_bf16
from worldsmith.train.schedule import lr_at
from worldsmith.train.train_config import TrainConfig
from worldsmith.train.trainer import Trainer, trainable_state_names
from worldsmith.weights import load_pretrained, load_tensors, save_pretrained, save_tensors

SCRIPT = Path(__file__).with_name("train_resume_script.py")
ROOT = Path(__file__).resolve().parents[1]


def quiet(**kw) -> TrainConfig:
    base = dict(steps=4, batch_size=4, lr=1e-2, log_every=1, ckpt_every=2, tensorboard=False, progress=False)
    return TrainConfig(**(base | kw))


def toy(seed: int = 0, **kw) -> ToyNet:
    torch.manual_seed(seed)
    return ToyNet(ToyConfig(**kw))


def losses(run_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_logs(run_dir / "logs.jsonl") if "loss" in r]


# ---------------------------------------------------------------------------------------------------------------
# pure pieces
# ---------------------------------------------------------------------------------------------------------------
def test_lr_schedule_warmup_cosine_and_constant():
    cfg = TrainConfig(steps=12, lr=1.0, warmup_steps=2, min_lr_ratio=0.1)
    assert [lr_at(s, cfg) for s in range(3)] == [0.5, 1.0, 1.0]  # warmup reaches the peak, cosine starts there
    assert lr_at(11, cfg) == pytest.approx(0.1)  # last step: lr * min_lr_ratio
    assert lr_at(2 + 9 / 2, cfg) == pytest.approx(0.55)  # halfway through the decay: the mean of peak and floor
    values = [lr_at(s, cfg) for s in range(2, 12)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    const = TrainConfig(steps=12, lr=0.3, warmup_steps=3, lr_schedule="constant")
    assert [lr_at(s, const) for s in (0, 2, 3, 11)] == pytest.approx([0.1, 0.3, 0.3, 0.3])


def test_ema_decay_schedules_and_update_math():
    assert ema_decay_at(5, TrainConfig(ema_decay=0.99, ema_warmup="none")) == 0.99
    simple = TrainConfig(ema_decay=0.99, ema_warmup="simple")
    assert ema_decay_at(1, simple) == pytest.approx(2 / 11) and ema_decay_at(10_000, simple) == 0.99
    power = TrainConfig(ema_decay=0.999, ema_warmup="power", ema_gamma=6.94)
    assert ema_decay_at(1, power) == 0.0 and ema_decay_at(100, power) == pytest.approx(0.99 ** 7.94)
    model = nn.Linear(3, 2)
    ema = EMA(model, TrainConfig(ema_decay=0.5, ema_warmup="none"))
    w0 = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(step=1)
    torch.testing.assert_close(ema.shadow["weight"], 0.5 * w0 + 0.5 * (w0 + 1.0))
    raw = model.weight.detach().clone()
    with ema.swapped_in():
        torch.testing.assert_close(model.weight.detach(), w0 + 0.5)
    assert torch.equal(model.weight.detach(), raw)  # raw weights restored bit-exactly


def test_weight_decay_skips_norms_biases_embeddings_and_listed_names():
    model = toy()
    model.no_weight_decay = lambda: {"out.weight"}
    decay, keep = split_decay(model)
    assert sorted(decay) == ["blocks.0.fc.weight", "blocks.1.fc.weight", "inp.weight"]
    assert {"cls.weight", "out.weight", "inp.bias", "blocks.0.norm.weight"} <= set(keep)


def test_train_config_validation_and_yaml_round_trip():
    with pytest.raises(ConfigError, match="train.grad_accum must be positive"):
        TrainConfig(grad_accum=0)
    with pytest.raises(ConfigError, match=r"ema_decay must be in \[0, 1\)"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(ConfigError, match="lr_schedule"):
        from_dict(TrainConfig, {"lr_schedule": "linear"}, "train")
    cfg = from_dict(TrainConfig, {"lr": "3e-4", "betas": [0.9, 0.95]}, "train")
    assert cfg.lr == 3e-4 and cfg.betas == (0.9, 0.95)


def test_move_to_device_and_count_samples():
    batch = {"x": torch.zeros(3, 2), "meta": [torch.ones(3), ("a", torch.ones(1))], "n": 7}
    moved = move_to_device(batch, torch.device("meta"))
    assert moved["x"].device.type == "meta" and moved["meta"][1][1].device.type == "meta" and moved["n"] == 7
    assert count_samples(batch) == 3 and count_samples({"s": "text"}) is None


def test_safetensors_round_trip_keeps_tied_weights_and_views():
    emb = torch.randn(5, 3)
    tensors = {"emb": emb, "head": emb, "view": emb[1:3], "t": torch.randn(4, 2).t()}
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"ws_tensors_{os.getpid()}.safetensors"
    try:
        save_tensors(tensors, path)
        back = load_tensors(path)
    finally:
        path.unlink(missing_ok=True)
    assert all(torch.equal(back[k], v) for k, v in tensors.items())
    assert back["head"].data_ptr() == back["emb"].data_ptr()


def test_optimizer_state_encode_decode_round_trip():
    model = toy()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.9))
    toy_loss(model, next(batches(0)))[0].backward()
    opt.step()
    tensors, meta = ckpt.encode_optimizer_state(opt.state_dict())
    json.dumps(meta)  # the non-tensor part is plain JSON
    back = ckpt.decode_optimizer_state(tensors, meta)
    orig = opt.state_dict()
    assert back["param_groups"] == orig["param_groups"]
    for pid, st in orig["state"].items():
        assert all(torch.equal(back["state"][pid][k], v) for k, v in st.items())


def test_name_keyed_optimizer_state_matches_torch_distributed_checkpoint_layout():
    """The FSDP path saves via torch.distributed.checkpoint; both layouts must agree so checkpoints interchange."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    model = toy()
    opt = build_optimizer(model, TrainConfig())
    toy_loss(model, next(batches(0)))[0].backward()
    opt.step()
    mine = full_optimizer_state(model, opt)
    dcp = get_optimizer_state_dict(model, opt, options=StateDictOptions(full_state_dict=True))
    assert mine["param_groups"] == dcp["param_groups"] and mine["state"].keys() == dcp["state"].keys()
    assert all(torch.equal(mine["state"][n][k], v) for n, st in dcp["state"].items() for k, v in st.items())
    other = toy(seed=1)
    opt2 = build_optimizer(other, TrainConfig())
    load_optimizer_state(other, opt2, mine)
    assert str(opt2.state_dict()) == str(opt.state_dict())


# ---------------------------------------------------------------------------------------------------------------
# training behaviour
# ---------------------------------------------------------------------------------------------------------------
def test_grad_accumulation_equals_one_big_batch(tmp_path):
    def halves(epoch):
        for b in batches(epoch, batch_size=8, noise=0.0):
            yield {k: v[:4] for k, v in b.items()}
            yield {k: v[4:] for k, v in b.items()}

    cfg = dict(steps=3, ema_decay=0.0, grad_clip=0.0)
    big = toy(dropout=0.0, flip=False)
    Trainer(big, toy_loss, quiet(**cfg), tmp_path / "big", lambda e: batches(e, batch_size=8, noise=0.0)).fit()
    acc = toy(dropout=0.0, flip=False)
    Trainer(acc, toy_loss, quiet(grad_accum=2, **cfg), tmp_path / "acc", halves).fit()
    for (sa, la), (sb, lb) in zip(losses(tmp_path / "big"), losses(tmp_path / "acc"), strict=True):
        assert sa == sb and la == pytest.approx(lb, rel=1e-5)
    for pa, pb in zip(big.parameters(), acc.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("clip", [0.05, 0.0])
def test_grad_clipping_limits_the_update_norm_and_logs_the_raw_norm(tmp_path, clip):
    model = toy()
    trainer = Trainer(model, toy_loss, quiet(steps=3, grad_clip=clip, ema_decay=0.0), tmp_path, batches)
    seen: list[float] = []
    trainer.optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: seen.append(math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters())))
    )
    trainer.fit()
    logged = [r["grad_norm"] for r in read_logs(tmp_path / "logs.jsonl")]
    assert all(g > 0.05 for g in logged)  # the raw norms exceed the clip
    expected = [clip] * 3 if clip else logged
    assert seen == pytest.approx(expected, rel=1e-4)


def test_activation_checkpointing_gives_same_loss_and_grads():
    plain, ckpt = toy(), toy()
    assert apply_activation_checkpointing(ckpt) == 2
    batch = next(batches(0))
    results = []
    for model in (plain, ckpt):
        torch.manual_seed(7)  # same dropout masks and flips
        loss, _ = toy_loss(model, batch)
        loss.backward()
        results.append((loss.detach(), [p.grad for p in model.parameters()]))
    assert torch.equal(results[0][0], results[1][0])
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1], strict=True))
    assert [b.calls for b in plain.blocks] == [1, 1] and [b.calls for b in ckpt.blocks] == [2, 2]  # recomputed
    with pytest.raises(ConfigError, match="checkpoint_modules"):
        apply_activation_checkpointing(nn.Linear(2, 2))


def test_hooks_see_ema_weights_log_metrics_and_leave_training_untouched(tmp_path):
    calls = []

    def sample_fn(model, step, out_dir):
        calls.append(("sample", step, model.training, torch.is_grad_enabled()))
        torch.randn(100)  # draws from the global RNG must not shift training
        (out_dir / "sample.txt").write_text(str(step))
        return {"n": 1}

    def eval_fn(model, step):
        calls.append(("eval", step, model.training))
        return {"w": float(model.out.weight.sum())}

    cfg = quiet(steps=4, ema_decay=0.5, ema_warmup="none", sample_every=2, eval_every=2)
    trainer = Trainer(toy(), toy_loss, cfg, tmp_path / "hooks", batches, sample_fn=sample_fn, eval_fn=eval_fn)
    trainer.fit()
    Trainer(toy(), toy_loss, cfg, tmp_path / "plain", batches).fit()
    assert losses(tmp_path / "hooks") == losses(tmp_path / "plain")
    assert ("sample", 2, False, False) in calls and ("eval", 4, False) in calls
    assert (tmp_path / "hooks" / "samples" / "step_00000004" / "sample.txt").read_text() == "4"
    last = read_logs(tmp_path / "hooks" / "logs.jsonl")[-1]
    assert last["sample/n"] == 1
    assert last["eval/w"] == pytest.approx(float(trainer.ema.shadow["out.weight"].sum()), rel=1e-6)
    assert trainer.model.training


def test_bf16_autocast_on_request_and_nan_loss_is_a_clear_error(tmp_path):
    Trainer(toy(), toy_loss, quiet(steps=2, precision="bf16"), tmp_path / "bf16", batches).fit()
    Trainer(toy(), toy_loss, quiet(steps=2), tmp_path / "fp32", batches).fit()
    bf16, fp32 = losses(tmp_path / "bf16"), losses(tmp_path / "fp32")
    assert bf16 != fp32 and bf16[0][1] == pytest.approx(fp32[0][1], rel=2e-2)  # rounded, not broken
    def nan_loss(model, batch):
        return torch.tensor(float("nan"), requires_grad=True), {}

    with pytest.raises(FloatingPointError, match="loss is nan at step 1"):
        Trainer(toy(), nan_loss, quiet(steps=2), tmp_path / "nan", batches).fit()


def test_fsdp_in_a_single_process_is_ignored_with_a_note(tmp_path, capsys):
    Trainer(toy(), toy_loss, quiet(steps=2, fsdp=True), tmp_path / "fsdp", batches).fit()
    assert "train.fsdp is ignored in a single process" in capsys.readouterr().out
    Trainer(toy(), toy_loss, quiet(steps=2), tmp_path / "plain", batches).fit()
    assert losses(tmp_path / "fsdp") == losses(tmp_path / "plain")


def test_loss_contract_errors(tmp_path):
    with pytest.raises(TypeError, match=r"loss must be a callable loss\(model, batch\) -> \(loss, logs\), got str"):
        Trainer(toy(), "mse", quiet(), tmp_path, batches)

    def tensor_loss(model, batch):
        return toy_loss(model, batch)[0].expand(2)

    message = r"the loss tensor_loss\(model, batch\) must return \(scalar loss tensor, dict of logs\), not a Tensor"
    with pytest.raises(TypeError, match=message):
        Trainer(toy(), tensor_loss, quiet(), tmp_path, batches).fit()
    with pytest.raises(TypeError, match="not a tuple of 3"):
        Trainer(toy(), lambda model, batch: (*toy_loss(model, batch), 0), quiet(), tmp_path, batches).fit()
    model, loss = toy(), ToyGANLoss()
    loss.net = model  # a loss that keeps the model would train it twice
    with pytest.raises(ValueError, match="the loss ToyGANLoss holds parameters of the model"):
        Trainer(model, loss, quiet(), tmp_path, batches)
    with pytest.raises(DataError, match="no batches"):
        Trainer(toy(), toy_loss, quiet(), tmp_path / "empty", lambda epoch: []).fit()


# ---------------------------------------------------------------------------------------------------------------
# a loss that owns networks: a trainable discriminator and a frozen feature network
# ---------------------------------------------------------------------------------------------------------------
DISC_STATE = {"disc.body.weight", "disc.body.bias", "disc.head.weight", "disc.head.bias", "disc.seen"}


def _param_ids(optimizer: torch.optim.Optimizer) -> set[int]:
    return {id(p) for group in optimizer.param_groups for p in group["params"]}


def test_a_loss_network_trains_with_its_own_optimizer_outside_the_ema_and_the_weights(tmp_path):
    model, loss = toy(), ToyGANLoss()
    disc0 = {k: v.clone() for k, v in loss.disc.state_dict().items()}
    features0 = {k: v.clone() for k, v in loss.features.state_dict().items()}
    trainer = Trainer(model, loss, quiet(steps=3, ema_decay=0.9, warmup_steps=2), tmp_path, batches)
    lrs: list[float] = []
    trainer.loss_optimizer.register_step_pre_hook(lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"]))
    trainer.fit()
    # 1. the discriminator alone has the second optimizer, on the model's schedule; the frozen network has none
    assert _param_ids(trainer.loss_optimizer) == {id(p) for p in loss.disc.parameters()}
    assert _param_ids(trainer.optimizer) == {id(p) for p in model.parameters()}
    assert lrs == [lr_at(s, trainer.cfg) for s in range(3)]
    assert not torch.equal(loss.disc.body.weight, disc0["body.weight"]) and int(loss.disc.seen) == 3 * 8
    assert all(torch.equal(v, loss.features.state_dict()[k]) for k, v in features0.items())
    # 2. the EMA and the weights files hold the model only
    assert set(trainer.ema.shadow) == {n for n, _ in model.named_parameters()}
    assert load_tensors(tmp_path / "model.safetensors").keys() == model.state_dict().keys()
    saved = ckpt.read_train_state(ckpt.find_train_state(tmp_path))
    assert saved.model.keys() == model.state_dict().keys() and saved.ema.keys() == trainer.ema.shadow.keys()
    # 3. train_state holds the discriminator (with its buffer) and its optimizer, keyed by name
    loss_sd, loss_optim = saved.loss
    assert loss_sd.keys() == DISC_STATE and all(torch.equal(v, loss.state_dict()[k]) for k, v in loss_sd.items())
    live = full_optimizer_state(loss, trainer.loss_optimizer)
    assert loss_optim["state"].keys() == live["state"].keys() == DISC_STATE - {"disc.seen"}
    assert all(torch.equal(loss_optim["state"][n][k], v) for n, st in live["state"].items() for k, v in st.items())
    # 4. the frozen network is saved nowhere
    for path in tmp_path.rglob("*.safetensors"):
        assert not [k for k in load_tensors(path) if "features" in k], path
    assert {"disc", "adv", "feature"} <= read_logs(tmp_path / "logs.jsonl")[-1].keys()


def test_trainable_state_is_what_training_changes_and_never_a_frozen_network():
    loss = ToyGANLoss()
    loss.disc.body = nn.utils.parametrizations.spectral_norm(loss.disc.body)  # power-iteration vectors: buffers
    loss.features.append(nn.BatchNorm1d(16).requires_grad_(False))  # frozen, with running statistics
    loss.register_buffer("calls", torch.zeros(()))  # the loss's own counter
    names = trainable_state_names(loss)
    assert {"disc.seen", "disc.body.parametrizations.weight.0._u", "disc.body.parametrizations.weight.original",
            "calls"} <= names  # fmt: skip
    assert not [n for n in names if n.startswith("features.")]
    assert trainable_state_names(loss.features) == set()


def test_resume_refuses_a_loss_whose_networks_changed(tmp_path):
    Trainer(toy(), ToyGANLoss(), quiet(steps=2), tmp_path / "gan", batches).fit()
    with pytest.raises(CheckpointError, match="holds a loss's trainable networks but the loss toy_loss has none"):
        Trainer(toy(), toy_loss, quiet(steps=3), tmp_path / "gan", batches).fit()
    with pytest.raises(CheckpointError, match=r"loss.safetensors do not fit ToyGANLoss \(shape mismatch \['disc"):
        Trainer(toy(), ToyGANLoss(hidden=4), quiet(steps=3), tmp_path / "gan", batches).fit()
    Trainer(toy(), toy_loss, quiet(steps=2), tmp_path / "plain", batches).fit()
    with pytest.raises(CheckpointError, match="no loss.safetensors although the loss ToyGANLoss has trainable"):
        Trainer(toy(), ToyGANLoss(), quiet(steps=3), tmp_path / "plain", batches).fit()


# ---------------------------------------------------------------------------------------------------------------
# checkpoints and resume
# ---------------------------------------------------------------------------------------------------------------
def test_checkpoint_round_trip_and_pretrained_loading(tmp_path):
    model = toy()
    trainer = Trainer(model, toy_loss, quiet(steps=3, ema_decay=0.9), tmp_path, batches,
                      full_config={"data": {"name": "toy"}})
    trainer.fit()
    config = load_yaml(tmp_path / "config.yaml")
    assert config["model_class"] == "trainer_toys:ToyNet" and config["data"] == {"name": "toy"}
    with pytest.raises(ValueError, match=r"full_config\['model'\] differs from model.cfg given to the Trainer"):
        Trainer(toy(), toy_loss, quiet(), tmp_path / "other", batches, full_config={"model": {"hidden": 3}})
    assert config["model"]["hidden"] == 16 and config["train"]["steps"] == 3
    raw = load_pretrained(ToyNet, tmp_path, ema=False)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in raw.state_dict().items())
    ema = load_pretrained(ToyNet, tmp_path)
    assert not ema.training
    for name, p in ema.named_parameters():
        assert torch.equal(p, trainer.ema.shadow[name])
    saved = ckpt.read_train_state(ckpt.find_train_state(tmp_path))
    assert saved.state["step"] == 3 and saved.state["world_size"] == 1
    live = trainer.optimizer.state_dict()["state"]
    names = [n for group in saved.optimizer["param_groups"] for n in group["params"]]
    for i, name in enumerate(names):  # the file is keyed by parameter name, the live optimizer by index
        assert all(torch.equal(saved.optimizer["state"][name][k], live[i][k]) for k in live[i])


def test_save_pretrained_standalone_and_clear_errors(tmp_path):
    model = toy(hidden=12)
    save_pretrained(model, model.cfg, tmp_path / "m")
    back = load_pretrained(ToyNet, tmp_path / "m")
    assert back.cfg == model.cfg
    x = next(batches(0, noise=0.0))
    torch.testing.assert_close(back(x["x"], x["c"]), model.eval()(x["x"], x["c"]))
    with pytest.raises(CheckpointError, match="no config.yaml"):
        load_pretrained(ToyNet, tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="no train_state"):
        load_pretrained(ToyNet, tmp_path / "m", ema=False)
    cfg = load_yaml(tmp_path / "m" / "config.yaml")
    other = toy(hidden=16)
    save_pretrained(other, ToyConfig(hidden=12), tmp_path / "bad")  # weights that do not fit the config
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_pretrained(ToyNet, tmp_path / "bad")
    assert cfg["model"]["hidden"] == 12


def test_resume_refuses_a_changed_config_but_allows_more_steps_and_fresh(tmp_path):
    loss_cfg = {"loss": {"weight": 1.0}}
    Trainer(toy(), toy_loss, quiet(steps=2), tmp_path, batches, full_config=loss_cfg).fit()
    with pytest.raises(ConfigError, match=r"train\.lr \(saved 0\.01, now 0\.02\)"):
        Trainer(toy(), toy_loss, quiet(steps=2, lr=2e-2), tmp_path, batches, full_config=loss_cfg).fit()
    with pytest.raises(ConfigError, match=r"model\.hidden"):
        Trainer(toy(hidden=8), toy_loss, quiet(steps=2), tmp_path, batches, full_config=loss_cfg).fit()
    with pytest.raises(ConfigError, match=r"loss\.weight \(saved 1\.0, now 2\.0\)"):
        Trainer(toy(), toy_loss, quiet(steps=2), tmp_path, batches, full_config={"loss": {"weight": 2.0}}).fit()
    done = Trainer(toy(), toy_loss, quiet(steps=2, log_every=5), tmp_path, batches, full_config=loss_cfg).fit()
    assert done.already_complete and done.step == 2
    more = Trainer(toy(), toy_loss, quiet(steps=3), tmp_path, batches, full_config=loss_cfg).fit()
    assert more.resumed_from == 2 and [s for s, _ in losses(tmp_path)] == [1, 2, 3]
    fresh = Trainer(toy(hidden=8), toy_loss, quiet(steps=1), tmp_path, batches, resume=False).fit()
    assert fresh.resumed_from is None and [s for s, _ in losses(tmp_path)] == [1]


def test_crash_then_resume_truncates_logs_purges_tensorboard_and_matches(tmp_path):
    """In-process crash: the data fails in step 8 (logged up to 7, last checkpoint at 6), then a rerun."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def failing(epoch):
        for i, b in enumerate(batches(epoch)):
            if epoch == 1 and i == 1:  # 6 steps per epoch: the data fails fetching step 8's batch
                raise RuntimeError("disk unplugged")
            yield b

    cfg = quiet(steps=10, ckpt_every=3, tensorboard=True, ema_decay=0.8)
    with pytest.raises(RuntimeError, match="disk unplugged"):
        Trainer(toy(), toy_loss, cfg, tmp_path / "crash", failing).fit()
    assert [s for s, _ in losses(tmp_path / "crash")] == [1, 2, 3, 4, 5, 6, 7]
    assert truncate_logs(tmp_path / "crash" / "logs.jsonl", 7) == 0
    Trainer(toy(seed=5), toy_loss, cfg, tmp_path / "crash", batches).fit()  # resumes from step 6: logs 7 dropped, redone
    Trainer(toy(), toy_loss, cfg, tmp_path / "whole", batches).fit()
    assert losses(tmp_path / "crash") == losses(tmp_path / "whole")
    acc = EventAccumulator(str(tmp_path / "crash" / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss")] == list(range(1, 11))


def test_truncate_logs_drops_later_steps_and_torn_lines(tmp_path):
    path = tmp_path / "logs.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in range(1, 6)) + '{"step": 6, "lo')
    assert truncate_logs(path, 3) == 3
    assert [r["step"] for r in read_logs(path)] == [1, 2, 3]


def test_progress_bar_writes_to_a_tty_without_touching_logs(tmp_path, monkeypatch):
    class FakeTTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    fake = FakeTTY()
    monkeypatch.setattr(sys, "stderr", fake)
    log = RunLog(tmp_path, start_step=0, total_steps=2, tensorboard=False, progress=True)
    for step in (1, 2):
        log.advance()
        log.write({"step": step, "loss": 0.5, "samples_per_s": 100.0})
    log.message("hello")
    log.close()
    assert "2/2" in fake.getvalue() and "loss=0.5" in fake.getvalue() and "hello" in fake.getvalue()
    assert [r["step"] for r in read_logs(tmp_path / "logs.jsonl")] == [1, 2]


# ---------------------------------------------------------------------------------------------------------------
# data positions
# ---------------------------------------------------------------------------------------------------------------
def _take(stream: DataStream, n: int) -> list[list[float]]:
    return [next(stream).flatten().tolist() for _ in range(n)]


def test_data_stream_resumes_a_shuffling_dataloader_exactly():
    def loader():  # shuffle order drawn from the global RNG at each epoch start
        return torch.utils.data.DataLoader(EpochDataset(), batch_size=3, shuffle=True)

    torch.manual_seed(0)
    full = DataStream(loader())
    reference = _take(full, 9)  # 4 batches per epoch: crosses two epoch boundaries
    torch.manual_seed(0)
    first = DataStream(loader())
    _take(first, 5)
    state, rng = json.loads(json.dumps(first.state_dict())), torch.get_rng_state()
    torch.manual_seed(123)  # a new process: different RNG until the checkpoint's is restored
    resumed = DataStream(loader())
    resumed.load_state_dict(state)
    torch.set_rng_state(rng)
    assert _take(resumed, 4) == reference[5:]
    assert resumed.epoch == 2 and reference[8][1] == 2.0  # set_epoch reached the dataset


def test_data_stream_uses_state_dict_instead_of_replaying():
    data = CountingStatefulData()
    stream = DataStream(data)
    assert stream.stateful and _take(stream, 7) == [[1], [2], [3], [4], [5], [1], [2]]
    state = json.loads(json.dumps(stream.state_dict()))
    fresh = CountingStatefulData()
    resumed = DataStream(fresh)
    resumed.load_state_dict(state)
    assert _take(resumed, 4) == [[3], [4], [5], [1]] and fresh.produced == 4 and resumed.epoch == 2


def test_data_stream_detects_data_that_shrank():
    stream = DataStream(lambda epoch: batches(epoch, n_batches=2))
    with pytest.raises(DataError, match="yields only 2 batches"):
        stream.load_state_dict({"epoch": 0, "batch_in_epoch": 5})


# ---------------------------------------------------------------------------------------------------------------
# the key test: kill -9 at three moments, resume, compare with an uninterrupted run
# ---------------------------------------------------------------------------------------------------------------
def _run_script(run_dir: Path, *args: str) -> int:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(SCRIPT), str(run_dir), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(proc.stderr[-3000:])
    return proc.returncode


@contextlib.contextmanager
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # like the script: the same kernels and reduction order
    try:
        yield
    finally:
        torch.set_num_threads(n)


def test_kill_and_resume_equals_an_uninterrupted_run_exactly(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    with one_thread():
        train_resume_script.train(whole)
    # 1. killed right after the checkpoint of step 4
    assert _run_script(killed, "--kill", "after_ckpt", "--kill-step", "4") == -signal.SIGKILL
    # 2. resumes from 4, killed while writing the checkpoint of step 8: step 6's must survive
    assert _run_script(killed, "--kill", "mid_write", "--kill-step", "8") == -signal.SIGKILL
    assert ckpt.read_train_state(ckpt.find_train_state(killed)).state["step"] == 6
    assert list(killed.glob(".train_state.*.tmp"))  # the torn write is left aside, never loaded
    # 3. resumes from 6, killed between atomic_dir's renames at step 10: only .train_state.old (step 8) remains
    assert _run_script(killed, "--kill", "between_renames", "--kill-step", "10") == -signal.SIGKILL
    assert not (killed / "train_state").exists() and (killed / ".train_state.old").is_dir()
    assert [s for s, _ in losses(killed)] == list(range(1, 11))
    # 4. resumes from 8 and finishes (in this process)
    with one_thread():
        train_resume_script.train(killed)
    assert sorted(p.name for p in killed.iterdir()) == ["config.yaml", "logs.jsonl", "model.safetensors", "train_state"]
    assert_same_run(whole, killed, logs=("max_err",), files=("optimizer",))


def assert_same_run(whole: Path, resumed: Path, logs: tuple[str, ...], files: tuple[str, ...]) -> None:
    """The logs (timings aside) and the weight files of two runs are equal bit for bit."""
    keys = ("step", "loss", "lr", "grad_norm", "epoch", *logs)
    records = [[{k: r[k] for k in keys} for r in read_logs(d / "logs.jsonl")] for d in (whole, resumed)]
    assert len(records[0]) == train_resume_script.STEPS and records[0] == records[1]  # ==, not approx
    names = ("model.safetensors", "train_state/model.safetensors", "train_state/ema.safetensors",
             *(f"train_state/{f}.safetensors" for f in files))  # fmt: skip
    for name in names:
        a, b = load_tensors(whole / name), load_tensors(resumed / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_kill_and_resume_with_a_loss_network_equals_an_uninterrupted_run_exactly(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    with one_thread():
        train_resume_script.train(whole, "gan")
    assert _run_script(killed, "--loss", "gan", "--kill", "after_ckpt", "--kill-step", "6") == -signal.SIGKILL
    assert ckpt.read_train_state(ckpt.find_train_state(killed)).state["step"] == 6
    with one_thread():
        train_resume_script.train(killed, "gan")  # resumes from 6
    judged = 12 * 2 * 8  # steps x micro-steps x (4 real + 4 fake): the discriminator's buffer was restored
    assert int(load_tensors(killed / "train_state/loss.safetensors")["disc.seen"]) == judged
    assert_same_run(whole, killed, logs=("disc", "adv", "feature"),
                    files=("optimizer", "loss", "loss_optimizer"))  # fmt: skip


def test_native_bf16_is_read_from_the_cpu_flags():
    assert cpu_has_native_bf16("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n") is True
    assert cpu_has_native_bf16("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n") is False
    assert cpu_has_native_bf16("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n") is True  # Arm
    assert cpu_has_native_bf16("processor\t: 0\n") is None  # no flags: unknown, no note


def test_auto_precision_means_bf16_on_cuda_for_training_and_never_on_a_cpu():
    assert use_bf16("auto", "cuda", training=True) and not use_bf16("auto", "cpu", training=True)
    assert use_bf16("bf16", "cpu", training=True) and not use_bf16("fp32", "cuda")
    with pytest.raises(ConfigError, match="train.precision must be one of auto, fp32, bf16, got 'fp16'"):
        TrainConfig(precision="fp16")
