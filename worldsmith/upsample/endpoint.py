"""The endpoint upsampler: any OpenAI-compatible chat server (vLLM, llama.cpp's server, Ollama, a hosted API).

``POST {base}/chat/completions`` with the same system prompt and few-shot turns as the local model, the seed and
the sampling settings; the answer is ``choices[0].message.content``. The API key comes from an environment
variable (none is sent when it is unset, as local servers need none). Every failure is one sentence. The standard
library's urllib does the request (httpx is only a test dependency of worldsmith).
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass

from worldsmith.errors import WorldsmithError
from worldsmith.upsample.prompts import messages


@dataclass
class EndpointConfig:
    base_url: str = ""  # e.g. http://127.0.0.1:8000/v1 (the part before /chat/completions)
    model: str = "default"  # the server's model name
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the key (unset: no Authorization header)
    timeout: float = 60.0  # seconds for the whole request
    max_tokens: int = 200
    temperature: float = 0.7


def chat_url(base_url: str) -> str:
    base = base_url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise WorldsmithError(f"the upsampling endpoint {base_url!r} is not an http(s) URL; pass e.g. "
                              f"--endpoint http://127.0.0.1:8000/v1.")  # fmt: skip
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


def complete(prompt: str, seed: int, cfg: EndpointConfig) -> str:
    """The server's answer to the upsampling chat for ``prompt``."""
    url = chat_url(cfg.base_url)
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = {"model": cfg.model, "messages": messages(prompt), "temperature": cfg.temperature, "seed": seed,
            "max_tokens": cfg.max_tokens, "n": 1}  # fmt: skip
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=cfg.timeout) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, b""
    except (TimeoutError, socket.timeout):
        raise WorldsmithError(f"the upsampling endpoint {url} did not answer within {cfg.timeout:g} s; check the "
                              f"server or raise the timeout.") from None  # fmt: skip
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise WorldsmithError(f"could not reach the upsampling endpoint {url} ({reason}); check --endpoint and that "
                              f"the server is running.") from None  # fmt: skip
    if status in (401, 403):
        raise WorldsmithError(f"the upsampling endpoint {url} refused the request (HTTP {status}); put a valid API "
                              f"key in ${cfg.api_key_env}.")  # fmt: skip
    if status != 200:
        raise WorldsmithError(f"the upsampling endpoint {url} answered HTTP {status}; check its URL and the model "
                              f"name {cfg.model!r}.")  # fmt: skip
    try:
        content = json.loads(payload)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str):
        raise WorldsmithError(f"the upsampling endpoint {url} did not return an OpenAI chat completion "
                              f"(choices[0].message.content); check that it is OpenAI-compatible.")  # fmt: skip
    return content
