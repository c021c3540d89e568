"""Learning-rate schedules over a run's budget, for every bench method with a torch optimizer (``step.optimizer``).

A run's settings ``lr_schedule`` and ``lr_min`` (``--hparam hig.lr_schedule=cosine``) are the run's, like
``batch_size``: they never reach the optimizer's constructor. Before each step the learning rate of every parameter
group is set from the run's progress p in [0, 1] (iterations done / ``iterations``, or training seconds /
``time_budget``, whichever is further along):

* ``constant`` (the default): lr.
* ``cosine``: cosine annealing without restarts (Loshchilov & Hutter, SGDR, ICLR 2017),
  lr(p) = lr_min + (lr - lr_min) (1 + cos(pi p)) / 2, from lr at the start to ``lr_min`` (default 0) at the end.

The rate follows from the progress alone, so a run continued from its checkpoint steps with the rates the
uninterrupted run would have used.
"""
from __future__ import annotations

import math
from typing import Any

from physopt.validation import check_number

__all__ = ["SCHEDULES", "SCHEDULE_SETTINGS", "validate_schedule", "LearningRateSchedule"]

SCHEDULES = ("constant", "cosine")

#: the run settings (:data:`physopt.bench.methods.RUN_SETTINGS`) of a learning-rate schedule
SCHEDULE_SETTINGS = ("lr_schedule", "lr_min")


def validate_schedule(hparams: dict[str, Any]) -> None:
    """Reject an unknown ``lr_schedule``, an ``lr_min`` that is not a number in [0, lr), or an ``lr_min`` without a
    decaying schedule (it would be ignored)."""
    schedule = hparams.get("lr_schedule", "constant")
    if schedule not in SCHEDULES:
        raise ValueError(f"Invalid lr_schedule: {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if hparams.get("lr_min") is None:
        return
    if schedule == "constant":
        raise ValueError("lr_min is the end of a decaying schedule: give lr_schedule=cosine with it")
    lr_min = check_number("lr_min", hparams["lr_min"], low=0)
    if "lr" in hparams and lr_min >= hparams["lr"]:
        raise ValueError(f"Invalid lr_min: {lr_min:g}; it must be below lr = {hparams['lr']:g}")


class LearningRateSchedule:
    """Sets ``optimizer``'s learning rates from a run's progress (see the module docstring). The starting rates are
    read once, here, before a checkpoint can overwrite them with decayed ones."""

    def __init__(self, optimizer: Any, schedule: str = "constant", lr_min: float | None = None):
        validate_schedule({"lr_schedule": schedule, "lr_min": lr_min})
        self.optimizer, self.schedule, self.lr_min = optimizer, schedule, lr_min or 0.0
        self.start = [float(g["lr"]) for g in optimizer.param_groups]

    @property
    def active(self) -> bool:
        return self.schedule != "constant"

    def factor(self, progress: float) -> float:
        """(1 + cos(pi p)) / 2 for p clipped to [0, 1]; 1 for the constant schedule."""
        if not self.active:
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))

    def apply(self, progress: float) -> None:
        """lr_g = lr_min + (lr_g(start) - lr_min) * factor(progress) for every parameter group g."""
        if not self.active:
            return
        f = self.factor(progress)
        for group, lr in zip(self.optimizer.param_groups, self.start):
            group["lr"] = self.lr_min + (lr - self.lr_min) * f
