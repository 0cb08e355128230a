"""An optional LLM safety judge behind any OpenAI-compatible chat endpoint (a local llama.cpp or vLLM server, or a
hosted one). Off by default: worldsmith's offline pre-guard is the blocklist and the classifier. When it is set and
does not answer, the prompt is refused with one sentence (a configured check that cannot run never passes silently).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

from worldsmith.errors import WorldsmithError
from worldsmith.guard.verdict import CATEGORIES, Verdict

SYSTEM = ("You are a content-safety judge for a video generator used by robotics and self-driving engineers. "
          "Decide whether the user's video prompt asks for unsafe content in one of these categories: "
          + "; ".join(f"{k} ({v})" for k, v in CATEGORIES.items())
          + ". Ordinary robotics, driving and physics language is safe even when it uses words like cut, shoot, "
          "kill (an engine), strip (a wire) or crash (a test). Answer with JSON only: "
          '{"unsafe": true|false, "category": "<one of the categories or null>", "reason": "<one sentence>"}.')


class JudgeUnavailable(WorldsmithError):
    """The configured LLM judge did not answer."""


@dataclass
class JudgeConfig:
    url: str  # the endpoint's base URL, e.g. http://localhost:8080/v1 (POST {url}/chat/completions)
    model: str = "default"
    api_key_env: str = "OPENAI_API_KEY"  # the environment variable holding the key (unset: no key sent)
    timeout: float = 10.0


def judge(text: str, cfg: JudgeConfig) -> Verdict:
    body = {"model": cfg.model, "temperature": 0, "max_tokens": 120,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]}  # fmt: skip
    headers = {"Content-Type": "application/json"}
    if os.environ.get(cfg.api_key_env):
        headers["Authorization"] = f"Bearer {os.environ[cfg.api_key_env]}"
    req = urllib.request.Request(cfg.url.rstrip("/") + "/chat/completions", json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(req, timeout=cfg.timeout) as resp:
            answer = json.loads(resp.read())["choices"][0]["message"]["content"]
    except (urllib.error.URLError, TimeoutError, OSError, KeyError, IndexError, json.JSONDecodeError) as e:
        raise JudgeUnavailable(f"the LLM safety judge at {cfg.url} did not answer ({e}); check the endpoint or run "
                               f"without the judge.") from None  # fmt: skip
    found = re.search(r"\{.*\}", answer, re.S)
    try:
        parsed = json.loads(found.group()) if found else {}
    except json.JSONDecodeError:
        parsed = {}
    if "unsafe" not in parsed:
        raise JudgeUnavailable(f"the LLM safety judge at {cfg.url} did not answer in the JSON it was asked for; "
                               f"use a model that follows instructions.")  # fmt: skip
    if not parsed["unsafe"]:
        return Verdict(True, reason="the LLM judge found nothing unsafe.", source="llm_judge")
    category = parsed.get("category") if parsed.get("category") in CATEGORIES else "illegal"
    reason = str(parsed.get("reason") or CATEGORIES[category]).strip().rstrip(".")
    return Verdict(False, category, f"the LLM judge found it unsafe: {reason}.", "llm_judge")
