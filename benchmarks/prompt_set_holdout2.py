"""The second holdout split ("holdout2") of the prompt set (used by benchmarks/make_prompt_set.py).

holdout2 is prompt_set/unsafe_holdout2.txt and safe_holdout2.txt, verbatim: a second untouched evaluation split,
written after the first holdout had been scored once and the training data extended. It is appended after every
other row, so no other split changes; an item is dropped (and reported) when it repeats an existing prompt, when its
MiniLM cosine to any train, val, test or holdout item is above HOLDOUT2_MAX, or when its word-set Jaccard to one is
JACCARD_MAX or more (the lexical check of tests/test_guard_prompt_set.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

HOLDOUT2_MAX = 0.85  # max MiniLM cosine between a holdout2 item and any item of another split
JACCARD_MAX = 0.7


def word_set(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9]+", text.lower()))


def holdout2_rows(
    items: list[dict],
    rows: list[dict],
    rows_emb: np.ndarray,
    embed: Callable[[list[str]], np.ndarray],
) -> list[dict]:
    """The holdout2 rows: items (in source order) far enough from rows, whose L2-normalised embeddings are rows_emb.

    Prints what was dropped and why, and the largest kept cosine to each other split.
    """
    assert len(rows) == len(rows_emb)
    texts = {r["text"] for r in rows}
    items = [i for i in items if i["text"] not in texts]
    emb = embed([i["text"] for i in items])
    sim = emb @ rows_emb.T
    others = [word_set(r["text"]) for r in rows]
    keep = []
    for k, item in enumerate(items):
        j = int(sim[k].argmax())
        a = word_set(item["text"])
        jac = max(len(a & b) / len(a | b) for b in others)
        if sim[k, j] > HOLDOUT2_MAX or jac >= JACCARD_MAX:
            print(f"dropped holdout2 item (cosine {sim[k, j]:.3f}, jaccard {jac:.2f}): {item['text']!r}"
                  f" ~ {rows[j]['text']!r}")
        else:
            keep.append(k)
    splits = [r["split"] for r in rows]
    best = {s: sim[keep][:, [i for i, x in enumerate(splits) if x == s]].max() for s in dict.fromkeys(splits)}
    print("max holdout2 cosine: " + ", ".join(f"holdout2-{s} {v:.3f}" for s, v in best.items()))
    return [{**items[k], "split": "holdout2"} for k in keep]
