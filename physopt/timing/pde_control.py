"""Inference time per task of the PDE-control schemes and of single shooting (the paper's Table 1, right column),
on the shared timing kernel: all held-out tasks in one batch, milliseconds per task."""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from physopt.bench.pde_control import TablePlan
from problems.pde_control.schemes import execute
from problems.pde_control.setup import ControlSetup
from problems.pde_control.training import shoot

from .kernel import time_call

__all__ = ["time_inference"]


def time_inference(test: Any, setup: ControlSetup, models: dict[str, tuple[str, nn.Module]],
                   plan: TablePlan, device: str | torch.device = "cpu") -> dict[str, float]:
    """Median milliseconds per task of every model's scheme and of shooting for each iteration count, all held-out
    tasks in one batch on ``device`` (the models are copied there)."""
    device = torch.device(device)
    initial, target = test.initial.to(device), test.target.to(device)
    tasks = initial.shape[0]
    calls: dict[str, Any] = {}
    for key, (scheme, model) in models.items():
        on_device = copy.deepcopy(model).to(device)
        calls[key] = lambda scheme=scheme, model=on_device: execute(scheme, model, initial, target, setup)
    for its in plan.shooting_iterations:
        calls[f"shooting/{its}"] = lambda its=its: shoot(initial, target, setup, its, plan.shooting_lr)
    times = {}
    for key, fn in calls.items():
        grad = torch.enable_grad() if key.startswith("shooting") else torch.no_grad()
        with grad:
            timing = time_call(fn, device, min_runs=3)
        times[key] = 1e3 * timing.median_s / tasks
    return times
