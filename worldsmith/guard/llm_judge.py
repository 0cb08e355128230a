"""An optional LLM safety judge behind any OpenAI-compatible chat endpoint (a local llama.cpp or vLLM server, or a
hosted one). Off by default: worldsmith's offline pre-guard is the blocklist and the classifier. When it is set and
does not answer, the prompt is refused with one sentence (a configured check that cannot run never passes silently).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from worldsmith.chat_api import chat
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
    url: str  # the endpoint's base URL, e.g. http://localhost:8080/v1 (POST {url}/chat/completions, chat_api.py)
    model: str = "default"
    api_key_env: str = "OPENAI_API_KEY"  # the environment variable holding the key (unset: no key sent)
    timeout: float = 10.0


def judge(text: str, cfg: JudgeConfig) -> Verdict:
    body = {"model": cfg.model, "temperature": 0, "max_tokens": 120,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]}  # fmt: skip
    try:
        answer = chat(cfg.url, body, api_key_env=cfg.api_key_env, timeout=cfg.timeout, what="the LLM safety judge")
    except WorldsmithError as e:
        raise JudgeUnavailable(f"{str(e).rstrip('.')}, or run without the judge.") from None
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
