"""Video curation: raw videos -> split -> filter -> annotate -> deduplicate -> sharded training data.

The contract every stage keeps (the local and the Ray engine run the same stage code):

* ``split.split_source(path, cfg: SplitConfig, clips_dir) -> list[ClipRecord]``: probe and decode one source
  video, find shot boundaries, cut shots to the length limits, write each clip as ``clips_dir/<key>.mp4``
  (atomically; H.264, or stream-copied when the cut falls on keyframes) and return one record per clip. A source
  that cannot be read raises ``VideoError`` (the engine lists it in the report with the reason and goes on).
* ``process.process_clip(rec, cfg) -> ClipRecord``: the per-clip work on a written clip: decode it once, run the
  filters (each stores its score in ``rec.scores``; the first filter that fails sets ``rec.dropped_by`` and
  ``rec.reason``), then for kept clips the annotators (``rec.tags``, ``rec.caption``) and the dedup signature
  (``rec.phash``, ``rec.embedding``).
* ``dedup.deduplicate(records, cfg: DedupConfig) -> list[ClipRecord]``: global; marks duplicates dropped.
* ``shard.write_shards(records, out_dir, cfg: ShardConfig)``: buckets kept clips into
  ``res_<H>/ar_<w>x<h>/frames_<lo>-<hi>/part-*.tar`` + one Parquet manifest of every clip (kept and dropped).
* ``report.write_report(...)``: the HTML report.

Records are plain dataclasses (``record.ClipRecord``) that pickle and round-trip through JSON, so they travel
between worker processes, Ray tasks and the resume journal unchanged.
"""
