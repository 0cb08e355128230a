"""The prompt set's source reader and its extra hand-written TRAIN items (used by benchmarks/make_prompt_set.py).

The extra items (prompt_set/unsafe_train_extra.txt and safe_train_extra.txt) were added after the first classifier
missed unsafe requests without a tell-tale keyword and flagged benign prompts that share surface words with unsafe
ones. They go to the train split only, after val, test and holdout are fixed, so no other split changes: an extra
item is dropped when its MiniLM cosine to any val, test or holdout item is above EXTRA_MAX (stricter than the 0.9
between the original splits, since these are training data), when its word-set Jaccard to one is JACCARD_MAX or
more (the lexical check of tests/test_guard_prompt_set.py), or when it repeats an existing prompt.

A second batch (prompt_set/*_train_extra2.txt, extra2_train_items) varies the form of the requests more than their
topic (long prompts whose harm comes late, film / game / role-play framings, slang, terse requests) and adds hard
benign prompts of the same forms. It is appended to train after the first batch and is held to the same rules
against val, test, holdout and holdout2 (whose rows are therefore unchanged); its templates use their own seed.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from worldsmith.guard.verdict import CATEGORIES

SRC = Path(__file__).resolve().parent / "prompt_set"
EXTRA_MAX = 0.85  # max MiniLM cosine between an extra train item and any val / test / holdout item
JACCARD_MAX = 0.7  # an extra item at this word-set Jaccard (or more) to an evaluation item is dropped
EXTRA_SOURCES = ("unsafe_train_extra.txt", "safe_train_extra.txt")
EXTRA2_SOURCES = ("unsafe_train_extra2.txt", "safe_train_extra2.txt")


def read_sections(name: str) -> dict[str, list[str]]:
    """{section: lines} from a prompt_set/*.txt file; "#" lines are comments, "## x" starts section x."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in (SRC / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("## "):
            section = line[3:].strip()
            out.setdefault(section, [])
        elif line and not line.startswith("#"):
            out[section].append(line)
    return out


def normalised(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def word_set(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9]+", text.lower()))


def extra_candidates(frames: list[str], rng: random.Random, sources: tuple[str, str] = EXTRA_SOURCES) -> list[dict]:
    """The extra items in source order: unsafe cores framed by a request template ("= " lines verbatim), safe verbatim."""
    unsafe_name, safe_name = sources
    items = []
    for category, lines in read_sections(unsafe_name).items():
        assert category in CATEGORIES, category
        for line in lines:
            text = line[2:] if line.startswith("= ") else rng.choice(frames).format(line)
            items.append({"text": text, "label": "unsafe", "category": category, "hard": False})
    for kind, lines in read_sections(safe_name).items():
        assert kind in ("hard", "ordinary"), kind
        items += [{"text": t, "label": "safe", "category": None, "hard": kind == "hard"} for t in lines]
    return items


def extra_train_items(
    frames: list[str],
    rng: random.Random,
    embed: Callable[[list[str]], np.ndarray],
    existing: list[str],
    evaluation: dict[str, tuple[list[str], np.ndarray]],
    sources: tuple[str, str] = EXTRA_SOURCES,
) -> list[dict]:
    """Extra train items that repeat no existing prompt and sit <= EXTRA_MAX (cosine) from every evaluation item.

    evaluation maps a split name to (texts, L2-normalised MiniLM embeddings). Prints what was dropped and why, and
    the largest kept cosine per evaluation split.
    """
    items = extra_candidates(frames, rng, sources)
    emb = embed([i["text"] for i in items])
    eval_emb = np.concatenate([e for _, e in evaluation.values()])
    eval_words = [word_set(t) for texts, _ in evaluation.values() for t in texts]
    closest = (emb @ eval_emb.T).max(1)
    seen = {normalised(t) for t in existing}
    keep, dropped = [], Counter()
    for i, item in enumerate(items):
        words = word_set(item["text"])
        jaccard = max(len(words & w) / len(words | w) for w in eval_words)
        reason = (
            "duplicate" if normalised(item["text"]) in seen
            else "cosine" if closest[i] > EXTRA_MAX
            else "jaccard" if jaccard >= JACCARD_MAX
            else None
        )
        if reason:
            dropped[reason] += 1
            print(f"dropped extra train item ({reason}, cosine {closest[i]:.3f}, jaccard {jaccard:.2f}): {item['text']!r}")
            continue
        seen.add(normalised(item["text"]))
        keep.append(i)
    kept = [items[i] for i in keep]
    by = Counter(i["category"] or ("safe hard" if i["hard"] else "safe ordinary") for i in kept)
    print(f"extra train items ({sources[0]}, ...): {len(kept)} of {len(items)} kept ({dict(by)}); dropped {dict(dropped) or 0}")
    print(
        "max cosine of a kept extra item: "
        + ", ".join(f"{name} {(emb[keep] @ e.T).max():.3f}" for name, (_, e) in evaluation.items())
    )
    return kept


def extra2_train_items(
    frames: list[str],
    rng: random.Random,
    embed: Callable[[list[str]], np.ndarray],
    existing: list[str],
    evaluation: dict[str, tuple[list[str], np.ndarray]],
    holdout2: list[dict],
) -> list[dict]:
    """The second extra batch: extra_train_items on EXTRA2_SOURCES, with the holdout2 candidates also held off."""
    texts = [h["text"] for h in holdout2]
    evaluation = {**evaluation, "holdout2": (texts, embed(texts))}
    return extra_train_items(frames, rng, embed, existing + texts, evaluation, EXTRA2_SOURCES)
