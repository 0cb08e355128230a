"""The pre-guard: user allow terms, then the blocklist, then the learned classifier, then (if set) an LLM judge.

``PromptGuard(cfg).check(text) -> Verdict``. User allow terms exempt a prompt from every check (a studio that films
its own "Xbox" rig, a medical-robotics lab); user deny terms are blocklist terms. The classifier and the MiniLM
encoder under it load on the first check (a few seconds) and are shared by every guard of the process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worldsmith.guard.blocklist import Blocklist, BlocklistConfig
from worldsmith.guard.classifier import CLASSES, PromptClassifier
from worldsmith.guard.llm_judge import JudgeConfig, judge
from worldsmith.guard.verdict import CATEGORIES, Verdict

_CLASSIFIERS: dict[str, PromptClassifier] = {}


@dataclass
class PromptGuardConfig:
    allow: list[str] = field(default_factory=list)  # terms that exempt a prompt from every check
    deny: list[str] = field(default_factory=list)  # terms always blocked ("category:term" names the category)
    classifier: bool = True  # the learned classifier (off: blocklist only, no MiniLM)
    classifier_path: str | None = None  # a folder `worldsmith guard train` wrote (default: the shipped head)
    threshold: float | None = None  # P(unsafe) that blocks (default: the one chosen on the val split)
    judge: JudgeConfig | None = None  # an OpenAI-compatible LLM judge (off by default)


def shared_classifier(path: str | None) -> PromptClassifier:
    key = path or ""
    if key not in _CLASSIFIERS:
        _CLASSIFIERS[key] = PromptClassifier.load(path)
    return _CLASSIFIERS[key]


class PromptGuard:
    def __init__(self, cfg: PromptGuardConfig | None = None) -> None:
        self.cfg = cfg or PromptGuardConfig()
        self.blocklist = Blocklist(BlocklistConfig(allow=self.cfg.allow, deny=self.cfg.deny))
        self.classifier = shared_classifier(self.cfg.classifier_path) if self.cfg.classifier else None

    def check(self, text: str) -> Verdict:
        # 1. user allow terms win over every check
        term = self.blocklist.allowed_by_user(text)
        if term:
            return Verdict(True, reason=f"it contains the allowed term {term!r}.", source="allow_list")
        # 2. the keyword blocklist
        verdict = self.blocklist.check(text)
        if verdict is not None:
            return verdict
        # 3. the learned classifier
        if self.classifier is not None and text.strip():
            probs = self.classifier.scores([text])[0]
            p_unsafe = float(1.0 - probs[0])
            threshold = self.cfg.threshold if self.cfg.threshold is not None else self.classifier.threshold
            scores = {c: round(float(p), 4) for c, p in zip(CLASSES, probs)}
            if p_unsafe >= threshold:
                category = CLASSES[1 + int(probs[1:].argmax())]
                return Verdict(False, category, f"the safety classifier rates it {CATEGORIES[category]} "
                               f"(P(unsafe) = {p_unsafe:.2f}).", "classifier", scores)  # fmt: skip
        # 4. the LLM judge, when one is configured
        if self.cfg.judge is not None and text.strip():
            verdict = judge(text, self.cfg.judge)
            if not verdict.allowed:
                return verdict
        return Verdict(True, reason="no guardrail objected.", source="pre_guard")
