"""``worldsmith guard prompt|video|train`` and the guardrail options that ``generate`` and ``batch`` share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from worldsmith.guard.classifier import ClassifierConfig, train_classifier
from worldsmith.guard.llm_judge import JudgeConfig
from worldsmith.guard.prompt import PromptGuard, PromptGuardConfig
from worldsmith.guard.rails import GuardConfig, Guardrails
from worldsmith.guard.video import VideoGuardConfig, guard_video_file

app = typer.Typer(help="Guardrails: check a prompt or a video, train the prompt classifier.", no_args_is_help=True)

NoGuardOption = typer.Option(False, "--no-guardrail", help="Turn the guardrails off (prompts and outputs are not "
                             "checked; a warning says so).")  # fmt: skip
AllowOption = typer.Option(None, "--allow", help="A term that exempts a prompt from every check (repeatable), "
                           "e.g. --allow xbox.")  # fmt: skip
DenyOption = typer.Option(None, "--deny", help="A term always blocked (repeatable; 'category:term' names its "
                          "category, e.g. weapons:railgun).")  # fmt: skip
AuditOption = typer.Option(None, "--audit-log", help="JSONL audit log of every guardrail decision (default: "
                           "guard_audit.jsonl next to the outputs).")  # fmt: skip
JudgeOption = typer.Option(None, "--llm-judge", help="Also ask an OpenAI-compatible LLM judge at this base URL "
                           "(e.g. http://localhost:8080/v1; key from $OPENAI_API_KEY).")  # fmt: skip


def guard_config(no_guardrail: bool = False, allow: list[str] | None = None, deny: list[str] | None = None,
                 audit_log: Path | None = None, llm_judge: str | None = None) -> GuardConfig:  # fmt: skip
    judge = JudgeConfig(url=llm_judge) if llm_judge else None
    prompt = PromptGuardConfig(allow=list(allow or []), deny=list(deny or []), judge=judge)
    return GuardConfig(enabled=not no_guardrail, prompt=prompt, audit_log=str(audit_log) if audit_log else None)


def rails_for(entry: str, out_dir: Path, **options) -> Guardrails:
    """The guardrails of a CLI entry point; prints the one-line warning when they are off."""
    rails = Guardrails(guard_config(**options), entry=entry, audit_log=Path(out_dir) / "guard_audit.jsonl")
    if rails.warning:
        typer.echo(rails.warning, err=True)
    return rails


@app.command("prompt")
def guard_prompt(
    text: str = typer.Argument(..., help="The prompt to check."),
    allow: Optional[list[str]] = AllowOption,
    deny: Optional[list[str]] = DenyOption,
    llm_judge: Optional[str] = JudgeOption,
    no_classifier: bool = typer.Option(False, "--no-classifier", help="Blocklist only (no MiniLM)."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
) -> None:  # fmt: skip
    """Check a prompt with the pre-guard: allow or block, the category and one sentence why (exit 2 when blocked)."""
    cfg = guard_config(allow=allow, deny=deny, llm_judge=llm_judge).prompt
    cfg.classifier = not no_classifier
    verdict = PromptGuard(cfg).check(text)
    if as_json:
        typer.echo(json.dumps(verdict.to_json()))
    else:
        typer.echo(f"{'allow' if verdict.allowed else 'block'}"
                   f"{'' if verdict.allowed else f' ({verdict.category})'}: {verdict.reason}")  # fmt: skip
    raise typer.Exit(0 if verdict.allowed else 2)


@app.command("video")
def guard_video(
    src: Path = typer.Argument(..., help="A video or image file."),
    out: Path = typer.Option(..., "--out", "-o", help="Where the checked video goes (mp4; faces blurred). Nothing is "
                             "written when the video is withheld."),  # fmt: skip
    blur: str = typer.Option("pixelate", "--blur", help="How faces are hidden: pixelate or blur."),
    no_faces: bool = typer.Option(False, "--no-faces", help="Do not blur faces."),
    no_nudity: bool = typer.Option(False, "--no-nudity", help="Do not run the nudity detector."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:  # fmt: skip
    """Check a video with the post-guard: the nudity detector on sampled frames, and every face blurred
    (exit 2 when withheld)."""
    cfg = VideoGuardConfig(blur_mode=blur, faces=not no_faces, nudity=not no_nudity)
    result = guard_video_file(src, out, cfg)
    verdict = result["verdict"]
    if as_json:
        typer.echo(json.dumps(result, default=str))
    else:
        state = "allow" if verdict["allowed"] else f"block ({verdict['category']})"
        typer.echo(f"{state}: {verdict['reason']}" + (f"\nwrote {result['out']}" if result.get("out") else ""))
    raise typer.Exit(0 if verdict["allowed"] else 2)


@app.command("train")
def guard_train(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for prompt_classifier.safetensors and .json (the "
                             "shipped one: worldsmith/guard/data)."),  # fmt: skip
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="A labelled prompt set (JSONL: text, label, "
                                           "category, split); default: the shipped one."),  # fmt: skip
    hidden: int = typer.Option(ClassifierConfig.hidden, "--hidden", min=0, help="Hidden width (0: linear head)."),
    epochs: int = typer.Option(ClassifierConfig.epochs, "--epochs", min=1),
    max_fpr: float = typer.Option(ClassifierConfig.max_fpr, "--max-fpr", min=0.0, max=1.0, help="The threshold "
                                  "keeps the cross-validated false positives at or below this."),
    calibrate: Optional[list[str]] = typer.Option(None, "--calibrate", help="Choose the threshold on these held-out "
                                                  "splits instead (repeatable; the head never trains on them)."),
) -> None:  # fmt: skip
    """Train the pre-guard's classifier on the train and val splits of the labelled prompts; the threshold is chosen
    by cross-validation over them (seconds on a CPU)."""
    cfg = ClassifierConfig(hidden=hidden, epochs=epochs, max_fpr=max_fpr)
    info = train_classifier(out, cfg, prompts, calibrate=tuple(calibrate or ()))
    keys = ("threshold", "train_rows", "cross_validation", "calibration")
    typer.echo(json.dumps({k: info[k] for k in keys if k in info}, indent=2))
