"""A problem from plain functions (:func:`from_functions`), for users who do not want to subclass
:class:`problems.Problem`: their own physics behind the one problem interface, so every optimizer and command works
on it."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

from .base import Batch, Problem, ProblemConfig, ProblemError
from .registry import PROBLEMS, register
from .settings import BenchmarkSettings

Sample = Callable[[int, "torch.Generator | None"], "Tensor | Batch"]


def from_functions(name: str, *, sample: Sample, physics: Callable[[Tensor], Tensor],
                   network: Callable[[], nn.Module], loss: Callable[[Tensor, Tensor], Tensor] | None = None,
                   x_error: Callable[[Tensor, Tensor], Tensor] | None = None,
                   inverse: Callable[[Tensor, Tensor], Tensor] | None = None, x_shape: tuple[int, ...] | None = None,
                   description: str = "", benchmark: BenchmarkSettings | None = None,
                   register_name: bool = True) -> type[Problem]:
    """A :class:`problems.Problem` class made of functions (registered under ``name`` unless ``register_name`` is
    False), so ``get_problem(name)``, ``physopt compare name --import mymodule`` and ``physopt compare
    mymodule:MyProblem`` work on it.

    Args:
        sample: ``sample(batch_size, generator) -> x*`` of shape (B, *x_shape), the ground-truth solutions drawn
            with the CPU ``generator``; the data is y* = physics(x*), which the network sees and the loss fits.
            Data posed otherwise: return a :class:`problems.Batch` (inputs, target, x_true) instead.
        physics: ``physics(x) -> y``, batched over the leading dimension; differentiable torch (and vmap-safe for
            HIG and Gauss-Newton).
        network: ``network() -> nn.Module`` mapping the inputs (B, ...) to x (B, *x_shape), fresh weights from
            torch's global RNG.
        loss: ``loss(y, y*) -> (B,)`` per-example loss; default L_i = 1/2 ||y_i - y*_i||^2.
        x_error: ``x_error(x, x*) -> (B,)``; default ||x_i - x*_i||_1.
        inverse: the SIP physics update ``inverse(x, y*) -> dx`` (SIP paper Sec. 3.2), e.g.
            ``physopt.NewtonUpdate(physics)`` or ``physopt.GaussNewtonUpdate(physics)``; None: no SIP.
        x_shape: shape of one solution; default: that of ``sample(1, ...)``.
        benchmark: the benchmark settings (default: Adam, SGD and, with an inverse, SIP at batch 32, derived
            presets).
    """
    for what, fn in (("sample", sample), ("physics", physics), ("network", network), ("loss", loss),
                     ("x_error", x_error), ("inverse", inverse)):
        if fn is not None and not callable(fn):
            raise TypeError(f"from_functions: {what} must be a function, got {type(fn).__name__}")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"from_functions: name must be a non-empty string, got {name!r}")
    if x_shape is not None and not (isinstance(x_shape, tuple) and all(isinstance(n, int) and n >= 1
                                                                        for n in x_shape)):
        raise ValueError(f"from_functions: x_shape must be a tuple of positive integers, got {x_shape!r}")
    shape: list[tuple[int, ...]] = [x_shape] if x_shape is not None else []

    def draw(self: Problem, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        out = sample(batch_size, generator)
        if isinstance(out, Batch):
            return out.to(self.device, self.dtype)
        if not isinstance(out, Tensor) or not out.is_floating_point() or out.dim() < 1 or out.shape[0] != batch_size:
            got = f"shape {tuple(out.shape)}, dtype {out.dtype}" if isinstance(out, Tensor) else type(out).__name__
            raise ProblemError(f"{name}: sample({batch_size}, generator) must return x* as a floating-point tensor "
                               f"of shape ({batch_size}, *x_shape) (or a problems.Batch), got {got}")
        if not shape:
            shape.append(tuple(out.shape[1:]))
        x = out.to(self.device, self.dtype)
        y = self.forward(x, None)
        return Batch(inputs=y, target=y, x_true=x)

    def forward(self: Problem, x: Tensor, batch: Batch | None) -> Tensor:
        return physics(x)

    def x_shape_of(self: Problem) -> tuple[int, ...]:
        if not shape:
            shape.append(tuple(sample(1, torch.Generator().manual_seed(0)).shape[1:]))
        return shape[0]

    def default_network(self: Problem) -> nn.Module:
        return network().to(self.device, self.dtype)

    attrs: dict[str, Any] = {
        "__doc__": description or f"The problem '{name}', made by problems.from_functions.",
        "__module__": getattr(physics, "__module__", __name__),
        "name": name.strip(), "description": description or f"{name} (from functions)", "Config": ProblemConfig,
        "benchmark": benchmark if benchmark is not None else BenchmarkSettings(
            optimizers=("adam", "sgd", "sip") if inverse is not None else ("adam", "sgd")),
        "sample": draw, "forward": forward, "x_shape": property(x_shape_of), "default_network": default_network,
        "_from_functions": True,
    }
    if loss is not None:
        def problem_loss(self: Problem, y: Tensor, batch: Batch) -> Tensor:
            return loss(y, batch.target)
        attrs["loss"] = problem_loss
    if x_error is not None:
        def problem_x_error(self: Problem, x: Tensor, batch: Batch) -> Tensor | None:
            return None if batch.x_true is None else x_error(x, batch.x_true)
        attrs["x_error"] = problem_x_error
    if inverse is not None:
        def inverse_update(self: Problem, x: Tensor, batch: Batch) -> Tensor:
            self.check_prediction(x, batch)
            return inverse(x, batch.target)
        attrs["inverse_update"] = inverse_update
    cls = type(f"{''.join(p.capitalize() for p in name.replace('-', '_').split('_'))}Problem", (Problem,), attrs)
    if register_name and getattr(PROBLEMS.get(cls.name), "_from_functions", False):
        del PROBLEMS[cls.name]                      # made again (a re-run notebook cell, a reloaded module)
    return register(cls) if register_name else cls
