"""Plain helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

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
