"""Clips, WebDataset shards, the Parquet manifest and the streaming torch dataset."""

from worldsmith.data.clip import Clip

__all__ = ["Clip"]
