"""The CLI: help, info, config --dry-run style printing, and one-sentence errors without tracebacks."""

import subprocess
import sys

import pytest

from helpers import run_cli
from worldsmith.cli import main



def test_help_lists_commands(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for command in ("info", "config", "sim", "data", "demo"):
        assert command in out


@pytest.mark.parametrize("command", ["info", "config", "sim", "demo", "data inspect"])
def test_every_command_has_help(capsys, command):
    code, out, _ = run_cli(capsys, *command.split(), "--help")
    assert code == 0 and "Usage" in out and len(out.splitlines()) > 3


def test_info(capsys):
    code, out, _ = run_cli(capsys, "info")
    assert code == 0
    assert "torch" in out and "CUDA:" in out and "threads:" in out and "baseline" in out and "bounce" in out


def test_config_prints_resolved_yaml(capsys, tmp_path):
    (tmp_path / "c.yaml").write_text("depth: 3\n")
    code, out, _ = run_cli(capsys, "config", "baseline", "--preset", "small", "--config", str(tmp_path / "c.yaml"),
                           "--set", "width=40")
    assert code == 0 and "width: 40" in out and "depth: 3" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["config", "baseline", "--set", "width=wide"], "error: width must be an integer"),
        (["config", "baseline", "--preset", "huge"], "error: unknown baseline preset 'huge'"),
        (["config", "baseline", "--config", "/nonexistent.yaml"], "error: config file not found"),
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


def test_entry_point_and_debug_flag():
    exe = [sys.executable, "-m", "worldsmith.cli"]
    quiet = subprocess.run([*exe, "config", "baseline", "--set", "width=x"], capture_output=True, text=True)
    assert quiet.returncode == 1 and quiet.stderr.startswith("error:") and "Traceback" not in quiet.stderr
    loud = subprocess.run([*exe, "--debug", "config", "baseline", "--set", "width=x"], capture_output=True, text=True)
    assert loud.returncode != 0 and "Traceback" in loud.stderr
