"""Clips and their storage: ``clip`` (the in-memory clip), ``shards`` (the WebDataset sample format and its
readers), ``shard_writer`` (``ShardWriter``), ``manifest`` (the Parquet manifest, ``list_shards``), ``dataset``
(the streaming torch dataset and its loader) and ``inspect`` (statistics of a shard directory).

Import names from those modules (``from worldsmith.data.clip import Clip``); this package exports nothing itself.
"""
