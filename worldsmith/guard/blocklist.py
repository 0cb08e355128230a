"""The pre-guard's keyword filter: a maintained word list, light lemmatization and matching of obfuscations.

Sources (see guard/data/BLOCKLIST.md):

* better-profanity's word list (PyPI ``better-profanity``, MIT), read from the installed package. Only its words
  that are unsafe in every context are kept, each under a category: sexual terms and slurs. Its mild profanity,
  insults, medical and anatomy words, drug names and words with a benign physical-AI sense ("screw", "strip",
  "kill", "thrust", "stroke", "dummy", "flange", "organ", "slave") are left out: the classifier judges those in
  context, which is what lets "kill the engine" and "the gripper strips the wire" through.
* worldsmith's own lexicon (guard/data/blocklist.json, Apache-2.0): unambiguous terms and phrases per category
  (minors, violence and gore, self-harm, hate, weapons, illegal acts).

Matching: the text is normalised (Unicode folded, lower case, leetspeak and look-alike symbols mapped to letters,
letters spelled out with spaces or dots joined, runs of a repeated letter collapsed), split into words, and each
word is compared by its lemma (plural, -ed, -ing, -er stripped) to the terms; a word written with ``*`` or without
its vowels ("f*ck", "pssy") matches the term with the same consonant skeleton. A sexual term next to a word for a
child makes the verdict "minors". User deny terms block and allow terms exempt (they win over every check).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from worldsmith.errors import ConfigError
from worldsmith.guard.verdict import CATEGORIES, Verdict

LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a",
                      "$": "s", "!": "i", "|": "l", "+": "t", "€": "e", "£": "l"})  # fmt: skip
VOWELS = set("aeiouy")
STRONG_STEMS = ("porn", "fuck", "cunt", "blowjob", "hentai", "bukkake", "gangbang")  # unsafe inside any word
COMMON = {"a", "an", "the", "of", "to", "in", "on", "at", "by", "is", "it", "as", "or", "and", "up", "we", "he"}
WORD = re.compile(r"[a-z*]+")
# letters spelled out with one separator ("s e x", "p.0.r.n", "s-u-i-c-i-d-e"); an "a" or "i" before a space is a word
SPELLED = re.compile(r"(?<![a-z0-9])(?![ai]\s)([a-z0-9@$])([\s.\-_*])(?:[a-z0-9@$]\2){1,}[a-z0-9@$](?![a-z0-9])")
CHILD_WORDS = {"child", "children", "kid", "kids", "minor", "minors", "underage", "preteen", "toddler", "infant",
               "baby", "babies", "schoolgirl", "schoolgirls", "schoolboy", "schoolboys", "teen", "teens", "teenage",
               "teenager", "teenagers", "loli", "lolita", "juvenile", "tween", "prepubescent", "youngster"}
BENIGN_PHRASES = ("suicide lane", "suicide door", "suicide doors", "suicide knob", "wire stripper", "wire strippers",
                  "paint stripper", "cable stripper", "stripper tool", "ball cock", "woodpecker", "torture test",
                  "torture tests", "gore area", "gore point", "gore zone")  # terms of trade
# killing someone by an act ("stabs a worker to death"), unlike idioms ("bored to death", "scared to death")
TO_DEATH = re.compile(r"\b(?:stab|beat|crush|burn|strangl|chok|kick|club|bludgeon|hack|trampl|batter|maul|tortur|"
                      r"stomp|whip|shoot|shot|punch|bash|drown|bit|mangl|grind)(?:e|s|es|ed|d|t|en|ing|ten|bed|bing|"
                      r"ped|ping)?\b(?: [a-z]+){0,4} to death\b|\b(?:run|runs|ran|running) over(?: [a-z]+){0,4} to "
                      r"death\b")
CHILD_PHRASES = ("little girl", "little boy", "young girl", "young boy", "year old girl", "year old boy")

# better-profanity words kept, by category: exact words, and stems that mark a compound ("cocksucker")
PROFANITY_SEXUAL_STEMS = ("fuck", "fuk", "fvck", "fxck", "phuk", "phuck", "cunt", "cock", "porn", "pussy", "dick",
                          "boob", "blowjob", "cum", "kum", "orgasm", "orgy", "orgies", "masturbat", "masterbat",
                          "ejaculat", "ejakulat", "dildo", "hentai", "bukkake", "bukake", "gangbang", "whore",
                          "slut", "fellat", "cunnilingus", "cunilingus", "handjob", "rimjob", "footjob", "jizz",
                          "jism", "titfuck", "tittyfuck", "titwank", "wank", "penis", "vagina", "clit",
                          "threesome", "bdsm", "bestiality", "beastiality", "incest", "shemale", "sex", "xxx",
                          "smut", "erotic", "nympho", "futanar", "gokkun", "goatse", "tubgirl", "milf", "twat")
PROFANITY_SEXUAL_WORDS = {"anal", "anus", "nude", "nudes", "horny", "horniest", "tits", "titties", "titty",
                          "semen", "sperm", "labia", "vulva", "scrotum", "testicle", "hardon", "boner", "femdom",
                          "kinbaku", "shibari", "shibary", "fisting", "fingerfuck", "deepthroat", "deep throat",
                          "blow job", "hand job", "gang bang", "strip club", "stripclub", "golden shower",
                          "2 girls 1 cup", "pron", "p0rn", "yaoi", "prostitute", "hooker", "voyeur", "busty"}
PROFANITY_HATE_WORDS = {"nigger", "niggers", "nigga", "niggas", "niggaz", "niggah", "nigg3r", "nigg4h", "n1gger",
                        "n1gga", "niglet", "chink", "kike", "kikes", "kyke", "spic", "spick", "spik", "spiks",
                        "wetback", "gook", "gooks", "paki", "polack", "wop", "injun", "faggot", "faggit",
                        "faggitt", "fagot", "fagots", "fag", "fags", "fagg", "coon", "heeb", "moolie", "wigger",
                        "kkk", "retard", "retarded", "tard", "r-tard", "rtard", "reetard"}
PROFANITY_MINORS_WORDS = {"pedo", "pedophile", "pedophilia", "pedophiliac", "shota"}
NOT_BLOCKED = {"sexual", "sexy", "cockpit", "cocktail", "stopcock", "peacock", "hitchcock", "woodcock", "dickens",
               "sussex", "essex", "middlesex", "sextant", "sextet", "scunthorpe", "cumulative", "cumbersome",
               "cucumber", "circumference", "cumin", "document", "analysis", "analog", "analyse", "analyze",
               "canal", "banal", "penistone", "titan", "titanium", "title", "bangkok", "therapist", "grape", "transsexual"}


def normalise(text: str) -> str:
    """Lower case, accents folded, look-alike symbols mapped to letters, spelled-out letters joined."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).lower()
    # map leetspeak only inside words (a digit between letters, or a symbol next to one): "s3x", "p0rn", "$lut"
    mapped = re.sub(r"(?<=[a-z])[0-9@$!|+€£]+|[0-9@$!|+€£]+(?=[a-z])", lambda m: m.group().translate(LEET), folded)
    return SPELLED.sub(lambda m: _spelled(m.group()), mapped)


