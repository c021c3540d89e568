"""A problem from plain functions (:func:`from_functions`), for users who do not want to subclass
:class:`problems.Problem`: their own physics behind the one problem interface, so every optimizer and command works
on it."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

from .base import Batch, Problem, ProblemConfig, ProblemError, described
from .registry import NAME, PROBLEMS, register, registered
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
    if not isinstance(name, str) or not NAME.fullmatch(name.strip()):
        raise ValueError(f"from_functions: name must be a string of letters, digits, '-', '_' and '.' starting with "
                         f"a letter or digit (it names files and directories), e.g. 'my-problem'; got {name!r}")
    if x_shape is not None and not (isinstance(x_shape, tuple) and all(isinstance(n, int) and n >= 1
                                                                        for n in x_shape)):
        raise ValueError(f"from_functions: x_shape must be a tuple of positive integers, got {x_shape!r}")
    shape: list[tuple[int, ...]] = [x_shape] if x_shape is not None else []
    checked: list[bool] = []                        # whether sample() was seen to draw from its generator

    def as_batch(self: Problem, out: Any, batch_size: int) -> Batch:
        """sample()'s output as the Batch on the problem's device and dtype, checked."""
        if isinstance(out, Batch):
            for field, t in zip(out._fields, out):
                if t is not None or field != "x_true":
                    _check_data(name, f"the Batch's {field}", t, batch_size)
            if out.x_true is not None and not shape:
                shape.append(tuple(out.x_true.shape[1:]))
            return Batch(*(None if t is None else t.detach() for t in out)).to(self.device, self.dtype)
        _check_data(name, "x*", out, batch_size)
        if not shape:
            shape.append(tuple(out.shape[1:]))
        elif tuple(out.shape[1:]) != shape[0]:
            raise ProblemError(f"{name}: sample({batch_size}, generator) returned x* of shape {tuple(out.shape)}, but "
                               f"x_shape is {shape[0]}: make them agree")
        x = out.detach().to(self.device, self.dtype)
        y = self.forward(x, None)
        if not torch.isfinite(y).all():
            raise ProblemError(f"{name}: physics(x*) of the sampled x* contains NaN/inf, so there is no data to fit; "
                               f"check the physics, or draw x* where it is finite")
        return Batch(inputs=y, target=y, x_true=x)

    def draw(self: Problem, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        state = generator.get_state() if generator is not None and not checked else None
        batch = as_batch(self, sample(batch_size, generator), batch_size)
        if state is not None:                       # once: the same generator state must give the same data
            twin = torch.Generator(device=generator.device)
            twin.set_state(state)
            again = as_batch(self, sample(batch_size, twin), batch_size)
            if not all((a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
                       for a, b in zip(batch, again)):
                raise ProblemError(f"{name}: sample() gave other data for the same generator state: draw every random "
                                   f"number from the generator it is given (torch.rand(..., generator=generator)), so "
                                   f"every optimizer sees the same data and the held-out set stays the same")
            checked.append(True)
        return batch

    def forward(self: Problem, x: Tensor, batch: Batch | None) -> Tensor:
        y = physics(x)                              # its shape and dtype are checked by Problem's wrapper
        if isinstance(y, Tensor) and x.requires_grad and torch.is_grad_enabled() and not y.requires_grad:
            raise ProblemError(f"{name}: physics(x) is not differentiable: its output does not depend on x through "
                               f"torch operations (a .detach(), .item() or numpy inside?); write it in torch")
        return y

    def x_shape_of(self: Problem) -> tuple[int, ...]:
        if not shape:
            out = sample(1, torch.Generator().manual_seed(0))
            if isinstance(out, Batch) and out.x_true is None:
                raise ProblemError(f"{name}: sample() returns a Batch without x_true, so the shape of x is not known: "
                                   f"give from_functions x_shape=(...)")
            shape.append(tuple((out.x_true if isinstance(out, Batch) else out).shape[1:]))
        return shape[0]

    def default_network(self: Problem) -> nn.Module:
        net = network()
        if not isinstance(net, nn.Module):
            raise ProblemError(f"{name}: network() must return a torch.nn.Module (fresh weights each call), got "
                               f"{type(net).__name__}")
        return net.to(self.device, self.dtype)

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
            return loss(y, batch.target)            # one value per example: checked by Problem's wrapper
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
    before = registered(cls.name)
    if register_name and getattr(before, "_from_functions", False):
        del PROBLEMS[before.name]                   # made again (a re-run notebook cell, a reloaded module)
    return register(cls) if register_name else cls


def _check_data(problem: str, what: str, t: Any, batch_size: int) -> None:
    """ProblemError unless ``t`` (what sample() returned) is a finite floating-point tensor of batch_size examples."""
    if not isinstance(t, Tensor) or not t.is_floating_point() or t.dim() < 1 or t.shape[0] != batch_size:
        raise ProblemError(f"{problem}: sample({batch_size}, generator) must return x* as a floating-point tensor "
                           f"of shape ({batch_size}, *x_shape) (or a problems.Batch of such tensors); {what} has "
                           f"{described(t, dtype=True)}")
    if not torch.isfinite(t).all():
        raise ProblemError(f"{problem}: sample({batch_size}, generator) returned {what} with NaN/inf entries")
