"""The demo's HTML report: data contact sheet, rollout video (truth | generation | error), metrics, curves.

Plain HTML + inline SVG charts (no JavaScript, no plotting library), so it opens anywhere and diffs cleanly.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from worldsmith.atomic import atomic_write_text
from worldsmith.config import dump_yaml
from worldsmith.io.video import contact_sheet, encode_mp4
from worldsmith.train.progress import read_logs


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


def _loss_chart(run_dir: Path, title: str, log_every: int) -> str:
    logs = [r for r in read_logs(run_dir / "logs.jsonl") if "loss" in r]
    return svg_lines({"train loss": [r["loss"] for r in logs]}, title=title,
                     xlabel=f"log step (every {log_every} optimizer steps)")  # fmt: skip


def write_report(out: Path, cfg: Any, stats: dict, metrics: dict, panels: list[np.ndarray]) -> dict[str, Path]:
    """Write rollouts.mp4, rollouts.png and index.html into ``out``; return the paths of everything to look at."""
    video = np.concatenate(panels, axis=1)  # (n, E*H, 3W, 3): one row per held-out episode
    encode_mp4(video, out / "rollouts.mp4", fps=cfg.fps)
    contact_sheet(panels, out / "rollouts.png", max_frames=8, scale=2,
                  labels=[f"episode {i}: truth | generation | error" for i in range(len(panels))])  # fmt: skip
    names = {"model": "diffusion world model (Video2World)", "tokenizer": "tokenizer reconstruction of the truth (ceiling)",
             "copy_first": "copy the first frame (floor)"}  # fmt: skip
    short = {"model": "world model", "tokenizer": "tokenizer (ceiling)", "copy_first": "copy first frame (floor)"}
    psnr_chart = svg_lines({short[k]: metrics[k]["psnr_per_step"] for k in short},
                           title="PSNR (dB) per generated frame", xlabel="frames after the given first frame")  # fmt: skip
    rows = "".join(f"<tr><td>{names[k]}</td><td>{metrics[k]['psnr']:.2f}</td><td>{metrics[k]['ssim']:.3f}</td></tr>"
                   for k in names)  # fmt: skip
    prompts = "".join(f"<li>episode {i}: <i>{html.escape(c)}</i></li>" for i, c in enumerate(metrics["captions"]))
    tok, dit = cfg.tokenizer, cfg.diffusion
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>worldsmith demo</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}}
img,video{{image-rendering:pixelated;max-width:100%}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px}} pre{{background:#f6f6f6;padding:8px;overflow:auto}}</style></head><body>
<h1>worldsmith demo: a world model of the {html.escape(cfg.world)} world</h1>
<p>{stats.get('clips', '?')} simulated training episodes ({cfg.frames} frames at {cfg.size}x{cfg.size}, {cfg.fps:g} fps)
trained a {html.escape(tok.model.name)} causal video tokenizer ({tok.train.steps} steps) and, on its latents, a diffusion
world model ({dit.model.dit.depth} blocks of width {dit.model.dit.width}, {dit.train.steps} steps). On {metrics['episodes']}
held-out episodes the world model is given the first frame and the episode's caption as the prompt, and generates the
next {metrics['generated_frames']} frames (Video2World, {html.escape(metrics['sampler'])} sampler, {metrics['sample_steps']}
steps).</p>
<h2>Generations on held-out episodes</h2>
<p>Each row: simulator ground truth | generation | absolute error.</p>
<video src="rollouts.mp4" controls loop autoplay muted width="{min(720, 3 * cfg.size * 3)}"></video>
<p><img src="rollouts.png" alt="rollout contact sheet"></p>
<p>Prompts:</p><ul>{prompts}</ul>
<h2>Metrics (mean over generated frames)</h2>
<p>The tokenizer's reconstruction of the true frames bounds what any model over its latents can reach; copying the
given first frame is what a model that predicts nothing scores (the scenes are mostly static background).</p>
<table><tr><th>predictor</th><th>PSNR (dB)</th><th>SSIM</th></tr>{rows}</table>
<p>{psnr_chart}</p>
<h2>Training</h2>
<p>{_loss_chart(out / "tokenizer", "tokenizer training loss (L1)", tok.train.log_every)}</p>
<p>{_loss_chart(out / "world_model", "world model training loss (EDM)", dit.train.log_every)}</p>
<h2>Training data</h2><p><img src="data_sheet.png" alt="training data contact sheet"></p>
<h2>Config</h2><pre>{html.escape(dump_yaml(cfg))}</pre>
</body></html>"""
    atomic_write_text(out / "index.html", page)
    return {"report": out / "index.html", "rollouts": out / "rollouts.mp4", "sheet": out / "rollouts.png",
            "data": out / "data", "tokenizer": out / "tokenizer", "world_model": out / "world_model",
            "metrics": out / "metrics.json"}  # fmt: skip
