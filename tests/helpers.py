"""Plain helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import torch

from worldsmith.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``worldsmith ARGS`` in-process: (exit code, stdout, stderr)."""
    code = 0
    try:
        main(list(args))
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def write_audio_only(path: str | Path, seconds: float = 1.0, rate: int = 16000) -> None:
    """An AAC-in-mp4 file with an audio stream and no video stream."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        t = np.arange(int(seconds * rate)) / rate
        wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for i in range(0, len(wave), 1024):
            frame = av.AudioFrame.from_ndarray(wave[None, i : i + 1024], format="fltp", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def fit(model, loss_fn, batch: dict, steps: int, lr: float):
    """``steps`` Adam steps of ``loss_fn(model, batch)`` (overfitting a fixed batch); returns the model."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss, _ = loss_fn(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


class ChatServer:
    """An OpenAI-style /v1/chat/completions server; ``answers`` are returned in turn, requests are recorded."""

    def __init__(self, answers: list[str], status: int = 200, body: bytes | None = None):
        self.answers, self.requests = list(answers), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": data})
                answer = outer.answers[min(len(outer.requests), len(outer.answers)) - 1] if outer.answers else ""
                payload = body if body is not None else json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()  # fmt: skip
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