def _spelled(letters: str) -> str:
    joined = re.sub(r"[\s.\-_*]", "", letters)
    return joined.translate(LEET) if re.search(r"[a-z]", joined) else letters  # "1 2 3" stays as it is


def lemmas(word: str) -> set[str]:
    """The word and its candidate lemmas: plural, -ed, -ing, -er(s) stripped, runs of a letter collapsed."""
    out = {word, re.sub(r"(.)\1{2,}", r"\1", word), re.sub(r"(.)\1+", r"\1", word)}
    for w in list(out):
        for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""),
                             ("ing", "e"), ("ers", ""), ("er", ""), ("ers", "e"), ("er", "e")):  # fmt: skip
            if w.endswith(suffix) and len(w) - len(suffix) >= 3:
                out.add(w[: -len(suffix)] + repl)
        if len(w) > 3 and w[-1] == w[-2]:  # "cutt" from "cutting": doubled final consonant
            out.add(w[:-1])
    return out


def skeleton(word: str) -> str:
    return "".join(c for c in word if c.isalpha() and c not in VOWELS)


def profanity_terms() -> dict[str, str]:
    """better-profanity's words that worldsmith blocks, each with its category."""
    text = resources.files("better_profanity").joinpath("profanity_wordlist.txt").read_text(encoding="utf-8")
    terms = {}
    for raw in text.splitlines():
        word = raw.strip().lower()
        if not word or word in NOT_BLOCKED:
            continue
        if word in PROFANITY_MINORS_WORDS:
            terms[word] = "minors"
        elif word in PROFANITY_HATE_WORDS:
            terms[word] = "hate"
        elif word in PROFANITY_SEXUAL_WORDS or any(stem in word for stem in PROFANITY_SEXUAL_STEMS):
            terms[normalise(word)] = "sexual"
    return terms


def lexicon_terms(path: str | Path | None = None) -> dict[str, str]:
    """worldsmith's own terms per category (guard/data/blocklist.json, or ``path``)."""
    source = Path(path) if path else resources.files("worldsmith.guard").joinpath("data/blocklist.json")
    data = json.loads(source.read_text(encoding="utf-8"))
    unknown = [c for c in data if c not in CATEGORIES]
    if unknown:
        raise ConfigError(f"{source} names the unknown category {unknown[0]!r}; use one of {', '.join(CATEGORIES)}.")
    return {normalise(t): c for c, ts in data.items() for t in ts}


