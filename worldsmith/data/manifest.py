"""The shard directory: its Parquet manifest, its writer lock, and resolving where shards are.

A shard directory holds ``{prefix}-{index:06d}.tar`` shards plus ``manifest.parquet``: one row per clip, in shard
order, so that statistics, filtering and dataset sizes never need to open a tar. Columns:

  ``key`` str, ``shard`` str (path relative to the manifest's directory, POSIX separators), ``caption`` str,
  ``fps`` float64, ``num_frames`` int64, ``height`` int64, ``width`` int64, ``duration`` float64 (seconds),
  ``num_views`` int64 (all views, the main view included), ``array_names`` list<str>, ``arrays`` str (JSON
  ``{name: shape}``), ``bytes`` int64 (the sample's member bytes, tar headers aside), then one ``meta_<field>``
  column per scalar field of the clip's ``meta`` (str, int, float or bool; other values stay only in the JSON).

A ``meta_`` column whose values mix types across clips is stored as strings (``int`` + ``float`` becomes
``float64``). Rows are built from the clip's JSON header (see ``worldsmith.data.shards``), so the manifest can
always be rebuilt from the shards alone (``rebuild_manifest``). The manifest is written atomically (temp file +
rename). ``lock_directory`` takes the advisory lock that keeps a second writer out of a directory.

``list_shards`` turns what a user types into the list of shards to read: a directory (its ``*.tar`` files,
sorted; without any, the shards its manifest lists, else those of its sub-folders), a glob (``data/*/part-*.tar``),
a single ``.tar`` file or a manifest (the shards it lists).

The output folder of ``worldsmith curate`` is accepted wherever shards are: its ``manifest.parquet`` lists every
candidate clip (a ``kept`` column, ``shard`` relative to the folder, empty for dropped clips; see
``worldsmith.curate.shard``) and its kept clips sit in bucket sub-folders that are shard directories.
``list_shards`` gives the shards of its kept clips and ``read_manifest`` the rows of those shards in the columns
above (from the buckets' manifests, ``shard`` relative to the curate folder).
"""

from __future__ import annotations

import glob as globlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from worldsmith.atomic import atomic_open
from worldsmith.data.shards import iter_samples
from worldsmith.errors import DataError

try:  # advisory lock against two writers in one directory; absent on Windows
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

MANIFEST_NAME = "manifest.parquet"
SHARD_SUFFIX = ".tar"
LOCK_NAME = ".shardwriter.lock"

COLUMNS: dict[str, pa.DataType] = {
    "key": pa.string(),
    "shard": pa.string(),
    "caption": pa.string(),
    "fps": pa.float64(),
    "num_frames": pa.int64(),
    "height": pa.int64(),
    "width": pa.int64(),
    "duration": pa.float64(),
    "num_views": pa.int64(),
    "array_names": pa.list_(pa.string()),
    "arrays": pa.string(),
    "bytes": pa.int64(),
}
META_PREFIX = "meta_"
CURATE_KEPT = "kept"  # the column that marks the manifest of a `worldsmith curate` output


def manifest_row(header: dict[str, Any], shard: str, nbytes: int) -> dict[str, Any]:
    """One manifest row from a clip's JSON header (``shard_writer.clip_header``), its shard path and its byte size."""
    arrays = header.get("arrays", {})
    row: dict[str, Any] = {
        "key": header["key"],
        "shard": shard,
        "caption": header.get("caption", ""),
        "fps": float(header["fps"]),
        "num_frames": int(header["num_frames"]),
        "height": int(header["height"]),
        "width": int(header["width"]),
        "duration": int(header["num_frames"]) / float(header["fps"]),
        "num_views": int(header.get("num_views", 1)),
        "array_names": sorted(arrays),
        "arrays": json.dumps({name: spec["shape"] for name, spec in sorted(arrays.items())}),
        "bytes": int(nbytes),
    }
    for field, value in header.get("meta", {}).items():
        if isinstance(value, (str, int, float, bool)):
            row[META_PREFIX + field] = value
    return row


