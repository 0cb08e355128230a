"""The demo's HTML report: the two futures of each scene (truth | model per branch), metrics, per-step curves.

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


NAMES = {"model": "action-conditioned world model", "no_action": "the same model, actions zeroed (floor)",
         "no_state": "the same model without the robot's recorded state (no commanded fingertip)",
         "copy_first": "copy the first frame (floor)", "tokenizer": "tokenizer reconstruction of the truth (ceiling)"}
SHORT = {"model": "world model", "no_action": "actions zeroed", "no_state": "no robot state",
         "copy_first": "copy first frame", "tokenizer": "ceiling"}


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None or not np.isfinite(value) else format(value, fmt)


def write_report(out: Path, cfg: Any, stats: dict, metrics: dict, truth: np.ndarray, model: np.ndarray) -> dict[str, Path]:
    """Write futures.mp4, futures.png and index.html into ``out``; ``truth`` and ``model`` are uint8
    (N, T, H, W, 3) with the two branches of each scene next to each other (clips 2s and 2s + 1)."""
    rows = []  # per scene: truth A | model A | truth B | model B
    for s in range(0, len(truth) - 1, 2):
        rows.append(np.concatenate([truth[s], model[s], truth[s + 1], model[s + 1]], axis=2))  # (T, H, 4W, 3)
    encode_mp4(np.concatenate(rows, axis=1), out / "futures.mp4", fps=cfg.fps)
    sheet, labels = [], []
    for s in range(0, min(len(truth) - 1, 6), 2):  # the first three scenes, one row per stream
        sheet += [truth[s], model[s], truth[s + 1], model[s + 1]]
        labels += [f"scene {s // 2}: {name}" for name in ("truth A", "model A", "truth B", "model B")]
    contact_sheet(sheet, out / "futures.png", max_frames=8, scale=2, labels=labels)
    present = [k for k in NAMES if k in metrics]
    table = "".join(
        f"<tr><td>{NAMES[k]}</td><td>{metrics[k]['psnr']:.2f} ± {metrics[k]['psnr_sem']:.2f}</td>"
        f"<td>{metrics[k]['ssim']:.3f}</td><td>{metrics[k]['fd']:.1f}</td>"
        f"<td>{_cell(metrics[k].get('gripper_error_px'), '.2f')}</td><td>{_cell(metrics[k].get('object_error_px'), '.2f')}</td></tr>"
        for k in present)  # fmt: skip
    psnr_chart = svg_lines({SHORT[k]: metrics[k]["psnr_per_step"] for k in present},
                           title="PSNR (dB) per generated frame", xlabel="frames after the given first frame")  # fmt: skip
    grip = {SHORT[k]: metrics[k]["gripper_error_px_per_step"] for k in present if metrics[k].get("gripper_error_px_per_step")}
    grip_chart = svg_lines(grip, title="gripper position error (px) per frame", xlabel="frames after the first") if grip else ""
    disc = metrics.get("action_discrimination")
    disc_text = "" if disc is None else (
        f"<p><b>Action discrimination: {100 * disc:.0f}%</b> of {metrics['discrimination_pairs']} rollouts are closer "
        f"to the truth of their own actions than to the truth of the other branch's (50% = the actions are ignored).</p>")
    prompts = "".join(f"<li>scene {i}: <i>{html.escape(c)}</i></li>" for i, c in enumerate(metrics["captions"]))
    sampling = metrics["sampling"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>worldsmith demo</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}}
img,video{{image-rendering:pixelated;max-width:100%}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px}} pre{{background:#f6f6f6;padding:8px;overflow:auto}}</style></head><body>
<h1>worldsmith demo: what happens if the robot does X?</h1>
<p>{len(truth) // 2} arm-world scenes simulated from seeds no model was trained on, each played twice by the scripted
policy with independent noise: the same first frame, two action sequences (A and B). From the first frame alone, the
shipped world model <code>{html.escape(metrics['model_name'])}</code> predicts the next {metrics['frames']} frames
under each sequence, one frame per action ({sampling['sampler']} sampler, {sampling['steps']} steps per frame).</p>
<h2>Two futures of each scene</h2>
<p>Each row: simulator truth A | model A | truth B | model B.</p>
<video src="futures.mp4" controls loop autoplay muted width="{min(960, 4 * cfg.size * 3)}"></video>
<p><img src="futures.png" alt="contact sheet of the futures"></p>
<h2>Scores against the simulator (mean over {metrics['episodes']} rollouts and {metrics['frames']} frames, ± standard error)</h2>
<p>Gripper and object errors are the distances (pixels at {cfg.size}x{cfg.size}) between the positions the state
reader <code>{html.escape(cfg.reader or 'none')}</code> reads from the generated frame and the simulator's true
positions. The floors are what predicting nothing scores; the ceiling is what any model over the tokenizer's latents
can reach.</p>
<table><tr><th>predictor</th><th>PSNR (dB)</th><th>SSIM</th><th>FD</th><th>gripper px</th><th>objects px</th></tr>{table}</table>
{disc_text}
<p>{psnr_chart}</p><p>{grip_chart}</p>
<h2>Held-out data</h2><p><img src="data_sheet.png" alt="held-out data contact sheet"></p>
<p>Captions:</p><ul>{prompts}</ul>
<h2>Config</h2><pre>{html.escape(dump_yaml(cfg))}</pre>
</body></html>"""
    atomic_write_text(out / "index.html", page)
    return {"report": out / "index.html", "futures": out / "futures.mp4", "sheet": out / "futures.png",
            "data": out / "data", "metrics": out / "metrics.json"}  # fmt: skip
