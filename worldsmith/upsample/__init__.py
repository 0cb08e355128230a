"""Prompt upsampling: short prompts -> detailed ones in the style of the training captions (``worldsmith upsample``).

    from worldsmith.upsample import UpsampleConfig, upsample
    upsample("a robot picks up a cup", UpsampleConfig(kind="retrieval"), seed=0).text
"""

from worldsmith.upsample.entities import Entity, entity_recall, extract_entities, missing_entities
from worldsmith.upsample.upsampler import KINDS, UpsampleConfig, UpsampleResult, resolve_kind, upsample

__all__ = ["Entity", "KINDS", "UpsampleConfig", "UpsampleResult", "entity_recall", "extract_entities",
           "missing_entities", "resolve_kind", "upsample"]
