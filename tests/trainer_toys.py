"""A tiny model, its losses and synthetic data for the Trainer tests (imported by tests and the scripts they launch).

The model draws dropout masks, the loss a random input flip from the global torch RNG, and the data adds noise
from it, so an exact resume really depends on the RNG state being saved and restored. ``ToyGANLoss`` is a loss
that owns networks, as the tokenizer's does: a trainable discriminator and a frozen feature network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ToyConfig:
    dim: int = 8
    hidden: int = 16
    depth: int = 2
    vocab: int = 5  # a class embedding, to exercise the no-weight-decay group
    dropout: float = 0.1
    flip: bool = True  # random sign flip of inputs (augmentation in toy_loss, global RNG)


class ToyBlock(nn.Module):
    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.hidden)
        self.fc = nn.Linear(cfg.hidden, cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.calls = 0  # forward executions (activation checkpointing runs it twice per step)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, hidden) -> (B, hidden)
        self.calls += 1
        return h + self.drop(torch.tanh(self.fc(self.norm(h))))


class ToyNet(nn.Module):
    Config = ToyConfig

    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Linear(cfg.dim, cfg.hidden)
        self.cls = nn.Embedding(cfg.vocab, cfg.hidden)
        self.blocks = nn.ModuleList(ToyBlock(cfg) for _ in range(cfg.depth))
        self.out = nn.Linear(cfg.hidden, cfg.dim)
        self.register_buffer("scale", torch.ones(cfg.dim))

    def checkpoint_modules(self) -> list[nn.Module]:
        return list(self.blocks)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # (B, dim), (B,) -> (B, dim)
        h = self.inp(x) + self.cls(c)
        for block in self.blocks:
            h = block(h)
        return self.out(h) * self.scale


def _predict(model: ToyNet, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(prediction, target), both (B, dim), after a random sign flip of x and y in training."""
    x, y, c = batch["x"], batch["y"], batch["c"]
    if model.cfg.flip and model.training:
        sign = torch.where(torch.rand(x.shape[0], 1, device=x.device) < 0.5, -1.0, 1.0)
        x, y = x * sign, y * sign
    return model(x, c), y


def toy_loss(model: ToyNet, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean squared error, with the largest error logged."""
    pred, y = _predict(model, batch)
    err = (pred - y).pow(2)
    return err.mean(), {"max_err": err.max().detach()}


class ToyDiscriminator(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.body = nn.Linear(dim, hidden)
        self.head = nn.Linear(hidden, 1)
        self.register_buffer("seen", torch.zeros((), dtype=torch.int64))  # samples judged: a buffer resume restores

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, dim) -> (B,)
        self.seen += x.shape[0]
        return self.head(torch.tanh(self.body(x))).squeeze(-1)

    def judge(self, x: torch.Tensor) -> torch.Tensor:  # (B, dim) -> (B,)
        """The same scores through detached weights: the gradient reaches x (the generator) only."""
        h = torch.tanh(F.linear(x, self.body.weight.detach(), self.body.bias.detach()))
        return F.linear(h, self.head.weight.detach(), self.head.bias.detach()).squeeze(-1)


class ToyGANLoss(nn.Module):
    """MSE + a frozen-feature distance + a non-saturating GAN term, with the discriminator trained in the same
    backward (its loss on real targets and detached predictions is added to the total)."""

    def __init__(self, dim: int = 8, hidden: int = 8, adv_weight: float = 0.1, feature_weight: float = 0.5):
        super().__init__()
        self.adv_weight, self.feature_weight = adv_weight, feature_weight
        self.disc = ToyDiscriminator(dim, hidden)
        with torch.random.fork_rng():  # a fixed "pretrained" network: the same in every process, never saved
            torch.manual_seed(1234)
            self.features = nn.Sequential(nn.Linear(dim, 2 * dim), nn.Tanh()).requires_grad_(False)

    def forward(self, model: ToyNet, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pred, y = _predict(model, batch)
        feature = (self.features(pred) - self.features(y)).pow(2).mean()
        adv = F.softplus(-self.disc.judge(pred)).mean()
        disc = F.softplus(-self.disc(y)).mean() + F.softplus(self.disc(pred.detach())).mean()
        total = (pred - y).pow(2).mean() + self.feature_weight * feature + self.adv_weight * adv + disc
        return total, {"feature": feature.detach(), "adv": adv.detach(), "disc": disc.detach()}


def batches(epoch: int, n_batches: int = 6, batch_size: int = 4, dim: int = 8, noise: float = 0.05,
            seed: int = 123, start: int = 0, stride: int = 1):
    """Deterministic per-epoch data (+ noise from the global RNG, drawn lazily as each batch is produced).

    ``start`` / ``stride`` select every ``stride``-th sample from ``start``, to shard one batch across ranks.
    """
    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    w = torch.linspace(-1, 1, dim * dim).reshape(dim, dim)
    for _ in range(n_batches):
        x = torch.randn(batch_size, dim, generator=g)
        c = torch.randint(0, 5, (batch_size,), generator=g)
        y = torch.tanh(x @ w) + 0.1 * c[:, None]
        if noise:
            x = x + noise * torch.randn_like(x)  # global RNG: augmentation that resume must replay exactly
        yield {"x": x[start::stride], "y": y[start::stride], "c": c[start::stride]}


class EpochDataset(torch.utils.data.Dataset):
    """Map-style data whose augmentation depends on the epoch set by the loader's caller."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([float(i), float(self.epoch)])


class CountingStatefulData:
    """Iterable with state_dict/load_state_dict: resuming must not replay it."""

    def __init__(self) -> None:
        self.pos, self.produced = 0, 0

    def __iter__(self):
        while self.pos < 5:
            self.pos += 1
            self.produced += 1
            yield torch.tensor([self.pos])
        self.pos = 0

    def state_dict(self) -> dict:
        return {"pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.pos = state["pos"]
