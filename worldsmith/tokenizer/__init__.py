"""Causal video tokenizers (Cosmos design): Haar patching, factorized causal encoder/decoder, FSQ, streaming.

Rooms (worldsmith/family.py): config.py (TokenizerConfig, PRESETS), model.py (CausalVideoTokenizer), losses.py
(TokenizerLoss with its discriminator and perceptual net), train.py, generate.py (TokenizerGenerator), cli.py
(FAMILY); files.py (video <-> latent files) and evaluation.py (PSNR / SSIM / FD) beside them.
"""

from worldsmith.tokenizer.config import TokenizerConfig
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.tokenizer.tensors import TokenizerInputError

__all__ = ["CausalVideoTokenizer", "TokenizerConfig", "TokenizerInputError"]
