"""The entities of a prompt (noun phrases with their colour, size and material words and their counts), and which of
them a rewritten prompt lost.

No tagger model: a small rule-based chunker. Words are lower-cased and lemmatized lightly (plurals, common irregular
forms, verb endings); function words, directions and adverbs split phrases; a word in the action-verb list is a
verb unless it stands inside a noun phrase ("the turn", "a pick"); an "-ing" word is a verb unless a determiner or
modifier precedes it ("a parking lot", "the moving car"). A noun phrase is a run of modifiers and nouns ending in
a noun: its head is the last noun, and what must survive a rewrite is the head plus every colour, size, material
and number word and every noun before it ("two red traffic cones": cone + 2, red, traffic). Other adjectives
("shiny") describe but are not required.

``missing_entities(original, rewritten)`` lists the entities of ``original`` that no noun phrase of ``rewritten``
carries: a phrase carries an entity when its words (lemmas) contain the entity's head and all its required words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STOP = frozenset(
    """a an the this that these those some any each every all both either neither no another other such its it
    it's they them their there here he she his her him we us our you your i me my mine one's someone something
    anything everything nothing somebody anybody everybody nobody who whom whose which what where when why how
    and or but nor so yet if then than as because while though although until unless whether
    of in on at to from by for with without into onto over under above below across along around through
    between behind beside besides beyond near toward towards within upon about against after before during
    off out up down past via per among amid next inside outside underneath atop throughout away back
    is are was were be been being am do does did done has have had having will would can could shall should
    may might must not also just very too quite really only even still again already almost nearly much many
    more most less least few several
    left right forward forwards backward backwards sideways ahead straight together apart clockwise
    counterclockwise anticlockwise here there now then later soon first last once twice
    one ones scene video clip shot footage view image picture""".split()
)
# scene/video words are stop words: "a video of a cat" has one entity, the cat

COLOURS = frozenset(
    """red green blue yellow orange purple pink brown black white gray grey cyan magenta violet beige tan gold
    golden silver teal turquoise navy maroon olive lime indigo crimson scarlet dark light pale bright""".split()
)
SIZES = frozenset("big small large tiny huge giant little tall short long wide narrow thin thick heavy".split())
MATERIALS = frozenset(
    """wooden wood metal metallic steel iron glass plastic rubber paper cardboard concrete stone brick leather
    ceramic fabric cotton woolen marble""".split()
)
NUMBERS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "dozen": 12, "pair": 2, "couple": 2, "single": 1,
}  # fmt: skip
ADJECTIVES = frozenset(
    """shiny new old empty full open closed round square flat smooth rough soft hard wet dry clean dirty busy
    quiet fast slow quick slowly quickly gentle careful carefully bumpy rocky sunny rainy cloudy snowy foggy
    dim bright dark sunlit colorful colourful striped dotted plain tiled shaded checkered transparent opaque
    fragile sturdy nearby distant far close high low modern rusty real virtual same different beautiful red-hot
    busy crowded urban rural indoor outdoor oncoming parked narrow wide steady cluttered tidy messy""".split()
)
VERBS = frozenset(
    """pick place put push pull lift drop hold grab grasp carry move turn drive roll fall slide bounce hit
    stack throw catch open close pour rotate spin fly walk run jump sit stand lie crash collide swing tilt pan
    orbit zoom follow approach pass overtake park stop start brake accelerate slow speed merge reverse climb
    descend land take enter exit leave cross wave fold press squeeze flip shake stir cut wipe sort assemble
    insert remove reach touch kick tumble float sink rise hover circle track travel navigate avoid enters
    go come bring set show appear look watch see point shine glow swim hang ride skate slip knock topple
    break spill fill empty clean wash cook chop wander patrol deliver load unload tow steer swerve yield
    rest sits lies stay remain become get make keep let change return wait hand give slice plug paint write
    draw scan inspect weld drill grip release lower raise dance hop crawl glide sail dock charge dig dump
    scoop mow spray sweep vacuum mop hug chase bark sleep eat drink stare melt burn explode splash drip flow
    blow arrive depart bump lean bend twist unscrew arrange gather scatter cover uncover
    hide reveal shoot capture""".split()
)
# scenery: where a scene happens, never an object slot of a retrieved caption
SCENERY = frozenset(
    """wall intersection street road lot park kitchen warehouse room factory city highway field forest beach
    night day sky garden yard office lab laboratory floor ground corridor hallway tunnel bridge parking
    crosswalk sidewalk lane roundabout town village desert mountain river lake sea ocean snow rain fog
    sunset sunrise morning evening background distance table counter""".split()
)
IRREGULAR = {
    "people": "person", "men": "man", "women": "woman", "children": "child", "feet": "foot", "teeth": "tooth",
    "mice": "mouse", "geese": "goose", "knives": "knife", "leaves": "leaf", "shelves": "shelf", "wolves": "wolf",
    "halves": "half", "lives": "life", "loaves": "loaf", "grey": "gray", "colour": "color", "boxes": "box",
    "dice": "die", "went": "go", "goes": "go", "flies": "fly", "fell": "fall", "held": "hold", "took": "take",
    "threw": "throw", "caught": "catch", "ran": "run", "sat": "sit", "lay": "lie", "lying": "lie", "drove": "drive",
    "rode": "ride", "flew": "fly", "swam": "swim", "hung": "hang", "put": "put", "set": "set", "hit": "hit",
    "cut": "cut", "spun": "spin", "stood": "stand", "left": "left", "bus": "bus", "glass": "glass", "gas": "gas",
    "lens": "lens", "chassis": "chassis", "news": "news", "axis": "axis", "series": "series", "species": "species",
}  # fmt: skip
NOT_ADVERB = frozenset("family assembly fly belly jelly reply supply rally trolley alley valley ply holy".split())
NOT_VERB_ING = frozenset("building ceiling railing ring string thing king wing spring morning evening painting "
                         "clothing parking lighting crossing sibling awning bearing".split())  # fmt: skip
WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def singular(word: str) -> str:
    """A light noun lemma: ``cups -> cup``, ``boxes -> box``, ``batteries -> battery``, ``people -> person``."""
    if word in IRREGULAR:
        return IRREGULAR[word]
    if len(word) <= 3 or word.endswith(("ss", "us", "is", "ous")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zes", "sses")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def verb_lemma(word: str) -> str | None:
    """The action verb ``word`` is a form of (``picks``, ``picked``, ``picking`` -> ``pick``), else None."""
    if word in IRREGULAR and IRREGULAR[word] in VERBS:
        return IRREGULAR[word]
    candidates = [word]
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            stem = word[: -len(suffix)]
            candidates += [stem, stem + "e"]
            if len(stem) > 2 and stem[-1] == stem[-2]:
                candidates.append(stem[:-1])  # stopping -> stop
            if suffix in ("es", "ed") and stem.endswith("i"):
                candidates.append(stem[:-1] + "y")  # carries -> carry
    return next((c for c in candidates if c in VERBS), None)


@dataclass(frozen=True)
class Entity:
    text: str  # the phrase as written in the prompt, e.g. "two red traffic cones"
    head: str  # lemma of the last noun: "cone"
    required: tuple[str, ...]  # lemmas that must come with the head: ("2", "red", "traffic")

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class _Word:
    raw: str
    lemma: str
    kind: str  # stop | verb | adverb | number | colour | size | material | adj | noun


def _classify(words: list[str]) -> list[_Word]:
    out: list[_Word] = []
    for i, w in enumerate(words):
        prev = out[-1].kind if out else "stop"
        prev_raw = words[i - 1] if i else ""
        in_phrase = prev in ("number", "colour", "size", "material", "adj") or prev_raw in ("a", "an", "the", "this",
                                                                                          "that", "its", "their")
        if w.isdigit():
            out.append(_Word(w, w, "number"))
        elif w in NUMBERS and not (w in ("pair", "couple", "dozen") and prev_raw not in ("a", "one")):
            out.append(_Word(w, str(NUMBERS[w]), "number"))
        elif w in STOP or w in ("pair", "couple", "dozen"):
            out.append(_Word(w, w, "stop"))
        elif w in ("light", "dark", "pale", "bright") and not (i + 1 < len(words) and words[i + 1] in COLOURS):
            out.append(_Word(w, w, "noun" if w == "light" else "adj"))  # "a red light", "a dark room"
        elif w in COLOURS or IRREGULAR.get(w) in COLOURS:
            out.append(_Word(w, IRREGULAR.get(w, w), "colour"))
        elif w in SIZES:
            out.append(_Word(w, w, "size"))
        elif w in MATERIALS:
            out.append(_Word(w, "wood" if w == "wooden" else w, "material"))
        elif w in ADJECTIVES:
            out.append(_Word(w, w, "adj"))
        elif w.endswith("ly") and w not in NOT_ADVERB:
            out.append(_Word(w, w, "adverb"))
        elif w.endswith("ing") and w not in NOT_VERB_ING:
            out.append(_Word(w, verb_lemma(w) or w, "adj" if in_phrase else "verb"))
        elif verb_lemma(w) and not in_phrase and not (w.endswith("s") and prev == "number"):
            out.append(_Word(w, verb_lemma(w) or w, "verb"))
        else:
            out.append(_Word(w, singular(w), "noun"))
    return out


def _phrases(text: str) -> list[tuple[list[_Word], int]]:
    """Noun phrases as (words, index of the head) runs of modifiers and nouns that end in a noun."""
    phrases = []
    text = re.sub(r"\b(a lot of|lots of|a bit of|a bit|a little)\b", " ", text.lower())
    for clause in re.split(r"[.,;:!?()\"\n]+", text):
        words = _classify(WORD.findall(clause))
        run: list[_Word] = []
        for w in words + [_Word("", "", "stop")]:
            if w.kind in ("number", "colour", "size", "material", "adj", "noun"):
                run.append(w)
                continue
            while run and run[-1].kind != "noun":
                run.pop()
            if run:
                phrases.append((run, len(run) - 1))
            run = []
    return phrases


def extract_entities(text: str) -> list[Entity]:
    """The entities of a prompt, in order, without repeats: ``"a robot picks up a red cup" -> [robot, red cup]``."""
    out: dict[tuple[str, tuple[str, ...]], Entity] = {}
    for run, head in _phrases(text):
        start = next((i for i, w in enumerate(run) if w.kind != "adj"), 0)
        kept = run[start:]
        required = tuple(dict.fromkeys(w.lemma for w in kept[:-1] if w.kind != "adj"))
        key = (run[head].lemma, required)
        if key not in out:
            out[key] = Entity(" ".join(w.raw for w in run), run[head].lemma, required)
    # an entity whose words another one contains ("cup" and "red cup") is implied by it
    items = list(out.values())
    return [e for e in items if not any(o is not e and o.head == e.head and set(e.required) < set(o.required)
                                        for o in items)]  # fmt: skip


def carries(phrase_lemmas: set[str], entity: Entity) -> bool:
    return entity.head in phrase_lemmas and all(r in phrase_lemmas for r in entity.required)


def missing_entities(original: str | list[Entity], rewritten: str) -> list[Entity]:
    """The entities of ``original`` (a prompt, or its entities) that no noun phrase of ``rewritten`` carries."""
    entities = extract_entities(original) if isinstance(original, str) else original
    phrases = [{w.lemma for w in run} for run, _ in _phrases(rewritten)]
    return [e for e in entities if not any(carries(p, e) for p in phrases)]


def entity_recall(original: str, rewritten: str) -> float:
    """Fraction of the entities of ``original`` that ``rewritten`` keeps (1.0 when ``original`` has none)."""
    entities = extract_entities(original)
    return 1.0 - len(missing_entities(entities, rewritten)) / len(entities) if entities else 1.0
