"""A minimal physics-informed training loop for the operator problems: Adam on the data-free loss."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .pdes import OperatorBatch, OperatorProblem

BatchSource = OperatorBatch | Callable[[int], OperatorBatch]


def training_step(problem: OperatorProblem, net: nn.Module, optimizer: torch.optim.Optimizer, batch: OperatorBatch,
                  engine: str = "zcs") -> float:
    """One step: forward, derivative fields by ``engine``, loss, backward, optimizer step. Returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    loss = problem.loss(net, batch, engine)
    loss.backward()
    optimizer.step()
    return loss.item()


def train(problem: OperatorProblem, net: nn.Module, batches: BatchSource, engine: str = "zcs", steps: int = 100,
          lr: float = 1e-3) -> list[float]:
    """Train ``net`` in place with Adam for ``steps`` steps; ``batches`` is a fixed batch or step -> batch.

    Returns the loss of every step (before its update).
    """
    if steps < 0 or lr <= 0:
        raise ValueError(f"train needs steps >= 0 and lr > 0, got steps={steps}, lr={lr}")
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    batch_at = batches if callable(batches) else (lambda _: batches)
    return [training_step(problem, net, optimizer, batch_at(i), engine) for i in range(steps)]
