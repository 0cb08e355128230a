"""Clips, WebDataset shards, the Parquet manifest and the streaming torch dataset.

Only ``Clip`` is imported eagerly; the other names load their module (PyAV, pyarrow, torch) on first use, so
code that only builds clips stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from worldsmith.data.clip import Clip

_LAZY = {
    "worldsmith.data.shards": ("ShardWriter", "ReadStats", "iter_shard", "iter_samples", "decode_clip", "encode_clip"),
    "worldsmith.data.manifest": ("list_shards", "read_manifest", "read_manifest_rows", "rebuild_manifest"),
    "worldsmith.data.dataset": ("DatasetConfig", "ClipDataset", "ClipLoader", "collate", "make_loader"),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}

__all__ = ["Clip", *_MODULE_OF]


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        return getattr(importlib.import_module(_MODULE_OF[name]), name)
    raise AttributeError(f"module 'worldsmith.data' has no attribute {name!r}")
