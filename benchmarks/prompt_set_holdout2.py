"""The late holdout splits ("holdout2", "holdout3") of the prompt set (used by benchmarks/make_prompt_set.py).

Each is prompt_set/unsafe_<split>.txt and safe_<split>.txt, verbatim: an untouched evaluation split, written after
the previous holdout had been scored and the training data extended (holdout2), or after holdout2 was scored and
before the guard's final retraining (holdout3). They are appended after every other row, in that order, so no other
split changes; an item is dropped (and reported) when it repeats an existing prompt, when its MiniLM cosine to any
item of another split (train, val, test, holdout and any earlier late holdout) is above HOLDOUT2_MAX, or when its
word-set Jaccard to one is JACCARD_MAX or more (the lexical check of tests/test_guard_prompt_set.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

HOLDOUT2_MAX = 0.85  # max MiniLM cosine between a late holdout item and any item of another split
JACCARD_MAX = 0.7
LATE_HOLDOUTS = ("holdout2", "holdout3")  # appended in this order, each held off everything before it


def word_set(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9]+", text.lower()))


def holdout2_rows(
    items: list[dict],
    rows: list[dict],
    rows_emb: np.ndarray,
    embed: Callable[[list[str]], np.ndarray],
    split: str = "holdout2",
) -> list[dict]:
    """The rows of a late holdout split: items (in source order) far enough from rows, whose L2-normalised
    embeddings are rows_emb.

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
            print(f"dropped {split} item (cosine {sim[k, j]:.3f}, jaccard {jac:.2f}): {item['text']!r}"
                  f" ~ {rows[j]['text']!r}")
        else:
            keep.append(k)
    splits = [r["split"] for r in rows]
    best = {s: sim[keep][:, [i for i, x in enumerate(splits) if x == s]].max() for s in dict.fromkeys(splits)}
    print(f"max {split} cosine: " + ", ".join(f"{split}-{s} {v:.3f}" for s, v in best.items()))
    return [{**items[k], "split": split} for k in keep]


def late_holdout_rows(
    verbatim_items: Callable[[str], list[dict]],
    rows: list[dict],
    rows_emb: np.ndarray,
    embed: Callable[[list[str]], np.ndarray],
) -> list[dict]:
    """The rows of every LATE_HOLDOUTS split, in order, each held off rows and the late holdouts before it.

    verbatim_items(split) gives a split's hand-written items; rows_emb are the L2-normalised embeddings of rows.
    """
    out: list[dict] = []
    for split in LATE_HOLDOUTS:
        new = holdout2_rows(verbatim_items(split), rows + out, rows_emb, embed, split)
        out += new
        rows_emb = np.concatenate([rows_emb, embed([r["text"] for r in new])])
    return out
