"""The pre-guard's labelled prompt set (worldsmith/guard/data/prompts.jsonl): schema, counts, splits, no duplicates.

The MiniLM near-duplicate pass lives in benchmarks/make_prompt_set.py (cosine <= 0.9 across splits); here a cheap
lexical stand-in (word-set Jaccard) guards against a test or val item that copies a train item, and a holdout item
that copies any train, val or test item. The holdout split is the hand-written holdout sources, verbatim. The two
batches of extra train sources (prompt_set/*_train_extra.txt, *_train_extra2.txt) land in train only, never elsewhere. The second holdout
(holdout2) and the third (holdout3, the one to report) are their hand-written sources verbatim, close the file in
that order, and copy no item of any other split.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from worldsmith.guard.verdict import CATEGORIES

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "worldsmith" / "guard" / "data"
SOURCES = ROOT / "benchmarks" / "prompt_set"
PROMPTS = DATA / "prompts.jsonl"
KEYS = {"text", "label", "category", "hard", "split"}
SPLITS = ("train", "val", "test", "holdout", "holdout2", "holdout3")
HOLDOUTS = ("holdout", "holdout2", "holdout3")
ISSUE_HARD_BENIGN = [
    "the robot cuts the rope",
    "a blood-red ball",
    "shoot a video of the arm",
    "kill the engine",
]


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    raw = PROMPTS.read_bytes().decode("utf-8")  # fails on anything that is not UTF-8
    assert raw.endswith("\n")
    return [json.loads(line) for line in raw.splitlines()]


def words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9]+", text.lower()))


def test_every_row_has_the_schema(rows: list[dict]) -> None:
    for r in rows:
        assert set(r) == KEYS, r
        assert isinstance(r["text"], str) and r["text"] == r["text"].strip() and r["text"], r
        assert "\n" not in r["text"]
        assert r["split"] in SPLITS, r
        assert isinstance(r["hard"], bool), r
        if r["label"] == "unsafe":
            assert r["category"] in CATEGORIES and r["hard"] is False, r
        else:
            assert r["label"] == "safe" and r["category"] is None, r


def test_counts_meet_the_issue(rows: list[dict]) -> None:
    unsafe = [r for r in rows if r["label"] == "unsafe"]
    safe = [r for r in rows if r["label"] == "safe"]
    assert len(unsafe) >= 560 and len(safe) >= 560
    per_category = Counter(r["category"] for r in unsafe)
    assert set(per_category) == set(CATEGORIES)
    assert min(per_category.values()) >= 80, per_category
    assert sum(r["hard"] for r in safe) >= 200

    train = [r for r in rows if r["split"] == "train"]
    train_unsafe = Counter(r["category"] for r in train if r["label"] == "unsafe")
    assert min(train_unsafe[c] for c in CATEGORIES) >= 130, train_unsafe  # with both batches of extra train items
    assert sum(r["hard"] for r in train if r["label"] == "safe") >= 480

    test = [r for r in rows if r["split"] == "test"]
    test_unsafe = Counter(r["category"] for r in test if r["label"] == "unsafe")
    assert sum(test_unsafe.values()) >= 200 and min(test_unsafe[c] for c in CATEGORIES) >= 25, test_unsafe
    test_safe = [r for r in test if r["label"] == "safe"]
    assert len(test_safe) >= 200 and sum(r["hard"] for r in test_safe) >= 80

    dev = [r for r in rows if r["split"] not in HOLDOUTS]
    val_share = sum(r["split"] == "val" for r in dev) / len(dev)
    assert 0.07 <= val_share <= 0.18, val_share  # 15 % of the original pool; the extra train items dilute it


def test_holdout_counts(rows: list[dict]) -> None:
    holdout = [r for r in rows if r["split"] == "holdout"]
    unsafe = Counter(r["category"] for r in holdout if r["label"] == "unsafe")
    assert sum(unsafe.values()) >= 245 and min(unsafe[c] for c in CATEGORIES) >= 35, unsafe
    safe = [r for r in holdout if r["label"] == "safe"]
    assert len(safe) >= 245 and sum(r["hard"] for r in safe) >= 100


def test_holdout2_counts(rows: list[dict]) -> None:
    """The second holdout: >= 37 unsafe per category, >= 260 safe with >= 110 hard, safe lengths from terse to long."""
    holdout2 = [r for r in rows if r["split"] == "holdout2"]
    unsafe = Counter(r["category"] for r in holdout2 if r["label"] == "unsafe")
    assert sum(unsafe.values()) >= 260 and min(unsafe[c] for c in CATEGORIES) >= 37, unsafe
    safe = [r for r in holdout2 if r["label"] == "safe"]
    assert len(safe) >= 260 and sum(r["hard"] for r in safe) >= 110
    assert sum(not r["hard"] for r in safe) >= 110
    lengths = [len(r["text"].split()) for r in safe]
    assert min(lengths) <= 4 and max(lengths) >= 30 and max(lengths) <= 50, (min(lengths), max(lengths))


def test_holdout3_counts(rows: list[dict]) -> None:
    """The third holdout: >= 38 unsafe per category (5 to 30 words), >= 266 safe with >= 120 hard (3 to 50 words)."""
    holdout3 = [r for r in rows if r["split"] == "holdout3"]
    unsafe = Counter(r["category"] for r in holdout3 if r["label"] == "unsafe")
    assert sum(unsafe.values()) >= 266 and min(unsafe[c] for c in CATEGORIES) >= 38, unsafe
    safe = [r for r in holdout3 if r["label"] == "safe"]
    assert len(safe) >= 266 and sum(r["hard"] for r in safe) >= 120 and sum(not r["hard"] for r in safe) >= 120
    lengths = [len(r["text"].split()) for r in holdout3 if r["label"] == "unsafe"]
    assert 5 <= min(lengths) and max(lengths) <= 30, (min(lengths), max(lengths))
    lengths = [len(r["text"].split()) for r in safe]
    assert min(lengths) == 3 and 30 <= max(lengths) <= 50, (min(lengths), max(lengths))


@pytest.mark.parametrize("split", HOLDOUTS)
def test_holdout_is_the_hand_written_sources_verbatim(rows: list[dict], split: str) -> None:
    """Holdout rows come, in order and unchanged, from prompt_set/{unsafe,safe}_<split>.txt; they close the file."""
    expected = []
    for name in (f"unsafe_{split}.txt", f"safe_{split}.txt"):
        section = ""
        for line in (SOURCES / name).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line.startswith("## "):
                section = line[3:]
            elif line and not line.startswith("#"):
                category = section if name.startswith("unsafe") else None
                expected.append((line, "unsafe" if category else "safe", category, section == "hard"))
    holdout = [(r["text"], r["label"], r["category"], r["hard"]) for r in rows if r["split"] == split]
    assert holdout == expected
    tail = [h for h in HOLDOUTS for r in rows if r["split"] == h]  # holdout, holdout2, then holdout3 end the file
    assert [r["split"] for r in rows[-len(tail) :]] == tail


def source_lines(name: str) -> list[tuple[str, str]]:
    """(section, line) pairs of a prompt_set/*.txt source, comments skipped."""
    section, out = "", []
    for line in (SOURCES / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("## "):
            section = line[3:]
        elif line and not line.startswith("#"):
            out.append((section, line))
    return out


@pytest.mark.parametrize(
    ("batch", "lines", "per_category", "hard"), [("", 280, 40, 160), ("2", 320, 45, 180)], ids=["extra", "extra2"]
)
def test_extra_train_items_are_in_train_only(
    rows: list[dict], batch: str, lines: int, per_category: int, hard: int
) -> None:
    """Most extra lines survive the cosine filter, in train with their label; none reaches another split."""
    train = [r for r in rows if r["split"] == "train"]
    texts = {r["text"]: r["split"] for r in rows}
    unsafe = source_lines(f"unsafe_train_extra{batch}.txt")
    safe = source_lines(f"safe_train_extra{batch}.txt")
    assert len(unsafe) >= lines and len(safe) >= lines and sum(s == "hard" for s, _ in safe) >= hard
    for section, line in safe:
        assert texts.get(line, "train") == "train", line
    found = Counter()
    for category, line in unsafe:
        core = line.removeprefix("= ")
        hits = [r for r in rows if core in r["text"]]
        assert all(r["split"] == "train" and r["category"] == category for r in hits), (line, hits)
        found[category] += bool(hits)
    assert min(found[c] for c in CATEGORIES) >= per_category, found
    safe_rows = {r["text"]: r["hard"] for r in train if r["label"] == "safe"}
    kept = [(s, t) for s, t in safe if t in safe_rows]
    assert len(kept) >= lines - 20 and all(safe_rows[t] == (s == "hard") for s, t in kept)
    assert sum(s == "hard" for s, _ in kept) >= hard


@pytest.mark.parametrize("split", SPLITS)
def test_every_split_covers_every_category(rows: list[dict], split: str) -> None:
    part = [r for r in rows if r["split"] == split]
    assert {r["category"] for r in part if r["label"] == "unsafe"} == set(CATEGORIES)
    assert {r["hard"] for r in part if r["label"] == "safe"} == {True, False}


def test_unsafe_prompts_stay_short(rows: list[dict]) -> None:
    """From terse requests ("hotel room porn video") to a few sentences whose harm comes late; none is a long story."""
    lengths = [len(r["text"].split()) for r in rows if r["label"] == "unsafe"]
    assert min(lengths) >= 3 and max(lengths) <= 40


def test_no_duplicates(rows: list[dict]) -> None:
    texts = [r["text"] for r in rows]
    assert len(set(texts)) == len(texts)
    normalised = [" ".join(re.findall(r"[a-z0-9]+", t.lower())) for t in texts]
    twice = [t for t, n in Counter(normalised).items() if n > 1]
    assert not twice, twice[:5]


def test_no_near_duplicates_across_splits(rows: list[dict]) -> None:
    """Jaccard < 0.7: val/test against train; holdout against train, val and test; holdout2 and holdout3 against
    every other split."""
    by_split = {s: [words(r["text"]) for r in rows if r["split"] == s] for s in SPLITS}
    developed = by_split["train"] + by_split["val"] + by_split["test"]
    for r in rows:
        if r["split"] == "train":
            continue
        a = words(r["text"])
        if r["split"] in HOLDOUTS[1:]:
            others = [w for s, ws in by_split.items() if s != r["split"] for w in ws]
        else:
            others = developed if r["split"] == "holdout" else by_split["train"]
        closest = max(len(a & b) / len(a | b) for b in others)
        assert closest < 0.7, (r["text"], r["split"], closest)


def test_issue_examples_are_present_as_safe(rows: list[dict]) -> None:
    safe = [r["text"] for r in rows if r["label"] == "safe"]
    for phrase in ISSUE_HARD_BENIGN:
        hits = [r for r in rows if phrase in r["text"]]
        assert hits and all(r["label"] == "safe" and r["hard"] for r in hits), phrase
        assert any(t.startswith(phrase) for t in safe), phrase


def test_datasheet_matches_the_file(rows: list[dict]) -> None:
    """PROMPTS.md carries the count table of the file as it is (benchmarks/make_prompt_set.py prints it)."""
    sheet = (DATA / "PROMPTS.md").read_text(encoding="utf-8")
    assert "Apache-2.0" in sheet
    columns = list(CATEGORIES) + ["safe hard", "safe ordinary"]
    for split in (*SPLITS, None):
        part = [r for r in rows if split is None or r["split"] == split]
        c = Counter(r["category"] or ("safe hard" if r["hard"] else "safe ordinary") for r in part)
        line = f"| {split or 'all'} | " + " | ".join([str(c[k]) for k in columns] + [str(len(part))]) + " |"
        assert line in sheet, line
