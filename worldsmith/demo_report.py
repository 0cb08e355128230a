"""The demo's HTML report: data contact sheet, rollout video (truth | prediction | error), metrics, curves.

Plain HTML + inline SVG charts (no JavaScript, no plotting library), so it opens anywhere and diffs cleanly.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from worldsmith.atomic import atomic_write_text
from worldsmith.config import dump_yaml


def svg_lines(series: dict[str, list[float]], *, title: str, xlabel: str, width: int = 520, height: int = 220) -> str:
    """A small line chart of one or more series sharing the x axis (index)."""
    colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"]
    values = [v for s in series.values() for v in s if np.isfinite(v)]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    hi = hi if hi > lo else lo + 1
    n = max(len(s) for s in series.values())
    pad_l, pad_b, pad_t = 48, 28, 22

    def xy(i: int, v: float) -> str:
        x = pad_l + (width - pad_l - 10) * (i / max(n - 1, 1))
        y = pad_t + (height - pad_t - pad_b) * (1 - (v - lo) / (hi - lo))
        return f"{x:.1f},{y:.1f}"

    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" font-size="11">',
             f'<text x="{pad_l}" y="14" font-weight="bold">{html.escape(title)}</text>',
             f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - 10}" y2="{height - pad_b}" stroke="#888"/>',
             f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{height - pad_b}" stroke="#888"/>',
             f'<text x="4" y="{pad_t + 8}">{hi:.3g}</text><text x="4" y="{height - pad_b}">{lo:.3g}</text>',
             f'<text x="{width // 2}" y="{height - 6}">{html.escape(xlabel)}</text>']  # fmt: skip
    for (name, s), color in zip(series.items(), colors):
        pts = " ".join(xy(i, v) for i, v in enumerate(s) if np.isfinite(v))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{pts}"/>')
        k = list(series).index(name)
        parts.append(f'<text x="{width - 150}" y="{pad_t + 14 * k + 4}" fill="{color}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def write_report(
    out: Path, cfg: Any, stats: dict, metrics: dict, panels: list[np.ndarray], run_dir: Path
) -> dict[str, Path]:
    """Write rollouts.mp4, rollouts.png and index.html into ``out``; return the paths of everything to look at."""
    from worldsmith.io.video import contact_sheet, encode_mp4
    from worldsmith.train.progress import read_logs

    video = np.concatenate(panels, axis=1)  # (n, E*H, 3W, 3): one row per held-out episode
    encode_mp4(video, out / "rollouts.mp4", fps=cfg.fps)
    contact_sheet(panels, out / "rollouts.png", max_frames=8, scale=2,
                  labels=[f"episode {i}: truth | prediction | error" for i in range(len(panels))])  # fmt: skip
    logs = [r for r in read_logs(run_dir / "logs.jsonl") if "loss" in r]
    loss_chart = svg_lines({"train loss": [r["loss"] for r in logs]}, title="training loss",
                           xlabel=f"log step (every {cfg.train.log_every} optimizer steps)")  # fmt: skip
    psnr_chart = svg_lines(
        {"baseline model": metrics["model"]["psnr_per_step"], "copy last frame": metrics["copy_last"]["psnr_per_step"]},
        title="rollout PSNR (dB) per predicted frame", xlabel="frames after the context",
    )
    m, c = metrics["model"], metrics["copy_last"]
    rows = "".join(
        f"<tr><td>{name}</td><td>{d['psnr']:.2f}</td><td>{d['ssim']:.3f}</td></tr>"
        for name, d in (("baseline next-frame model", m), ("copy the last frame (floor)", c))
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>worldsmith demo</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}}
img,video{{image-rendering:pixelated;max-width:100%}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px}} pre{{background:#f6f6f6;padding:8px;overflow:auto}}</style></head><body>
<h1>worldsmith demo: a world model of the {html.escape(cfg.world)} world</h1>
<p>{stats.get('clips', '?')} simulated training episodes ({cfg.frames} frames at {cfg.size}x{cfg.size}, {cfg.fps:g} fps)
trained the baseline action-conditioned next-frame model for {cfg.train.steps} steps. On {metrics['episodes']} held-out
episodes it sees the first {metrics['context_frames']} frames and the true actions, and predicts the next
{metrics['rollout_frames']} frames by feeding its own predictions back in.</p>
<h2>Rollouts on held-out episodes</h2>
<p>Each row: simulator ground truth | model prediction | absolute error.</p>
<video src="rollouts.mp4" controls loop autoplay muted width="{min(960, 6 * cfg.size * 3)}"></video>
<p><img src="rollouts.png" alt="rollout contact sheet"></p>
<h2>Metrics (mean over predicted frames)</h2>
<table><tr><th>predictor</th><th>PSNR (dB)</th><th>SSIM</th></tr>{rows}</table>
<p>{psnr_chart}</p>
<h2>Training</h2><p>{loss_chart}</p>
<h2>Training data</h2><p><img src="data_sheet.png" alt="training data contact sheet"></p>
<h2>Config</h2><pre>{html.escape(dump_yaml(cfg))}</pre>
</body></html>"""
    atomic_write_text(out / "index.html", page)
    return {"report": out / "index.html", "rollouts": out / "rollouts.mp4", "sheet": out / "rollouts.png",
            "data": out / "data", "run": run_dir, "metrics": out / "metrics.json"}  # fmt: skip