def _meta_column(values: list[Any]) -> pa.Array:
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bool}:
        return pa.array(values, pa.bool_())
    if kinds and kinds <= {int}:
        return pa.array(values, pa.int64())
    if kinds and kinds <= {int, float}:
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.array([None if v is None else str(v) for v in values], pa.string())


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The manifest table of ``rows`` (fixed columns first, then ``meta_*`` columns sorted by name)."""
    for row in rows:
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise DataError(f"manifest row for clip {row.get('key')!r} lacks columns {missing}.")
    columns = {name: pa.array([r[name] for r in rows], dtype) for name, dtype in COLUMNS.items()}
    meta_names = sorted({c for r in rows for c in r if c.startswith(META_PREFIX)})
    for name in meta_names:
        columns[name] = _meta_column([r.get(name) for r in rows])
    return pa.table(columns)


def write_manifest(path: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` atomically as a Parquet manifest at ``path``; returns the path."""
    path = Path(path)
    table = rows_to_table(rows)
    with atomic_open(path, "wb") as f:
        pq.write_table(table, f)
    return path


def index_shard(path: Path, root: Path) -> list[dict[str, Any]]:
    """Manifest rows of a complete shard, built from its JSON headers only (videos are not read)."""
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    samples = iter_samples(path, strict=True, read=lambda ext: False)
    return [manifest_row(s["__header__"], rel, s["__size__"]) for s in samples]


def unique_keys(rows: list[dict[str, Any]], where: str | os.PathLike) -> set[str]:
    """The set of keys of ``rows``; raises ``DataError`` when a key repeats."""
    repeated = [k for k, n in Counter(r["key"] for r in rows).items() if n > 1]
    if repeated:
        raise DataError(f"keys {repeated[:3]} appear more than once in {where}; keys must be unique per directory.")
    return {r["key"] for r in rows}


def lock_directory(directory: Path) -> IO | None:
    """Take the directory's writer lock (released when the handle is closed or the process dies)."""
    handle = open(directory / LOCK_NAME, "a")
    if fcntl is not None:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise DataError(f"another ShardWriter is writing to {directory}; wait for it or write elsewhere.") from None
    return handle


def rebuild_manifest(directory: str | os.PathLike) -> Path:
    """Rewrite ``directory/manifest.parquet`` from the JSON headers of all its shards."""
    directory = Path(directory)
    handle = lock_directory(directory) if directory.is_dir() else None
    try:
        rows = [row for shard in list_shards(directory) for row in index_shard(shard, directory)]
        unique_keys(rows, directory)
        return write_manifest(directory / MANIFEST_NAME, rows)
    finally:
        if handle is not None:
            handle.close()


def manifest_path(path: str | os.PathLike) -> Path:
    """``path`` itself if it is a ``.parquet`` file, else ``path / manifest.parquet``."""
    path = Path(path)
    return path if path.suffix == ".parquet" else path / MANIFEST_NAME


def _read_table(file: Path, columns: list[str] | None = None) -> pa.Table:
    if not file.is_file():
        raise DataError(f"no manifest at {file}: write shards with ShardWriter, or run rebuild_manifest on the folder.")
    try:
        names = pq.read_schema(file).names
        return pq.read_table(file, columns=None if columns is None else [c for c in columns if c in names])
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"manifest {file} is unreadable ({e}); rebuild it with rebuild_manifest.") from e


def is_curate_manifest(table: pa.Table) -> bool:
    """Whether ``table`` is the manifest of a ``worldsmith curate`` output (every candidate clip, kept or not)."""
    return CURATE_KEPT in table.column_names and "shard" in table.column_names


