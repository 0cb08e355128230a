"""The CLI: help, info, config --dry-run style printing, and one-sentence errors without tracebacks."""

import importlib
import subprocess
import sys

import pytest

from helpers import run_cli
from worldsmith import entry



def test_help_lists_commands(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for command in ("info", "config", "sim", "data", "demo", "train", "generate", "batch", "curate", "tokenizer",
                    "autoregressive"):
        assert command in out


@pytest.mark.parametrize("command", ["info", "config", "sim", "demo", "data inspect", "train tokenizer",
                                     "train diffusion", "train autoregressive", "generate", "batch", "curate",
                                     "tokenizer encode", "tokenizer decode", "tokenizer eval",
                                     "autoregressive tokenize", "autoregressive score"])
def test_every_command_has_help(capsys, command):
    code, out, _ = run_cli(capsys, *command.split(), "--help")
    assert code == 0 and "Usage" in out and len(out.splitlines()) > 3


def test_info(capsys):
    code, out, _ = run_cli(capsys, "info")
    assert code == 0
    assert "torch" in out and "CUDA:" in out and "threads:" in out and "bounce" in out
    for family in ("tokenizer", "diffusion", "autoregressive"):
        assert family in out


def test_config_prints_resolved_yaml(capsys, tmp_path):
    (tmp_path / "c.yaml").write_text("model:\n  dit:\n    depth: 3\n")
    code, out, _ = run_cli(capsys, "config", "diffusion", "--preset", "small", "--config", str(tmp_path / "c.yaml"),
                           "--set", "model.dit.width=48", "--set", "model.dit.heads=4")
    assert code == 0 and "width: 48" in out and "depth: 3" in out and "heads: 4" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["config", "diffusion", "--set", "model.dit.width=wide"], "error: model.dit.width must be an integer"),
        (["config", "diffusion", "--preset", "huge"], "error: unknown diffusion preset 'huge'"),
        (["config", "baseline"], "error: unknown model family 'baseline'; choose one of: tokenizer, diffusion"),
        (["config", "tokenizer", "--config", "/nonexistent.yaml"], "error: config file not found"),
        (["data", "inspect", "/nonexistent/shards"], "error:"),
        (["sim", "nosuchworld", "--out", "/tmp/x"], "error:"),
    ],
)
def test_user_errors_are_one_line_without_traceback(capsys, args, message):
    code, out, err = run_cli(capsys, *args)
    assert code == 1
    assert err.startswith(message) and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_flag_is_a_usage_error(capsys):
    code, _, err = run_cli(capsys, "sim", "bounce", "--episodes", "zero", "--out", "x")
    assert code == 2 and "Traceback" not in err


def test_ctrl_c_while_the_command_starts_is_one_line(monkeypatch, capsys):
    def interrupted(name):
        raise KeyboardInterrupt  # as if Ctrl-C came while the CLI imported torch

    monkeypatch.setattr(importlib, "import_module", interrupted)
    with pytest.raises(SystemExit) as exit_:
        entry.main()
    monkeypatch.undo()
    assert exit_.value.code == 130 and capsys.readouterr().err == "interrupted while starting; nothing was done.\n"


def test_console_entry_runs_the_cli():
    code = "import sys; from worldsmith.entry import main; sys.argv = ['worldsmith', 'config', 'diffusion', " \
           "'--set', 'train.lr=x']; main()"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.startswith("error: train.lr") and "Traceback" not in run.stderr


def test_entry_point_and_debug_flag():
    exe = [sys.executable, "-m", "worldsmith.cli"]
    quiet = subprocess.run([*exe, "config", "diffusion", "--set", "train.lr=x"], capture_output=True, text=True)
    assert quiet.returncode == 1 and quiet.stderr.startswith("error:") and "Traceback" not in quiet.stderr
    loud = subprocess.run([*exe, "--debug", "config", "diffusion", "--set", "train.lr=x"], capture_output=True, text=True)
    assert loud.returncode != 0 and "Traceback" in loud.stderr
