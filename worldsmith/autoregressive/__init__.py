"""Autoregressive world model (Cosmos design): a GPT over discrete FSQ video tokens, fast enough for real-time play.

Rooms: config.py (GPTConfig, SamplingConfig, PRESETS), model.py (VideoGPT), kv_cache.py, sampling.py (top-k / top-p),
losses.py (next-token loss), data.py (token sets), train.py, rollout.py (the token loop, streamed decoding),
generate.py (ARGenerator), evaluation.py (rollouts scored against the truth), cli.py.
"""
