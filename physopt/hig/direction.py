"""The functional core of HIG: the update direction J^<beta,kappa> g for one batch, through one of the routes.

A route turns (model, inputs, physics, args) into an object with

    y                       the physics output (b, ...), from the same forward pass as the derivatives,
    chunk_size              examples per vmap call that were used,
    coefficients(g, ...)    decomposes the Jacobian and returns coefficients w and the :class:`Spectrum`,
    apply_transpose(w)      maps w back to one tensor per trainable parameter,

so that  apply_transpose(coefficients(g)) = max(S)^beta V S^kappa U^T g  (HIG paper, Eq. 7). :data:`ROUTES` maps a
route name to its builder; a builder returns None where its route does not apply (``factored`` on a non-Linear
network). A new route is one module with a ``build`` function and one entry in :data:`ROUTES`.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Protocol

import torch
from torch import Tensor, nn

from . import dense, factored
from .decompositions import HalfInversionError, Spectrum, check_spectral_parameters, choose_decomposition
from .memory import decomposition_bytes
from .per_example import (JACOBIAN_ENGINES, Physics, check_batch_norm, check_inputs, resolve_engine, slice_examples,
                          trainable_parameters)
from ..validation import check_choice, check_integer

__all__ = ["HIGStats", "HIG_ROUTES", "ROUTES", "Route", "hig_direction", "loss_gradient"]

Loss = Callable[..., Tensor]


class Route(Protocol):
    """What :func:`hig_direction` needs from a route (see the module docstring)."""
    name: str
    y: Tensor
    chunk_size: int

    def coefficients(self, g: Tensor, *, kappa: float, beta: float, truncation: float,
                     dtype: torch.dtype) -> tuple[Tensor, Spectrum]: ...

    def apply_transpose(self, w: Tensor) -> dict[str, Tensor]: ...


#: route name -> builder(model, inputs, physics, args, *, chunk_size, memory_bound, extra_bytes, engine) -> Route|None
ROUTES: dict[str, Callable[..., Route | None]] = {
    "factored": factored.build,
    "gram": dense.build_gram,
    "svd": dense.build_svd,
}
#: what ``auto`` tries, by the decomposition a wide (gram) or tall (svd) Jacobian calls for, first that applies wins
AUTO = {"gram": ("factored", "gram"), "svd": ("svd",)}
HIG_ROUTES = ("auto", *ROUTES)


@dataclasses.dataclass
class HIGStats:
    """What one step did: route, chunk size, the shape of J, how many singular values were kept, and timings (s) of
    its parts, measured only when asked for (``profile=True``: a device sync between parts; else None)."""
    route: str
    rows: int
    cols: int
    chunk_size: int
    kept: int
    condition: float
    loss: float
    jacobian_s: float | None
    decomposition_s: float | None
    apply_s: float | None
    loss_after: float | None = None   # the batch loss after the step (HIG's guard evaluates it)
    lr_scale: float = 1.0             # < 1 when the guard had to shrink the step (see HIG's max_loss_increase)
    engine: str = "expand"            # how the per-example derivatives were computed (expand | vmap)


def _sync(device: torch.device, profile: bool = True) -> float:
    """The time after the device's queued work (a sync on CUDA); without ``profile`` no sync and 0."""
    if not profile:
        return 0.0
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def loss_gradient(loss: Loss, y: Tensor, args: tuple) -> tuple[Tensor, Tensor]:
    """g = dL/dy with L = mean_i L_i(y_i) (or the scalar ``loss`` returns), flattened example-major; and L (0-dim,
    detached)."""
    y = y.detach().requires_grad_(True)
    with torch.enable_grad():
        value = loss(y, *args)
        if value.dim() == 1 and value.shape[0] == y.shape[0]:
            value = value.mean()
        elif value.dim() != 0:
            raise ValueError(f"loss must return per-example losses of shape ({y.shape[0]},) or a scalar, got shape "
                             f"{tuple(value.shape)}")
        if not torch.isfinite(value):
            raise HalfInversionError(f"the loss is {value.item()} (NaN/inf): check the physics and the network output; "
                                     f"the weights were not changed")
        (g,) = torch.autograd.grad(value, y)
    return g.reshape(-1), value.detach()


def hig_direction(model: nn.Module, inputs: Tensor, physics: Physics, loss: Loss, *args: Any, kappa: float = -0.5,
                  beta: float = 0.0, truncation: float = 1e-6, route: str = "auto",
                  dtype: torch.dtype = torch.float64, memory_bound: int | None = None,
                  chunk_size: int | None = None, profile: bool = False,
                  jacobian: str = "auto") -> tuple[dict[str, Tensor], HIGStats]:
    """The functional core of :class:`physopt.HIG`: J^<beta,kappa> g per trainable parameter (not yet scaled by -eta).

    ``physics(model(inputs), *args) -> y`` (batched, vmap-safe), ``loss(y, *args) -> (b,)`` per-example losses.
    ``route``: ``auto`` (factored where it applies and J is wide, else gram for wide and svd for tall J) or one of
    :data:`ROUTES`. ``jacobian``: the engine of the per-example derivatives, ``auto`` (= ``expand``, one batched
    backward pass), ``expand`` or ``vmap`` (:mod:`physopt.hig.per_example`); both give the same direction to
    rounding. Returns the direction in ``dtype`` and the step's :class:`HIGStats` (``loss`` is the batch loss;
    the parts' times only with ``profile``, which syncs the device between them).
    """
    check_choice("route", route, HIG_ROUTES)
    check_spectral_parameters(kappa, beta, truncation)
    check_integer("chunk_size", chunk_size, low=1, optional=True)
    check_integer("memory_bound", memory_bound, low=1, optional=True)
    check_choice("dtype", dtype, (torch.float32, torch.float64))
    check_choice("jacobian", jacobian, JACOBIAN_ENGINES)
    params = trainable_parameters(model)
    check_inputs(inputs, next(iter(params.values())))
    check_batch_norm(model)
    device = next(iter(params.values())).device
    n_params = sum(p.numel() for p in params.values())
    t0 = _sync(device, profile)
    with torch.no_grad():   # b * |y| from one example, to pick the route and size its memory
        rows = physics(model(inputs[:1]), *slice_examples(args, 0, 1))[0].numel() * inputs.shape[0]
    candidates = AUTO[choose_decomposition(rows, n_params)] if route == "auto" else (route,)
    for name in candidates:
        built = ROUTES[name](model, inputs, physics, args, chunk_size=chunk_size, memory_bound=memory_bound,
                             extra_bytes=decomposition_bytes(name, rows, n_params), engine=jacobian)
        if built is not None:
            break
    else:
        raise ValueError("route='factored' needs a model whose trainable weights all sit in nn.Linear layers, "
                         "each applied once per forward to a (batch, features) input; use route='auto'")
    g, value = loss_gradient(loss, built.y, args)
    t1 = _sync(device, profile)
    w, spectrum = built.coefficients(g, kappa=kappa, beta=beta, truncation=truncation, dtype=dtype)
    t2 = _sync(device, profile)
    direction = built.apply_transpose(w)
    t3 = _sync(device, profile)
    times = (t1 - t0, t2 - t1, t3 - t2) if profile else (None, None, None)
    stats = HIGStats(spectrum.route, rows, n_params, built.chunk_size, spectrum.kept, spectrum.condition,
                     float(value), *times, engine=resolve_engine(jacobian))
    return direction, stats
