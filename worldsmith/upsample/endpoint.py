"""The endpoint upsampler: any OpenAI-compatible chat server (vLLM, llama.cpp's server, Ollama, a hosted API).

``POST {base}/chat/completions`` (worldsmith/chat_api.py) with the same system prompt and few-shot turns as the
local model, the seed and the sampling settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from worldsmith.chat_api import chat
from worldsmith.upsample.prompts import messages


@dataclass
class EndpointConfig:
    base_url: str = ""  # e.g. http://127.0.0.1:8000/v1 (the part before /chat/completions)
    model: str = "default"  # the server's model name
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the key (unset: no Authorization header)
    timeout: float = 60.0  # seconds for the whole request
    max_tokens: int = 200
    temperature: float = 0.7


def complete(prompt: str, seed: int, cfg: EndpointConfig) -> str:
    """The server's answer to the upsampling chat for ``prompt``."""
    body = {"model": cfg.model, "messages": messages(prompt), "temperature": cfg.temperature, "seed": seed,
            "max_tokens": cfg.max_tokens, "n": 1}  # fmt: skip
    return chat(cfg.base_url, body, api_key_env=cfg.api_key_env, timeout=cfg.timeout, what="the upsampling endpoint")
