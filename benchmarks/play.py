"""Play a shipped model through the real page: frames per second and key-to-frame latency.

Starts ``worldsmith serve`` (a separate process, as a user would) and drives the play page in headless Chromium
(Debian's chromium + chromium-driver) on the same machine: a held-out start scene with the reality check on (the
simulator steps beside the model), keys held and released in a random pattern for ``--seconds``. The page itself
measures (window.play.stats()): frames drawn per second, and for each key press the time until the first frame
whose step carried it is drawn. The issue's goal: >= 10 fps and <= 150 ms median latency on 2 CPU cores.

Then, in this process (no browser), how far long play drifts from the simulator: ``--drift-episodes`` held-out
starts, each under its own random key pattern (the page's actions) for ``--drift-steps`` steps, model and simulator
side by side; PSNR against the simulator per 20-step bucket, with the floor of copying the first frame.

    python benchmarks/play.py                      # writes the ``play`` section of benchmarks/RESULTS.md
    python benchmarks/play.py --screenshot docs/play.png
    python benchmarks/play.py --model runs/other --no-results   # another arm model (a run folder), same protocol
    python benchmarks/play.py --model orbit-camera   # a camera model: keys move its camera; section ``play-camera``

A camera model (``orbit-camera``) is played the same way with its camera keys (no task) beside the orbit simulator,
and its drift is measured with ``CameraRollout`` against ``OrbitWorld`` under the same random camera keys.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import machine, markers, publish  # noqa: E402

from worldsmith.envs.evaluate import eval_seeds  # noqa: E402
from worldsmith.envs.world_model import BatchedWorldModelEnv  # noqa: E402
from worldsmith.eval.metrics import psnr  # noqa: E402
from worldsmith.diffusion.stepwise import CameraRollout  # noqa: E402
from worldsmith.serve.models import arm_controls, camera_controls, load_model  # noqa: E402
from worldsmith.worlds.arm import ArmWorld  # noqa: E402
from worldsmith.worlds.base import WorldConfig  # noqa: E402
from worldsmith.worlds.orbit import OrbitWorld, camera_c2w, move_camera, velocity_bounds  # noqa: E402

KEYS = "wasdrfqe"
CAMERA_KEYS = "wasdrfqetg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, work: Path, extra: list[str] | None = None) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("worldsmith")
    cmd = [str(exe), "serve", "--port", str(port), "--work", str(work), *(extra or [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ | {"MUJOCO_GL": "egl"})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stdout.read().decode()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
            return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not answer within 180 s")


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1200,760"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)


def key_actions(rng: np.random.Generator, n: int, camera: bool = False) -> np.ndarray:
    """(n, 7) actions of a random key pattern: a key held 2-7 frames, then 1-4 frames of nothing; gripper open.
    ``camera``: (n, 5) camera velocities from the camera keys instead."""
    moves = camera_controls() if camera else [c for c in arm_controls() if not c.get("toggle")]
    out: list[np.ndarray] = []
    while len(out) < n:
        c = moves[rng.integers(len(moves))]
        a = np.zeros(5 if camera else 7, np.float32)
        if not camera:
            a[6] = 1.0
        idle = a.copy()
        a[c["index"]] = c["value"]
        out += [a] * int(rng.integers(2, 8)) + [idle] * int(rng.integers(1, 5))
    return np.stack(out[:n])


def drift(episodes: int, steps: int, bucket: int = 20, model: str = "arm-action") -> dict:
    """PSNR (dB) of the model's frames against the simulator's under the same random keys, per bucket of steps."""
    gen = load_model(model).generator
    seeds = eval_seeds(episodes)
    env = BatchedWorldModelEnv(gen, None, reader=None)
    first = env.reset(seeds=seeds)[0]
    worlds = [ArmWorld(WorldConfig(size=gen.size)) for _ in seeds]
    for w, seed in zip(worlds, seeds):
        w.reset(seed)
    acts = np.stack([key_actions(np.random.default_rng(1000 + i), steps) for i in range(episodes)])
    out, copy = np.zeros((steps, episodes)), np.zeros((steps, episodes))
    for t in range(steps):
        frames = env.step(acts[:, t])[0]
        for i, w in enumerate(worlds):
            truth = w.step(acts[i, t])
            out[t, i] = float(psnr(frames[i], truth))
            copy[t, i] = float(psnr(first[i], truth))
    for w in worlds:
        w.close()
    return {"episodes": episodes, "steps": steps, "buckets": buckets(out, copy, bucket)}


def camera_drift(episodes: int, steps: int, bucket: int = 20, model: str = "orbit-camera") -> dict:
    """``drift`` for a camera model: each held-out orbit scene under its own random camera keys, the model
    (``CameraRollout``, as the page steps it) against the simulator rendering the same poses."""
    gen = load_model(model).generator
    acts = [key_actions(np.random.default_rng(1000 + i), steps, camera=True) for i in range(episodes)]
    out, copy = np.zeros((steps, episodes)), np.zeros((steps, episodes))
    world = OrbitWorld(WorldConfig(size=gen.size, fps=gen.fps or 10.0, views=1))
    rollout = CameraRollout(gen)
    try:
        for i, seed in enumerate(eval_seeds(episodes)):
            first = world.reset(seed)
            cam = world.cam.copy()
            rollout.reset(first, world.K, camera_c2w(cam))
            for t in range(steps):
                cam = move_camera(cam, acts[i][t], world.cfg.fps, *velocity_bounds())
                frame, truth = rollout.step(camera_c2w(cam)), world.step(acts[i][t])
                out[t, i], copy[t, i] = float(psnr(frame, truth)), float(psnr(first, truth))
    finally:
        world.close()
    return {"episodes": episodes, "steps": steps, "buckets": buckets(out, copy, bucket)}


def buckets(model: np.ndarray, copy: np.ndarray, bucket: int) -> list[dict]:
    steps, episodes = model.shape
    rows = []
    for b in range(0, steps, bucket):
        per_episode = model[b : b + bucket].mean(0)
        rows.append({"steps": f"{b + 1}-{min(b + bucket, steps)}", "model_db": float(per_episode.mean()),
                     "model_sem_db": float(per_episode.std(ddof=1) / np.sqrt(episodes)),
                     "copy_first_db": float(copy[b : b + bucket].mean())})  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="arm-action", help="the arm model played: a shipped name or a run folder")
    p.add_argument("--seconds", type=float, default=40.0, help="measured play time")
    p.add_argument("--seed", type=int, default=0, help="random key pattern seed")
    p.add_argument("--screenshot", type=Path, help="save the page as PNG here, --screenshot-after s into play")
    p.add_argument("--screenshot-after", type=float, default=6.0)
    p.add_argument("--drift-episodes", type=int, default=16)
    p.add_argument("--drift-steps", type=int, default=120)
    p.add_argument("--json", type=Path)
    p.add_argument("--no-results", action="store_true")
    a = p.parse_args()
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="worldsmith-play-"))
    server = start_server(port, work, ["--models", a.model])
    served = a.model if not Path(a.model).is_dir() else Path(a.model).absolute().name  # the server's name for it
    camera = load_model(a.model).camera
    keys = CAMERA_KEYS if camera else KEYS
    driver = browser()
    rng = np.random.default_rng(a.seed)
    try:
        task = "" if camera else "&task=reach"  # a camera model has no task
        driver.get(f"http://127.0.0.1:{port}/play?model={served}&autostart=1&reality=1{task}")
        deadline = time.monotonic() + 60
        while not driver.execute_script("return window.play && window.play.stats().frames >= 10"):
            if time.monotonic() > deadline:
                raise SystemExit("the page did not start playing: " + driver.find_element("id", "error").text)
            time.sleep(0.1)
        driver.execute_script("window.play.resetStats()")
        cpu = psutil.Process(server.pid)
        cpu.cpu_percent()
        start = time.monotonic()
        presses, shot = 0, False
        while time.monotonic() - start < a.seconds:
            key = keys[rng.integers(len(keys))]
            hold, gap = float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.15, 0.5))
            chain = ActionChains(driver).key_down(key).pause(hold).key_up(key).pause(gap)
            if rng.random() < 0.1 and not camera:
                chain = chain.key_down(" ").key_up(" ")
            chain.perform()
            presses += 1
            if a.screenshot and not shot and time.monotonic() - start > a.screenshot_after:
                a.screenshot.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(a.screenshot))
                shot = True
        elapsed = time.monotonic() - start
        stats = driver.execute_script("return window.play.stats()")
        server_cpu = cpu.cpu_percent() / 100
        rss = cpu.memory_info().rss / 2**20
    finally:
        driver.quit()
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    lat = stats["latencies_ms"]
    results = {
        "machine": machine(), "cores": os.cpu_count(), "seconds": elapsed, "frames": stats["frames"],
        "fps": stats["frames"] / elapsed, "key_presses": presses, "latency_samples": len(lat),
        "latency_median_ms": statistics.median(lat), "latency_p95_ms": float(np.percentile(lat, 95)),
        "latency_max_ms": max(lat), "server_compute_median_ms": stats["compute_median_ms"],
        "server_cpu_cores": server_cpu, "server_rss_mb": rss,
    }  # fmt: skip
    results["camera"] = camera
    results["drift"] = (camera_drift if camera else drift)(a.drift_episodes, a.drift_steps, model=a.model)
    name = "play-camera" if camera else "play"
    publish(name, render(results, name), results, a.json, not a.no_results)


def render(r: dict, name: str = "play") -> str:
    begin, end = markers(name)
    ok = r["fps"] >= 10 and r["latency_median_ms"] <= 150
    title = ("## Play: the shipped camera model in the browser (`python benchmarks/play.py --model orbit-camera`)"
             if r.get("camera") else "## Play: the shipped arm model in the browser (`python benchmarks/play.py`)")
    return "\n".join([
        begin, title, "",
        f"{time.strftime('%Y-%m-%d')}, {r['machine']}, {r['cores']} cores shared by the server (`worldsmith serve`, "
        "its own process) and headless Chromium driving the real page; a held-out start, the reality check on (the "
        "simulator steps beside the model), " + ("the camera keys (move, turn, tilt)," if r.get("camera") else
        "the reach task's goal shown,") + " keys held 0.2-0.8 s in a random pattern.", "",
        "| frames per second | key-to-frame latency median | p95 | max | server compute per step | server CPU | server RSS |",
        "|---|---|---|---|---|---|---|",
        f"| **{r['fps']:.1f}** | **{r['latency_median_ms']:.0f} ms** | {r['latency_p95_ms']:.0f} ms | "
        f"{r['latency_max_ms']:.0f} ms | {r['server_compute_median_ms']:.0f} ms | {r['server_cpu_cores']:.2f} cores | "
        f"{r['server_rss_mb']:.0f} MB |", "",
        f"{r['frames']} frames in {r['seconds']:.0f} s, {r['key_presses']} key presses, {r['latency_samples']} latency "
        f"samples. Goal (>= 10 fps, <= 150 ms median): **{'met' if ok else 'not met'}**. A step is one world-model "
        + ("frame (1 Euler step of the DiT, the first frame warped to the new pose and encoded, one tokenizer decode), one "
         "simulator render and two PNG " if r.get("camera") else "frame (3 Euler steps of the DiT, one tokenizer "
         "decode), the state reader, one simulator step and two PNG ") + "encodes; the latency adds the wait for the "
        "step in flight when the key goes down.", "",
        f"**Long play drifts.** {r['drift']['episodes']} held-out starts, each under its own random key pattern "
        f"(keys held 2-7 steps, then 1-4 idle), model and simulator side by side for {r['drift']['steps']} steps; "
        "PSNR against the simulator (mean ± s.e.m. over episodes) and the floor of copying the first frame:", "",
        "| steps | world model | copy first frame |", "|---|---|---|",
        *[f"| {b['steps']} | {b['model_db']:.2f} ± {b['model_sem_db']:.2f} dB | {b['copy_first_db']:.2f} dB |"
          for b in r["drift"]["buckets"]],
        end,
    ])  # fmt: skip


if __name__ == "__main__":
    main()
