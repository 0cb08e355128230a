"""``worldsmith serve`` and ``worldsmith play`` (registered by worldsmith/cli.py)."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Optional

import typer
import uvicorn

from worldsmith.errors import ConfigError
from worldsmith.guard.cli import AllowOption, DenyOption, NoGuardOption
from worldsmith.guard.rails import OFF_WARNING
from worldsmith.serve.app import create_app
from worldsmith.serve.settings import TOKEN_ENV, ServeSettings

DEFAULTS = ServeSettings()
HOST_HELP = "Address to bind. Anything but localhost needs a token (--token or $WORLDSMITH_TOKEN)."


def _free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is in use (another server?); pass --port.") from None
            raise ConfigError(f"cannot bind {host}:{port} ({e.strerror}); pass another --host or --port.") from None


def _run(settings: ServeSettings, port: int) -> None:
    settings.check_exposure()  # before anything else: no port is touched, no model loaded
    if not settings.guardrail:
        typer.echo(OFF_WARNING, err=True)
    _free(settings.host, port)
    app = create_app(settings)  # loads the models before printing the address
    shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    query = f"?token={settings.token}" if settings.token else ""
    typer.echo(f"worldsmith: serving {', '.join(app.state.models)} from {settings.work}")
    typer.echo(f"  play:    http://{shown}:{port}/play{query}")
    typer.echo(f"  gallery: http://{shown}:{port}/gallery{query}")
    typer.echo(f"  API:     http://{shown}:{port}/docs   (Ctrl+C stops the server)")
    uvicorn.run(app, host=settings.host, port=port, log_level="warning", ws_max_size=1 << 20)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help=HOST_HELP),
    port: int = typer.Option(8000, "--port", "-p", min=1, max=65535),
    models: Optional[list[str]] = typer.Option(None, "--models", "-m", help="Models to serve: run folders or "
                                               "shipped names (repeat the flag, or comma-separate). Default: "
                                               "arm-action."),  # fmt: skip
    work: Path = typer.Option(Path("worldsmith-serve"), "--work", help="Folder for uploads and job results."),
    token: Optional[str] = typer.Option(None, "--token", help=f"Require this token on every request (default: "
                                        f"${TOKEN_ENV} when set)."),  # fmt: skip
    cors_origin: Optional[list[str]] = typer.Option(None, "--cors-origin", help="Allow pages of this origin to "
                                                    "call the API (repeatable). Closed by default."),  # fmt: skip
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Generation jobs run at once; "
                                          "default: one per two cores."),  # fmt: skip
    queue_size: Optional[int] = typer.Option(None, "--queue-size", min=0, help="Jobs that may wait; beyond that, "
                                             f"429; default: {DEFAULTS.queue_size}."),  # fmt: skip
    max_sessions: Optional[int] = typer.Option(None, "--max-sessions", min=1, help="Play sessions open at once; "
                                               "default: one per core."),  # fmt: skip
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=2, help="Most frames one job may ask for; "
                                             f"default: {DEFAULTS.max_frames}."),  # fmt: skip
    job_timeout: Optional[float] = typer.Option(None, "--job-timeout", min=1.0, help="Seconds before a job is "
                                                f"stopped; default: {DEFAULTS.job_timeout_s:g}."),  # fmt: skip
    no_guardrail: bool = NoGuardOption,
    allow: Optional[list[str]] = AllowOption,
    deny: Optional[list[str]] = DenyOption,
) -> None:  # fmt: skip
    """Serve world models over HTTP: generation jobs, uploads, play sessions, the play and gallery pages."""
    names = [n.strip() for spec in (models or ["arm-action"]) for n in spec.split(",") if n.strip()]
    limits = {"workers": workers, "queue_size": queue_size, "max_sessions": max_sessions, "max_frames": max_frames,
              "job_timeout_s": job_timeout}  # fmt: skip
    settings = ServeSettings(work=work, models=names, host=host, token=token or os.environ.get(TOKEN_ENV) or None,
                             cors_origins=list(cors_origin or []), guardrail=not no_guardrail,
                             guard_allow=list(allow or []), guard_deny=list(deny or []),
                             **{k: v for k, v in limits.items() if v is not None})  # fmt: skip
    _run(settings, port)


def play(
    model: str = typer.Option("arm-action", "--model", "-m", help="An action model or a camera model (orbit-camera: "
                              "keys move the camera): a run folder or shipped name."),
    port: int = typer.Option(8000, "--port", "-p", min=1, max=65535),
    work: Path = typer.Option(Path("worldsmith-serve"), "--work", help="Folder for uploads and job results."),
) -> None:  # fmt: skip
    """Play a world model in the browser: starts the server on localhost with the shipped arm model and prints
    the page's address. Keys move the arm (or, with --model orbit-camera, the camera); the reality check shows the
    simulator under the same actions."""
    _run(ServeSettings(work=work, models=[model]), port)
