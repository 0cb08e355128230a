"""One client for OpenAI-compatible chat servers (vLLM, llama.cpp's server, Ollama, a hosted API), used by the
prompt upsampler's endpoint and the guardrails' LLM judge.

``chat(base_url, body, ...)`` POSTs ``body`` to ``{base_url}/chat/completions`` and returns
``choices[0].message.content``. The API key comes from an environment variable (no header when it is unset: local
servers need none). Every failure is one sentence naming the server (``what``) and what to do. Standard library
only (httpx is a test dependency). The curation captioner (curate/captions.py) keeps its own client because it
retries with backoff over long batch jobs.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from typing import Any

from worldsmith.errors import WorldsmithError


def chat_url(base_url: str, what: str) -> str:
    base = base_url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise WorldsmithError(f"{what} {base_url!r} is not an http(s) URL; pass e.g. http://127.0.0.1:8000/v1.")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


def chat(base_url: str, body: dict[str, Any], *, api_key_env: str, timeout: float, what: str) -> str:
    """The server's answer (the first choice's message content) to the chat request ``body``."""
    url = chat_url(base_url, what)
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(api_key_env, "") if api_key_env else ""
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, b""
    except (TimeoutError, socket.timeout):
        raise WorldsmithError(f"{what} {url} did not answer within {timeout:g} s; check the server or raise the "
                              f"timeout.") from None  # fmt: skip
    except (urllib.error.URLError, OSError) as e:
        raise WorldsmithError(f"could not reach {what} {url} ({getattr(e, 'reason', e)}); check its URL and that "
                              f"the server is running.") from None  # fmt: skip
    if status in (401, 403):
        raise WorldsmithError(f"{what} {url} refused the request (HTTP {status}); put a valid API key in "
                              f"${api_key_env}.")  # fmt: skip
    if status != 200:
        raise WorldsmithError(f"{what} {url} answered HTTP {status}; check its URL and the model name "
                              f"{body.get('model')!r}.")  # fmt: skip
    try:
        content = json.loads(payload)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str):
        raise WorldsmithError(f"{what} {url} did not return an OpenAI chat completion (choices[0].message.content); "
                              f"check that it is OpenAI-compatible.")  # fmt: skip
    return content
