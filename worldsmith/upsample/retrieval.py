"""The retrieval upsampler: the nearest training caption by MiniLM cosine, with the user's entities in its slots.

1. The prompt and the bank's captions (worldsmith/upsample/bank.py) are MiniLM sentence vectors; the caption with
   the highest cosine is taken (seed 0; another seed draws among the ``top_k`` nearest, so seeds give variants).
2. Slot filling: every entity of the prompt that the caption already carries stays as is ("robot" in "the robot
   arm"); an entity with the head of one of the caption's phrases takes that phrase's place ("red car" for "ego
   car"); the others take the places of the caption's objects in order ("cup" for "purple cube", every mention);
   entities left over get a sentence of their own.
3. The result is the prompt as a sentence, the filled caption, then the world's setting (layout, camera, light),
   sentence by sentence while the word bound allows. It keeps every entity by construction (checked anyway).

The bank's vectors ship next to it (see bank.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from worldsmith.conditioning.text import default_text_encoder
from worldsmith.upsample.bank import BANK_PATH, SETTINGS, BankEntry, bank_vectors, read_bank
from worldsmith.upsample.entities import SCENERY, Entity, carries, extract_entities, singular, verb_lemma
from worldsmith.upsample.prompts import word_count
from worldsmith.worlds.captions import join_phrases, sentence

ACTORS = frozenset({"arm", "car", "camera"})  # what a caption's sentence is about: kept unless the user names it
PLACES = frozenset({"road", "room", "floor", "table", "left", "right"})  # the setting: never a slot
NUMBER_WORDS = "two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozen|\\d+"


@dataclass
class RetrievalConfig:
    top_k: int = 3  # seeds other than 0 draw among this many nearest captions


@dataclass
class Retrieved:
    text: str
    world: str
    caption: str  # the bank caption it started from
    similarity: float


def nearest(prompt: str, k: int) -> list[tuple[BankEntry, float]]:
    """The ``k`` bank captions nearest to ``prompt`` (cosine of MiniLM vectors), best first."""
    entries = read_bank(BANK_PATH)
    query = default_text_encoder().encode([prompt]).pooled[0]  # (384,)
    sims = bank_vectors() @ query  # (N,)
    top = torch.topk(sims, min(k, len(entries)))
    return [(entries[int(i)], float(s)) for s, i in zip(top.values, top.indices)]


def _plural_verb(verb: str) -> str:
    """``falls -> fall``, ``pushes -> push``, ``is -> are`` (a verb after a subject that became plural)."""
    if verb in ("is", "was", "has"):
        return {"is": "are", "was": "were", "has": "have"}[verb]
    if verb_lemma(verb) is None or not verb.endswith("s"):
        return verb
    return verb[:-2] if verb.endswith(("shes", "ches", "xes", "sses")) else verb[:-1]


def _replace(text: str, old: str, new: str) -> str:
    """Every mention of ``old`` becomes ``new`` (and a verb right after it plural when ``new`` is plural)."""
    last = new.split()[-1].lower()
    plural = singular(last) != last

    def swap(m: re.Match) -> str:
        verb = m.group(1) or ""
        return new + (" " + (_plural_verb(verb.strip()) if plural else verb.strip()) if verb else "")

    return re.sub(rf"\b{re.escape(old)}\b(\s+[a-z]+)?", swap, text, flags=re.IGNORECASE)


def fix_articles(text: str) -> str:
    """``a orange`` -> ``an orange``, ``an cup`` -> ``a cup``, ``a two cups`` -> ``two cups``."""
    text = re.sub(rf"\b([Aa])n? ({NUMBER_WORDS})\b", lambda m: m.group(2), text)

    def article(m: re.Match) -> str:
        an = m.group(2)[0].lower() in "aeiou"
        word = ("an" if an else "a") if m.group(1).islower() else ("An" if an else "A")
        return f"{word} {m.group(2)}"

    return re.sub(r"\b(an?|An?) ([A-Za-z][\w-]*)", article, text)


def fill_slots(caption: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """The caption with the user's entities in its slots, and the entities that found no slot."""
    phrases = extract_entities(caption)
    lemmas = [{e.head, *e.required} for e in phrases]
    taken = [False] * len(phrases)
    text, leftover = caption, []
    for ent in entities:
        if any(carries(lem, ent) for lem in lemmas):
            continue
        if ent.head in SCENERY:
            leftover.append(ent)
            continue
        same = [i for i, p in enumerate(phrases) if not taken[i] and ent.head in lemmas[i] and p.head not in PLACES]
        free = [i for i, p in enumerate(phrases) if not taken[i] and p.head not in ACTORS | PLACES]
        slot = (same or free or [None])[0]
        if slot is None:
            leftover.append(ent)
            continue
        taken[slot] = True
        text = _replace(text, phrases[slot].text, ent.text)
    return fix_articles(text), leftover


def _with_article(entity: Entity) -> str:
    plural = entity.text.endswith("s") and not entity.text.endswith("ss")
    return entity.text if plural or re.match(rf"({NUMBER_WORDS})\b", entity.text) else fix_articles("a " + entity.text)


def retrieve(prompt: str, max_words: int, seed: int = 0, cfg: RetrievalConfig | None = None) -> Retrieved:
    """The upsampled prompt from the bank (see the module docstring)."""
    cfg = cfg or RetrievalConfig()
    candidates = nearest(prompt, max(1, cfg.top_k))
    pick = 0 if seed == 0 else int(np.random.default_rng(seed).integers(len(candidates)))
    entry, sim = candidates[pick]
    filled, leftover = fill_slots(entry.caption, extract_entities(prompt))
    parts = [sentence(prompt), filled]
    if leftover:
        parts.append(sentence(f"the scene also has {join_phrases([_with_article(e) for e in leftover])}"))
    parts += [s.strip() + "." for s in SETTINGS[entry.world].split(".") if s.strip()]
    text = parts[0]
    for part in parts[1:]:
        if word_count(text) + word_count(part) > max_words:
            break
        text = f"{text} {part}"
    return Retrieved(text, entry.world, entry.caption, sim)