def _kept_shards(file: Path, table: pa.Table) -> list[Path]:
    """The existing shards a manifest lists, unique and in manifest order (a curate manifest: its kept clips')."""
    names = table.column("shard").to_pylist()
    if is_curate_manifest(table):
        names = [n for n, kept in zip(names, table.column(CURATE_KEPT).to_pylist(), strict=True) if kept and n]
    shards = [file.parent / name for name in dict.fromkeys(names)]
    missing = [str(s) for s in shards if not s.is_file()]
    if missing:
        raise DataError(f"manifest {file} lists shards that do not exist: {missing[:3]}; restore them or rebuild.")
    return shards


def _curated_table(file: Path, table: pa.Table) -> pa.Table:
    """The shard-manifest rows of the kept clips of a curate manifest, read from its buckets' own manifests (or
    from the shards' JSON headers where a bucket has none), ``shard`` relative to the curate folder."""
    rows: list[dict[str, Any]] = []
    by_bucket: dict[Path, set[str]] = {}
    for shard in _kept_shards(file, table):
        by_bucket.setdefault(shard.parent, set()).add(shard.name)
    for bucket, names in by_bucket.items():
        prefix = os.path.relpath(bucket, file.parent).replace(os.sep, "/")
        if (bucket / MANIFEST_NAME).is_file():
            listed = [r for r in read_manifest_rows(bucket) if r["shard"] in names]
        else:
            listed = [r for name in sorted(names) for r in index_shard(bucket / name, bucket)]
        rows += [{**r, "shard": f"{prefix}/{r['shard']}"} for r in listed]
    return rows_to_table(rows)


def read_manifest(path: str | os.PathLike) -> pa.Table:
    """The manifest table of a shard directory or of a ``.parquet`` file (a curate output: its kept clips)."""
    file = manifest_path(path)
    table = _read_table(file)
    if is_curate_manifest(table):
        return _curated_table(file, table)
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(f"manifest {file} lacks columns {missing}; rebuild it with rebuild_manifest.")
    return table


def read_manifest_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The manifest as a list of row dicts (``meta_*`` fields a clip does not have are dropped)."""
    rows = read_manifest(path).to_pylist()
    for row in rows:
        for name in [c for c, v in row.items() if c.startswith(META_PREFIX) and v is None]:
            del row[name]
    return rows


def _manifest_shards(file: Path) -> list[Path]:
    table = _read_table(file, ["shard", CURATE_KEPT])
    if not is_curate_manifest(table):
        table = read_manifest(file)  # checks the columns
    return _kept_shards(file, table)


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def list_shards(spec: str | os.PathLike) -> list[Path]:
    """Resolve a directory, glob, ``.tar`` file or manifest into a non-empty list of shard paths (sorted, or in
    manifest order)."""
    text = str(spec)
    if any(ch in text for ch in "*?["):
        shards = sorted(Path(p) for p in globlib.glob(text, recursive=True) if p.endswith(SHARD_SUFFIX))
        if not shards:
            raise DataError(f"no .tar shards match {text!r}; check the pattern.")
        return shards
    path = Path(text)
    if not path.exists():
        raise DataError(f"{path} does not exist: give a shard directory, a .tar shard, a glob or a manifest.")
    if path.is_dir():
        shards = sorted(p for p in path.glob("*" + SHARD_SUFFIX) if p.is_file() and not p.name.startswith("."))
        if not shards and (path / MANIFEST_NAME).is_file():  # e.g. a curate output: shards in bucket folders
            shards = _manifest_shards(path / MANIFEST_NAME)
        if not shards:  # a folder of shard folders
            nested = path.rglob("*" + SHARD_SUFFIX)
            shards = sorted(p for p in nested if p.is_file() and not _is_hidden(p, path))
        if not shards:
            raise DataError(f"directory {path} holds no .tar shards; write some with ShardWriter or point elsewhere.")
        return shards
    if path.suffix == ".parquet":
        shards = _manifest_shards(path)
        if not shards:
            raise DataError(f"manifest {path} lists no shards.")
        return shards
    if path.suffix == SHARD_SUFFIX:
        return [path]
    raise DataError(f"{path} is neither a directory, a .tar shard nor a .parquet manifest.")
