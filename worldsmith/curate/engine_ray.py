"""The Ray engine (``--engine ray``): the same per-item tasks as the local engine, on Ray Data.

    ray.data.from_items(sources + unprocessed clips)   one row per item, payload as JSON text
        .flat_map(split)      a source row -> its "source" row (records for the journal) + one row per clip
        .map(process)         a clip row -> the processed clip (filters, annotations, dedup signature)
        .iter_rows()          streamed back to the driver, which journals every row as it arrives

Dedup, shards, manifest and report stay on the driver (``pipeline.py``), so both engines write the same outputs.
Rows are plain JSON strings so nothing depends on Arrow's view of nested records. Without ``ray_address`` a
local Ray is started with ``workers`` CPUs (and shut down after); with one (``auto``, ``ray://head:10001``) the
run joins that cluster, whose nodes need worldsmith installed and OUT on a shared filesystem (clips are files).
Clips already processed by an earlier (killed) run are not processed again; their sources are re-split (same
keys) so the journal stays complete.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any

from tqdm import tqdm

from worldsmith.curate.config import CurateConfig
from worldsmith.curate.journal import Driver
from worldsmith.curate.record import ClipRecord
from worldsmith.curate.sources import Source
from worldsmith.curate.tasks import process_task, split_task
from worldsmith.errors import ConfigError


def _split_fn(split_cfg: Any, work: str, done: frozenset[str]):
    def split(row: dict[str, Any]) -> list[dict[str, Any]]:
        if row["kind"] != "source":
            return [row]  # a clip split by an earlier run: straight to processing
        src = Source.from_json(json.loads(row["payload"]))
        result = split_task(src, split_cfg, work)
        records = result["records"]
        result = {**result, "records": [r.to_json() for r in records]}
        out = [{"kind": "source", "payload": json.dumps({"source": src.to_json(), "result": result})}]
        out += [{"kind": "clip", "payload": json.dumps(r.to_json())} for r in records if r.kept and r.key not in done]
        return out

    return split


def _process_fn(filters: Any, annotate: Any, dedup: Any):
    def process(row: dict[str, Any]) -> dict[str, Any]:
        if row["kind"] != "clip":
            return row
        rec, seconds = process_task(ClipRecord.from_json(json.loads(row["payload"])), filters, annotate, dedup)
        return {"kind": "processed", "payload": json.dumps({"record": rec.to_json(), "seconds": seconds})}

    return process


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, with one sentence, on a ``host:port`` nobody listens on (Ray itself retries for minutes)."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"cannot reach the Ray cluster at {address} ({e.strerror or e}); check --ray-address, "
                          "or leave it out to start a local Ray.") from None


def _start(cfg: CurateConfig) -> bool:
    """Connect to (or start) Ray; True when this call started it (and must shut it down)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'ray[data]' (or use --engine local).") from None
    if ray.is_initialized():
        return False
    if cfg.ray_address:
        _check_reachable(cfg.ray_address)
        try:
            ray.init(address=cfg.ray_address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot connect to the Ray cluster at {cfg.ray_address} ({e}); check --ray-address.") from None
    else:
        ray.init(num_cpus=cfg.num_workers, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False, configure_logging=True)  # fmt: skip
    return True


def run_ray(sources: list[Source], clips: list[ClipRecord], cfg: CurateConfig, work: Path, driver: Driver) -> None:
    """Split ``sources`` and process ``clips`` plus the clips the splits yield on Ray Data, journaling each row."""
    started = _start(cfg)
    import ray

    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours below count the same items with the local engine's names
        ctx.verbose_progress = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-dataset INFO lines between our bars
        by_id = {s.id: s for s in sources}
        items = [{"kind": "source", "payload": json.dumps(s.to_json())} for s in sources]
        items += [{"kind": "clip", "payload": json.dumps(r.to_json())} for r in clips]
        done = frozenset(driver.journal.state.clips)
        ds = (
            ray.data.from_items(items, override_num_blocks=max(1, len(items)))
            .flat_map(_split_fn(cfg.split, str(work.resolve()), done))
            .map(_process_fn(cfg.filters, cfg.annotate, cfg.dedup))
        )
        split_bar = tqdm(total=len(sources), desc="split  ", unit="source", disable=not cfg.progress)
        clip_bar = tqdm(total=len(clips), desc="process", unit="clip", disable=not cfg.progress)
        try:
            for row in ds.iter_rows():
                payload = json.loads(row["payload"])
                if row["kind"] == "source":
                    result = payload["result"]
                    result["records"] = [ClipRecord.from_json(r) for r in result["records"]]
                    src = by_id.get(payload["source"]["id"]) or Source.from_json(payload["source"])
                    clip_bar.total += len(driver.source_finished(src, result))
                    clip_bar.refresh()
                    split_bar.update(1)
                elif row["kind"] == "processed":
                    driver.clip_finished(ClipRecord.from_json(payload["record"]), payload["seconds"])
                    clip_bar.update(1)
        finally:
            split_bar.close()
            clip_bar.close()
    finally:
        if started:
            ray.shutdown()
