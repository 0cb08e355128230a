"""Autoregressive world model (Cosmos design): a GPT over discrete FSQ video tokens, fast enough for real-time play.

Public API::

    from worldsmith.autoregressive import VideoGPT, GPTConfig, SamplingConfig, generate_tokens, stream_video
    from worldsmith.autoregressive.pipeline import train, generate_from_run
    from worldsmith.autoregressive.evaluation import score_rollouts
"""

from worldsmith.autoregressive.generate import generate_tokens, stream_video
from worldsmith.autoregressive.gpt import GPTConfig, VideoGPT
from worldsmith.autoregressive.kv_cache import KVCache
from worldsmith.autoregressive.sampling import SamplingConfig, filter_logits, sample_logits

__all__ = ["GPTConfig", "KVCache", "SamplingConfig", "VideoGPT", "filter_logits", "generate_tokens",
           "sample_logits", "stream_video"]  # fmt: skip