@dataclass
class BlocklistConfig:
    allow: list[str] = field(default_factory=list)  # user terms that are never blocked (they win over every check)
    deny: list[str] = field(default_factory=list)  # user terms that are always blocked (category "illegal" unless
    # written "category:term", e.g. "weapons:railgun")
    use_profanity_list: bool = True
    lexicon: str | None = None  # another lexicon JSON instead of worldsmith's


def parse_deny(terms: list[str]) -> dict[str, str]:
    out = {}
    for term in terms:
        category, sep, word = term.partition(":")
        if sep and category in CATEGORIES:
            out[normalise(word.strip())] = category
        else:
            out[normalise(term.strip())] = "illegal"
    return out


class Blocklist:
    """``check(text) -> Verdict | None``: a block verdict when a term matches, else None (allow terms: see rails)."""

    def __init__(self, cfg: BlocklistConfig | None = None) -> None:
        self.cfg = cfg or BlocklistConfig()
        terms = profanity_terms() if self.cfg.use_profanity_list else {}
        terms |= lexicon_terms(self.cfg.lexicon)
        self.deny = parse_deny(self.cfg.deny)
        terms |= self.deny
        self.words = {t: c for t, c in terms.items() if " " not in t}  # single words (matched by lemma)
        self.phrases = {t: c for t, c in terms.items() if " " in t}  # multi-word terms (matched on word sequences)
        alternation = "|".join(re.escape(p) for p in sorted(self.phrases, key=len, reverse=True))
        self.phrase_re = re.compile(rf"\b(?:{alternation})\b") if self.phrases else None
        self.glued = {p.replace(" ", ""): p for p in self.phrases}  # "blowjob" for "blow job"
        self.benign = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in BENIGN_PHRASES) + r")\b")
        self.skeletons: dict[str, str] = {}  # consonant skeleton -> the shortest term that has it
        for t in sorted(self.words, key=len, reverse=True):
            if len(skeleton(t)) >= 3:
                self.skeletons[skeleton(t)] = t
        self.allow = [normalise(a) for a in self.cfg.allow if a.strip()]

    def allowed_by_user(self, text: str) -> str | None:
        """The user allow term the text contains, if any."""
        norm = " ".join(WORD.findall(normalise(text)))
        return next((a for a in self.allow if re.search(rf"\b{re.escape(a)}\b", norm)), None)

    def _word_hit(self, word: str) -> str | None:
        for lemma in lemmas(word):
            if lemma in self.words and lemma not in NOT_BLOCKED:
                return lemma
        if word in NOT_BLOCKED:
            return None
        plain = word.replace("*", "")
        if "*" in word or (len(plain) >= 3 and not set("aeiou") & set(plain)):  # "f*ck", "pssy": by skeleton
            hit = self.skeletons.get(skeleton(plain))
            if hit:
                return hit
        stem = next((s for s in STRONG_STEMS if s in plain), None)  # "pornhub"
        return stem if stem in self.words else None

    def tokens(self, text: str) -> list[str]:
        """The text's normalised words, trade terms ("suicide lane") taken out."""
        return WORD.findall(self.benign.sub(" ", " ".join(WORD.findall(normalise(text)))))

    def matches(self, text: str) -> list[tuple[str, str]]:
        """(term, category) for every blocked term in the text."""
        return self._matches(self.tokens(text))

    def _matches(self, words: list[str]) -> list[tuple[str, str]]:
        joined = " ".join(words)
        hits = [(m.group(), self.phrases[m.group()]) for m in self.phrase_re.finditer(joined)] if self.phrase_re else []
        hits += [(self.glued[w], self.phrases[self.glued[w]]) for w in words if w in self.glued]
        for word in words:
            term = self._word_hit(word)
            if term:
                hits.append((term, self.words[term]))
        found = TO_DEATH.search(joined)
        if found:
            hits.append((found.group(), "violence"))
        for a, b in zip(words, words[1:]):  # a word split in two: "s ex", "por n"
            if a + b in self.words and min(len(a), len(b)) <= 2 and not COMMON & {a, b}:
                hits.append((a + b, self.words[a + b]))
        return hits

    def check(self, text: str) -> Verdict | None:
        words = self.tokens(text)
        hits = self._matches(words)
        if not hits:
            return None
        term, category = hits[0]
        child = CHILD_WORDS & set(words) or any(p in " ".join(words) for p in CHILD_PHRASES)
        if category == "sexual" and child:
            category = "minors"
        elif any(c == "minors" for _, c in hits):
            term, category = next(h for h in hits if h[1] == "minors")
        source = "deny_list" if term in self.deny else "blocklist"
        return Verdict(False, category, f"it contains the blocked term {term!r} ({CATEGORIES[category]}).", source,
                       {"terms": float(len(hits))})  # fmt: skip
