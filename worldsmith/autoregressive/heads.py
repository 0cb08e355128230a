"""Input embeddings and output heads of ``VideoGPT``: one softmax over the whole vocabulary, or FSQ digits.

A DV token is the mixed-radix number of its FSQ digits (tokenizer/fsq.py: ``token = sum_i d_i * prod(L_<i)``), so
a vocabulary of 64,000 codes (levels ``[8, 8, 8, 5, 5, 5]``, the Cosmos DV setting) is only 39 digit values.

* ``flat``: ``nn.Embedding(V + 1, D)`` in, ``nn.Linear(D, V)`` out, one softmax over all ``V`` codes. With 64,000
  codes the head's matmul, its softmax over ``V`` and the two ``V x D`` tables (dense gradients, optimizer state)
  cost more than the whole network at the small sizes a CPU trains (benchmarks/autoregressive_head.py).
* ``factorized``: the input embedding of a token is the sum of one embedding per digit (``sum(L) + 1`` rows, the
  last is BOS). The output predicts the digits one after another, each conditioned on the states and on the digits
  before it (a chain rule inside the token, so the likelihood is exact: the probabilities of all ``V`` codes sum to
  one):

      z_0 = W_in h;   logits_i = W_i silu(z_i);   z_{i+1} = z_i + E_i[d_i]

  Training is teacher-forced on the true digits (``d`` small matmuls instead of one ``D x V`` one); sampling draws
  the digits in order, applying temperature / top-k / top-p to each digit's distribution (so top-k keeps the k
  likeliest values of every digit, not the k likeliest codes; temperature 1 without cuts samples the exact joint).

Every head has the same three methods: ``loss(states, targets, z_weight)``, ``sample(states, sampling, generator)``
and ``log_probs(states)`` (the full ``(..., V)`` table, for tests and small vocabularies).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from worldsmith.autoregressive.config import GPTConfig, SamplingConfig
from worldsmith.autoregressive.sampling import RowStreams, sample_logits
from worldsmith.errors import ConfigError


class _CrossEntropyZ(torch.autograd.Function):
    """(mean CE, mean log(Z)^2) of logits (M, V) with one softmax in the backward, written in place:
    ``softmax * (g_ce + 2 g_z log Z) / M``, minus ``g_ce / M`` at the targets. Both passes go over blocks of rows
    (~4M logits), so no V-wide temporary is allocated and each block's passes stay in cache. Autograd through
    ``logsumexp`` takes three passes over fresh (M, V) temporaries instead: with 64,000 codes that made the flat
    head's training step about 2x slower at the tiny preset (benchmarks/RESULTS.md, "Autoregressive head")."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.rows = rows = max(1, (1 << 22) // logits.shape[1])  # ~4M logits a block, both passes
        log_z = torch.cat([torch.logsumexp(block, dim=-1) for block in logits.split(rows)])  # (M,)
        target_logit = logits.gather(-1, targets[:, None]).squeeze(-1)
        ctx.save_for_backward(logits, targets, log_z)
        return (log_z - target_logit).mean(), log_z.square().mean()

    @staticmethod
    def backward(ctx, g_ce: torch.Tensor, g_z: torch.Tensor) -> tuple[torch.Tensor, None]:
        logits, targets, log_z = ctx.saved_tensors
        m, rows = logits.shape[0], ctx.rows
        scale = ((g_ce + 2 * g_z * log_z) / m)[:, None].to(logits.dtype)  # (M, 1)
        grad = torch.empty_like(logits)
        for i in range(0, m, rows):
            block = grad[i : i + rows]
            torch.sub(logits[i : i + rows], log_z[i : i + rows, None], out=block).exp_().mul_(scale[i : i + rows])
        grad.scatter_add_(-1, targets[:, None], (-g_ce / m).expand(m, 1).to(grad.dtype))
        return grad, None


