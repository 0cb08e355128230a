"""Load on the server: 50 concurrent clients on localhost for ~60 s, generation jobs and play sessions together.

Starts ``worldsmith serve`` (its own process, default capacity for the machine: on 2 cores one job worker with 8
waiting places and 2 play sessions) and runs ``--clients`` asyncio clients in this process for ``--seconds``:

* job clients (all but ``--players``): submit an action job (the scripted policy from a held-out start, 8 frames),
  poll it until done, fetch its mp4; on a 429 wait the Retry-After it names, then try again;
* play clients (``--players``): open a play session (429: wait and retry), step it 40 times over the websocket,
  close it, again;
* every client checks each answer: 2xx, or a 429 with a Retry-After and a JSON error. Anything else (a 5xx, a
  malformed 429, a dropped connection, a websocket error message) counts as an error.

It prints request latencies (p50 / p95 by kind), jobs and play steps completed, 429s, errors, and the server's
resident memory sampled every second (start, peak, end). The goal: zero errors besides well-formed 429s, and
bounded memory.

    python benchmarks/serve_load.py               # writes the ``serve_load`` section of benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np
import psutil
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from play import free_port, start_server  # noqa: E402
from results_md import machine, markers, publish  # noqa: E402

PLAY_STEPS = 40


class Tally:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.count: dict[str, int] = defaultdict(int)
        self.errors: list[str] = []

    def check(self, kind: str, response: httpx.Response, t0: float) -> bool:
        """Record a response; True when it is a success, False for a well-formed 429 (an error otherwise)."""
        self.latency[kind].append(time.perf_counter() - t0)
        if response.status_code < 300:
            self.count[f"{kind} ok"] += 1
            return True
        if response.status_code == 429:
            body = response.json()
            if response.headers.get("retry-after", "").isdigit() and isinstance(body.get("error"), str):
                self.count["429"] += 1
                return False
        self.errors.append(f"{kind}: {response.status_code} {response.text[:200]}")
        return False


async def job_client(base: str, starts: list[int], end: float, t: Tally, rng: random.Random) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        while time.monotonic() < end:
            body = {"model": "arm-action", "kind": "action", "start_seed": rng.choice(starts), "policy": "scripted",
                    "task": rng.choice(["reach", "push"]), "frames": 8, "seed": rng.randrange(1000)}  # fmt: skip
            t0 = time.perf_counter()
            try:
                r = await http.post("/api/jobs", json=body)
            except httpx.HTTPError as e:
                t.errors.append(f"submit: {type(e).__name__} {e}")
                continue
            if not t.check("submit", r, t0):
                if r.status_code == 429:
                    await asyncio.sleep(min(float(r.headers["retry-after"]), max(0.0, end - time.monotonic())))
                continue
            job, submitted = r.json(), time.perf_counter()
            while time.monotonic() < end + 120:  # a job accepted before the end is followed to its result
                await asyncio.sleep(0.5)
                t0 = time.perf_counter()
                r = await http.get(f"/api/jobs/{job['id']}")
                if not t.check("status", r, t0):
                    break
                state = r.json()["state"]
                if state == "done":
                    t.latency["job end-to-end"].append(time.perf_counter() - submitted)
                    t0 = time.perf_counter()
                    t.check("result", await http.get(f"/api/jobs/{job['id']}/video"), t0)
                    t.count["jobs done"] += 1
                    break
                if state in ("failed", "cancelled"):
                    t.errors.append(f"job {state}: {r.json()['error']}")
                    break


async def play_client(base: str, starts: list[int], end: float, t: Tally, rng: random.Random) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        while time.monotonic() < end:
            t0 = time.perf_counter()
            r = await http.post("/api/play", json={"model": "arm-action", "seed": rng.choice(starts)})
            if not t.check("open session", r, t0):
                if r.status_code == 429:
                    await asyncio.sleep(min(float(r.headers["retry-after"]), max(0.0, end - time.monotonic())))
                continue
            sid = r.json()["session"]
            try:
                async with connect(f"ws://{base.split('://')[1]}/api/play/{sid}/ws", max_size=2**20) as ws:
                    json.loads(await ws.recv())
                    for i in range(PLAY_STEPS):
                        action = [0.0, rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02), 0.0, 0.0, 0.0, 1.0]
                        t0 = time.perf_counter()
                        await ws.send(json.dumps({"type": "step", "id": i, "action": action}))
                        msg = json.loads(await ws.recv())
                        t.latency["play step"].append(time.perf_counter() - t0)
                        if msg.get("type") != "frame":
                            t.errors.append(f"play: {msg}")
                            break
                        t.count["play steps"] += 1
            except Exception as e:  # a dropped connection is an error of the server
                t.errors.append(f"play websocket: {type(e).__name__} {e}")
            t0 = time.perf_counter()
            t.check("close session", await http.delete(f"/api/play/{sid}"), t0)


async def watch_memory(pid: int, end: float, samples: list[float]) -> None:
    proc = psutil.Process(pid)
    while time.monotonic() < end + 5:
        samples.append(proc.memory_info().rss / 2**20)
        await asyncio.sleep(1.0)


async def run(base: str, pid: int, clients: int, players: int, seconds: float) -> dict:
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        starts = [s["seed"] for s in (await http.get("/api/starts", params={"model": "arm-action"})).json()["starts"]]
    t, rss = Tally(), []
    end = time.monotonic() + seconds
    tasks = [watch_memory(pid, end, rss)]
    for i in range(clients):
        client = play_client if i < players else job_client
        tasks.append(client(base, starts, end, t, random.Random(i)))
    t_start = time.monotonic()
    await asyncio.gather(*tasks)
    wall = time.monotonic() - t_start
    pct = {k: {"n": len(v), "p50_ms": 1000 * float(np.percentile(v, 50)), "p95_ms": 1000 * float(np.percentile(v, 95))}
           for k, v in sorted(t.latency.items())}  # fmt: skip
    return {"clients": clients, "players": players, "seconds": seconds, "wall_s": wall, "counts": dict(t.count),
            "errors": len(t.errors), "error_examples": t.errors[:10], "latency": pct,
            "rss_mb": {"start": rss[0], "peak": max(rss), "end": rss[-1]}}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--players", type=int, default=10, help="of the clients, how many play (the rest submit jobs)")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--json", type=Path)
    p.add_argument("--no-results", action="store_true")
    a = p.parse_args()
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="worldsmith-load-"))
    server = start_server(port, work)
    try:
        results = asyncio.run(run(f"http://127.0.0.1:{port}", server.pid, a.clients, a.players, a.seconds))
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    results |= {"machine": machine(), "cores": os.cpu_count()}
    publish("serve_load", render(results), results, a.json, not a.no_results)


def render(r: dict) -> str:
    begin, end = markers("serve_load")
    c = r["counts"]
    lines = [begin, "## Serving under load (`python benchmarks/serve_load.py`)", "",
             f"{time.strftime('%Y-%m-%d')}, {r['machine']}, {r['cores']} cores: `worldsmith serve` with its defaults "
             f"for the machine (one job worker, 8 waiting places, 2 play sessions) and {r['clients']} concurrent "
             f"clients on localhost for {r['seconds']:.0f} s: {r['clients'] - r['players']} submit action jobs (the "
             f"scripted policy from a held-out start, 8 frames) and poll them; {r['players']} open play sessions and "
             f"step them {PLAY_STEPS} times.", "",
             f"**Errors: {r['errors']}** (anything but a 2xx or a well-formed 429). Refused with 429 + Retry-After: "
             f"{c.get('429', 0)}. Jobs done: {c.get('jobs done', 0)}; play steps: {c.get('play steps', 0)}. Server "
             f"RSS: {r['rss_mb']['start']:.0f} MB at the start, {r['rss_mb']['peak']:.0f} MB peak, "
             f"{r['rss_mb']['end']:.0f} MB at the end.", "",
             "| request | n | p50 | p95 |", "|---|---|---|---|"]  # fmt: skip
    for kind, v in r["latency"].items():
        lines.append(f"| {kind} | {v['n']} | {v['p50_ms']:.0f} ms | {v['p95_ms']:.0f} ms |")
    if r["error_examples"]:
        lines += ["", "Errors seen: " + "; ".join(f"`{e}`" for e in r["error_examples"])]
    lines.append(end)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
