"""Causal video tokenizers (Cosmos design): Haar patching, factorized causal encoder/decoder, FSQ, streaming."""

from worldsmith.tokenizer.model import CausalVideoTokenizer, TokenizerInputError
from worldsmith.tokenizer.tokenizer_config import TokenizerConfig, TokenizerLossConfig

__all__ = ["CausalVideoTokenizer", "TokenizerConfig", "TokenizerInputError", "TokenizerLossConfig"]
