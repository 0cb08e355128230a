"""``worldsmith upsample PROMPT`` (registered by worldsmith/cli.py as ``app.command("upsample")(upsample)``)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from worldsmith.upsample.endpoint import EndpointConfig
from worldsmith.upsample.upsampler import KINDS, UpsampleConfig
from worldsmith.upsample.upsampler import upsample as run_upsample

DEFAULTS = UpsampleConfig()


def upsample(
    prompt: str = typer.Argument(..., help="The short prompt, e.g. \"a robot picks up a cup\"."),
    kind: str = typer.Option("auto", "--kind", "-k", help=f"{', '.join(KINDS)}: auto = the endpoint when given, "
                             "else the offline LLM when its weights are installed, else retrieval."),
    seed: int = typer.Option(0, "--seed", help="Same prompt and seed, same text."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="OpenAI-compatible server, e.g. "
                                           "http://127.0.0.1:8000/v1 (POST .../chat/completions)."),
    endpoint_model: str = typer.Option("default", "--endpoint-model", help="Model name sent to the endpoint."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env", help="Environment variable holding the "
                                    "endpoint's API key (unset: no key is sent)."),
    timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="Seconds to wait for the endpoint."),
    max_words: int = typer.Option(DEFAULTS.max_words, "--max-words", min=10, help="Length bound in words."),
    skip_words: int = typer.Option(DEFAULTS.skip_words, "--skip-words", min=1,
                                   help="Prompts longer than this are returned unchanged."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON (text, source, entities ...)."),
) -> None:  # fmt: skip
    """Rewrite a short prompt into a detailed one (objects, layout, camera, lighting, motion) in the style of the
    training captions, keeping every object of the prompt. Offline by default."""
    ep = EndpointConfig(base_url=endpoint or "", model=endpoint_model, api_key_env=api_key_env, timeout=timeout)
    cfg = UpsampleConfig(kind=kind, max_words=max_words, skip_words=skip_words, endpoint=ep)
    result = run_upsample(prompt, cfg, seed=seed)
    if json_out:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        typer.echo(result.text)
