"""Every model family, in one plain dict; and finding the family (and generator) of a run directory.

Imported by the CLI, the demo, the benchmarks and the tests, which loop over ``FAMILIES`` instead of naming each
family (a family's record is the ``FAMILY`` of its cli.py; see worldsmith/family.py for the contract).
"""

from __future__ import annotations

from pathlib import Path

from worldsmith.autoregressive.cli import FAMILY as AUTOREGRESSIVE
from worldsmith.decoder.cli import FAMILY as DECODER
from worldsmith.diffusion.cli import FAMILY as DIFFUSION
from worldsmith.errors import CheckpointError, ConfigError
from worldsmith.family import Family, Generator
from worldsmith.tokenizer.cli import FAMILY as TOKENIZER
from worldsmith.weights import read_run_config
from worldsmith.zoo import resolve

FAMILIES: dict[str, Family] = {f.name: f for f in (TOKENIZER, DIFFUSION, AUTOREGRESSIVE, DECODER)}


def family_of(run_dir: str | Path) -> Family:
    """The family whose model a run directory holds; one sentence when it holds none of them."""
    for family in FAMILIES.values():
        if family.owns(run_dir):
            return family
    recorded = read_run_config(run_dir).get("model_class") or "an unknown model"
    raise CheckpointError(f"{run_dir} holds {recorded}, which no worldsmith model family ({', '.join(FAMILIES)}) "
                          f"generates with.")  # fmt: skip


def load_generator(run: str | Path, device: str = "cpu") -> Generator:
    """The generator of any run directory or shipped model's name, whichever its family."""
    run_dir = resolve(run)
    return family_of(run_dir).generator.from_run(run_dir, device=device)


def with_decoder(generator: Generator, decoder: str | Path | None, device: str = "cpu") -> Generator:
    """``generator`` decoding its tokens with the diffusion decoder run ``decoder`` (None: unchanged)."""
    if not decoder:
        return generator
    if not hasattr(generator, "use_decoder"):
        raise ConfigError(f"--decoder decodes an autoregressive model's tokens; this is a {type(generator).__name__} "
                          f"model, which makes no tokens.")  # fmt: skip
    return generator.use_decoder(DECODER.generator.from_run(resolve(decoder), device=device))