def ce_and_z(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (..., V), targets (...) -> (mean cross-entropy, mean log(Z)^2), in float32 or wider."""
    logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    return _CrossEntropyZ.apply(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def cross_entropy_z_loss(logits: torch.Tensor, targets: torch.Tensor, z_weight: float) -> tuple[torch.Tensor, dict]:
    """logits (B, N, V), targets (B, N) -> (CE + z_weight * mean log(Z)^2, logs with ce, z_loss, accuracy)."""
    ce, z_loss = ce_and_z(logits, targets)
    accuracy = (logits.argmax(-1) == targets).float().mean()
    return ce + z_weight * z_loss, {"ce": ce.detach(), "z_loss": z_loss.detach(), "accuracy": accuracy}


class FlatHead(nn.Linear):
    """One logit per code: ``nn.Linear(D, V)`` (its weight keeps the name ``head.weight``)."""

    def __init__(self, dim: int, vocab_size: int) -> None:
        super().__init__(dim, vocab_size, bias=False)

    def loss(self, states: torch.Tensor, targets: torch.Tensor, z_weight: float) -> tuple[torch.Tensor, dict]:
        return cross_entropy_z_loss(self(states), targets, z_weight)

    def sample(self, states: torch.Tensor, sampling: SamplingConfig,
               generator: torch.Generator | RowStreams | None = None):  # fmt: skip
        """states (B, D) -> tokens (B,)."""
        return sample_logits(self(states), sampling, generator)

    def log_probs(self, states: torch.Tensor) -> torch.Tensor:
        return self(states).float().log_softmax(-1)


class Digits(nn.Module):
    """The mixed-radix arithmetic of FSQ codes (no parameters): tokens <-> digits, digit offsets in one table."""

    def __init__(self, levels: tuple[int, ...]) -> None:
        super().__init__()
        self.sizes = tuple(levels)
        self.vocab_size = math.prod(levels)
        self.register_buffer("levels", torch.tensor(levels), persistent=False)
        self.register_buffer("basis", torch.tensor([math.prod(levels[:i]) for i in range(len(levels))]),
                             persistent=False)  # fmt: skip
        offsets = [sum(levels[:i]) for i in range(len(levels))]
        self.register_buffer("offsets", torch.tensor(offsets), persistent=False)

    def digits(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (...) in [0, V) -> digits (..., d) int64."""
        return (tokens.long()[..., None] // self.basis) % self.levels


class DigitEmbedding(Digits):
    """Token ids (..., ) in [0, V] (V = BOS) -> the sum of their digits' embeddings (..., D); BOS has its own row."""

    def __init__(self, levels: tuple[int, ...], dim: int) -> None:
        super().__init__(levels)
        self.table = nn.Embedding(sum(levels) + 1, dim)  # the last row is BOS

    @property
    def weight(self) -> torch.Tensor:  # device and dtype of the model, as nn.Embedding has
        return self.table.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        bos = tokens == self.vocab_size
        rows = self.digits(tokens.masked_fill(bos, 0)) + self.offsets  # (..., d)
        emb = self.table(rows).sum(-2)  # (..., D)
        return torch.where(bos[..., None], self.table.weight[-1], emb)


class DigitHead(nn.Module):
    """p(token | h) = prod_i p(d_i | h, d_<i): the digits of an FSQ code predicted one after another."""

    def __init__(self, dim: int, levels: tuple[int, ...], hidden: int) -> None:
        super().__init__()
        self.levels = tuple(levels)
        self.codes = Digits(self.levels)
        self.inp = nn.Linear(dim, hidden)
        self.prev = nn.Embedding(sum(self.levels[:-1]), hidden)  # E_i[d_i] for every digit but the last
        self.out = nn.ModuleList(nn.Linear(hidden, n) for n in self.levels)

    def _offset(self, i: int) -> int:
        return sum(self.levels[:i])

    def digit_logits(self, states: torch.Tensor, digits: torch.Tensor) -> list[torch.Tensor]:
        """Teacher-forced logits [(..., L_i)] of each digit given the true digits (..., d) before it."""
        z, out = self.inp(states), []
        for i, layer in enumerate(self.out):
            out.append(layer(F.silu(z)))
            if i < len(self.out) - 1:
                z = z + self.prev(digits[..., i] + self._offset(i))
        return out

    def loss(self, states: torch.Tensor, targets: torch.Tensor, z_weight: float) -> tuple[torch.Tensor, dict]:
        """Exact next-token CE (the sum of the digits' CEs), the digits' z-losses, and the accuracy of the code
        (every digit right given the true digits before it = greedy digit-by-digit decoding finds the code)."""
        digits = self.codes.digits(targets)  # (B, N, d)
        ce = z = 0.0
        right = torch.ones(targets.shape, dtype=torch.bool, device=targets.device)
        for i, logits in enumerate(self.digit_logits(states, digits)):
            ce_i, z_i = ce_and_z(logits, digits[..., i])
            ce, z = ce + ce_i, z + z_i
            right &= logits.argmax(-1) == digits[..., i]
        accuracy = right.float().mean()
        return ce + z_weight * z, {"ce": ce.detach(), "z_loss": z.detach(), "accuracy": accuracy}

    def sample(self, states: torch.Tensor, sampling: SamplingConfig,
               generator: torch.Generator | RowStreams | None = None):  # fmt: skip
        """states (B, D) -> tokens (B,): digit after digit, each drawn with ``sampling``."""
        z = self.inp(states)
        token = torch.zeros(states.shape[0], dtype=torch.long, device=states.device)
        for i, layer in enumerate(self.out):
            digit = sample_logits(layer(F.silu(z)), sampling, generator)  # (B,)
            token = token + digit * int(self.codes.basis[i])
            if i < len(self.out) - 1:
                z = z + self.prev(digit + self._offset(i))
        return token

    def log_probs(self, states: torch.Tensor) -> torch.Tensor:
        """The exact log-probabilities (..., V) of every code (prod L_i rows per state: for tests and small V)."""
        z = self.inp(states)[..., None, :]  # (..., 1 prefix, hidden)
        total = torch.zeros(*states.shape[:-1], 1, device=states.device)  # (..., prefixes)
        for i, (layer, n) in enumerate(zip(self.out, self.levels)):
            lp = layer(F.silu(z)).float().log_softmax(-1)  # (..., P, L_i)
            total = (total[..., None] + lp).flatten(-2)  # (..., P * L_i), digit i varies fastest
            if i < len(self.out) - 1:
                step = self.prev.weight[self._offset(i) : self._offset(i) + n]  # (L_i, hidden)
                z = (z[..., None, :] + step).flatten(-3, -2)  # (..., P * L_i, hidden)
        # ``total`` is ordered with digit 0 slowest; tokens put digit 0 in the lowest place: reverse the axes
        shape = (*states.shape[:-1], *self.levels)
        order = list(range(states.ndim - 1)) + [states.ndim - 1 + i for i in reversed(range(len(self.levels)))]
        return total.view(shape).permute(order).reshape(*states.shape[:-1], -1)


def make_io(cfg: GPTConfig) -> tuple[nn.Module, nn.Module]:
    """(input embedding, output head) of a config: ``flat`` or ``factorized`` over ``cfg.fsq_levels``."""
    if cfg.head == "factorized":
        if not cfg.fsq_levels:
            raise ConfigError("the factorized head needs model.fsq_levels (training sets them from the DV tokenizer).")
        levels = tuple(cfg.fsq_levels)
        return DigitEmbedding(levels, cfg.dim), DigitHead(cfg.dim, levels, cfg.head_hidden or cfg.dim)
    return nn.Embedding(cfg.vocab_size + 1, cfg.dim), FlatHead(cfg.dim, cfg.vocab_size)
