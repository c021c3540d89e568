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

from . import dense, distributed, factored
from .decompositions import HalfInversionError, Spectrum, check_spectral_parameters, choose_decomposition
from .memory import decomposition_bytes
from .per_example import (JACOBIAN_ENGINES, Physics, PhysicsJacobian, check_batch_norm, check_inputs, probe_output,
                          resolve_engine, trainable_parameters, zero_jacobian_error)
from ..validation import check_choice, check_integer

__all__ = ["HIGStats", "HIG_ROUTES", "NONFINITE", "ROUTES", "Route", "hig_direction", "loss_gradient", "diagnose"]

Loss = Callable[..., Tensor]


class Route(Protocol):
    """What :func:`hig_direction` needs from a route (see the module docstring)."""
    name: str
    y: Tensor
    chunk_size: int

    def coefficients(self, g: Tensor, *, kappa: float, beta: float, truncation: float,
                     dtype: torch.dtype) -> tuple[Tensor, Spectrum]: ...

    def apply_transpose(self, w: Tensor) -> dict[str, Tensor]: ...

    @property
    def nonzero(self) -> Tensor: ...

    def tensors(self) -> list[Tensor]: ...


#: route name -> builder(model, inputs, physics, args, *, chunk_size, memory_bound, extra_bytes, engine, probe,
#: physics_jacobian)
#: -> Route | None  (probe: the physics output of the first example alone, if already computed)
ROUTES: dict[str, Callable[..., Route | None]] = {
    "factored": factored.build,
    "gram": dense.build_gram,
    "svd": dense.build_svd,
}
#: what ``auto`` tries, by the decomposition a wide (gram) or tall (svd) Jacobian calls for, first that applies wins
AUTO = {"gram": ("factored", "gram"), "svd": ("svd",)}
HIG_ROUTES = ("auto", *ROUTES)


#: what a step does when its direction is not finite (or its Jacobian is zero): ``raise`` (one host sync per step to
#: know) or ``skip`` (the weights stay as they are, decided on the device; no sync)
NONFINITE = ("raise", "skip")


@dataclasses.dataclass
class HIGStats:
    """What one step did: route, chunk size, the shape of J, the batch loss, whether the step was valid, and (with
    ``stats=True``) how many singular values were kept and the condition number of the kept part, and (with
    ``profile=True``, a device sync between parts) the timings (s) of its parts; else None.

    Without ``stats`` ``loss`` and ``ok`` are 0-dim tensors on the device: reading them (``float(s.loss)``,
    ``bool(s.ok)``) waits for the step, nothing else does."""
    route: str
    rows: int
    cols: int
    chunk_size: int
    kept: int | None
    condition: float | None
    loss: float | Tensor
    jacobian_s: float | None
    decomposition_s: float | None
    apply_s: float | None
    loss_after: float | None = None   # the batch loss after the step (HIG's guard evaluates it)
    lr_scale: float = 1.0             # < 1 when the guard had to shrink the step (see HIG's max_loss_increase)
    engine: str = "expand"            # how the per-example derivatives were computed (expand | vmap | supplied)
    ok: bool | Tensor = True          # False: NaN/inf in the step or a zero Jacobian (see HIG's on_nonfinite)


def _sync(device: torch.device, profile: bool = True) -> float:
    """The time after the device's queued work (a sync on CUDA); without ``profile`` no sync and 0."""
    if not profile:
        return 0.0
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def loss_gradient(loss: Loss, y: Tensor, args: tuple, check: bool = True) -> tuple[Tensor, Tensor]:
    """g = dL/dy with L = mean_i L_i(y_i) (or the scalar ``loss`` returns), flattened example-major; and L (0-dim,
    detached). ``check``: refuse a NaN/inf loss at once (a host sync)."""
    y = y.detach().requires_grad_(True)
    with torch.enable_grad():
        value = loss(y, *args)
        if value.dim() == 1 and value.shape[0] == y.shape[0]:
            value = value.mean()
        elif value.dim() != 0:
            raise ValueError(f"loss must return per-example losses of shape ({y.shape[0]},) or a scalar, got shape "
                             f"{tuple(value.shape)}")
        if check and not torch.isfinite(value):
            raise _nonfinite_loss(value)
        (g,) = torch.autograd.grad(value, y)
    return g.reshape(-1), value.detach()


def _nonfinite_loss(value: Tensor) -> HalfInversionError:
    return HalfInversionError(f"the loss is {value.item()} (NaN/inf): check the physics and the network output; the "
                              f"weights were not changed")


def _all_finite(tensors: list[Tensor]) -> Tensor:
    """0-dim bool on the device: every entry of every tensor is finite (no host sync)."""
    return torch.stack([torch.isfinite(t).all() for t in tensors]).all()


def diagnose(value: Tensor, route: Route, g: Tensor) -> Exception:
    """Why a step's direction is not finite (or zero), for the error: :func:`upstream_cause`, else an overflow of
    the half-inversion. Reads the tensors (host syncs): only called once a step is known to have failed."""
    return upstream_cause(value, route, g) or HalfInversionError(
        "the half-inverse overflowed (singular values spanning many orders of magnitude under kappa and beta): raise "
        "the truncation tau, or use exponents closer to 0; the weights were not changed")


def upstream_cause(value: Tensor, route: Route, g: Tensor) -> Exception | None:
    """The first of a NaN/inf loss, a zero Jacobian, NaN/inf in the Jacobian or in dL/dy, or None (host syncs)."""
    if not bool(torch.isfinite(value)):
        return _nonfinite_loss(value)
    if not bool(route.nonzero):
        return zero_jacobian_error("Jacobian of the physics output w.r.t. the network")
    if not bool(_all_finite(route.tensors())):
        return HalfInversionError("the Jacobian contains NaN/inf, so it cannot be half-inverted; check the physics "
                                  "and the network output for NaN (e.g. lower the learning rate); the weights were "
                                  "not changed")
    if not bool(torch.isfinite(g).all()):
        return HalfInversionError("the loss gradient dL/dy contains NaN/inf; check the loss function; the weights "
                                  "were not changed")
    return None


def hig_direction(model: nn.Module, inputs: Tensor, physics: Physics, loss: Loss, *args: Any, kappa: float = -0.5,
                  beta: float = 0.0, truncation: float = 1e-6, route: str = "auto",
                  dtype: torch.dtype = torch.float64, memory_bound: int | None = None,
                  chunk_size: int | None = None, profile: bool = False,
                  jacobian: str = "auto", stats: bool = False, on_nonfinite: str = "raise",
                  probe: Tensor | None = None, process_group: Any = None,
                  physics_jacobian: PhysicsJacobian | None = None) -> tuple[dict[str, Tensor], HIGStats]:
    """The functional core of :class:`physopt.HIG`: J^<beta,kappa> g per trainable parameter (not yet scaled by -eta).

    ``physics(model(inputs), *args) -> y`` (batched, vmap-safe), ``loss(y, *args) -> (b,)`` per-example losses.
    ``route``: ``auto`` (factored where it applies and J is wide, else gram for wide and svd for tall J) or one of
    :data:`ROUTES`. ``jacobian``: the engine of the per-example derivatives, ``auto`` (``supplied`` when
    ``physics_jacobian(x, *args) -> (y, dy/dx)`` is given, else ``expand``, one batched backward pass), ``expand``,
    ``vmap`` or ``supplied`` (:mod:`physopt.hig.per_example`); all give the same direction to rounding.
    ``stats``: also count the kept singular values and the condition number, as Python numbers (host syncs). ``on_nonfinite``: ``raise`` a :class:`HalfInversionError` (or :class:`JacobianError` for a zero Jacobian)
    when the step is not finite, after one host sync that checks everything at once; ``skip``: no sync, the
    returned ``stats.ok`` (a device flag) says whether the direction may be applied. ``probe``: the physics output
    of one example, (1, ...), from an earlier step with the same physics (its size and dtype plan the Jacobian);
    computed here when None (one more forward pass of one example). ``process_group``: this process holds one equal
    share of a global batch spread over the group's processes, and the direction is the global batch's
    (:mod:`physopt.hig.distributed`: routes ``factored`` and ``gram``; every process gets the same direction).
    Returns the direction in ``dtype`` and the step's :class:`HIGStats` (``loss`` is the batch loss; the parts'
    times only with ``profile``, which syncs the device between them).
    """
    check_choice("route", route, HIG_ROUTES)
    check_spectral_parameters(kappa, beta, truncation)
    check_integer("chunk_size", chunk_size, low=1, optional=True)
    check_integer("memory_bound", memory_bound, low=1, optional=True)
    check_choice("dtype", dtype, (torch.float32, torch.float64))
    check_choice("jacobian", jacobian, JACOBIAN_ENGINES)
    engine = resolve_engine(jacobian, physics_jacobian is not None)
    check_choice("on_nonfinite", on_nonfinite, NONFINITE)
    params = trainable_parameters(model)
    check_inputs(inputs, next(iter(params.values())))
    check_batch_norm(model)
    world = 1
    if process_group is not None:
        world = distributed.check_group(process_group)
        if route == "svd":
            raise ValueError("route='svd' is not distributed; use route='gram' or 'factored' ('auto' picks them)")
        distributed.check_same_shapes("inputs", inputs, process_group)
    device = next(iter(params.values())).device
    n_params = sum(p.numel() for p in params.values())
    t0 = _sync(device, profile)
    if probe is None:    # y of one example: b |y| picks the route and sizes the memory
        probe = probe_output(model, inputs, physics, args)
    rows = probe[0].numel() * inputs.shape[0]
    candidates = AUTO[choose_decomposition(rows, n_params)] if route == "auto" else (route,)
    if process_group is not None and route == "auto":
        candidates = AUTO["gram"]             # the Gram decomposition over all processes' rows, whatever the shape
    for name in candidates:
        built = ROUTES[name](model, inputs, physics, args, chunk_size=chunk_size, memory_bound=memory_bound,
                             extra_bytes=decomposition_bytes(name, rows, n_params), engine=jacobian, probe=probe,
                             physics_jacobian=physics_jacobian)
        if built is not None:
            break
    else:
        raise ValueError("route='factored' needs a model whose trainable weights all sit in nn.Linear layers, "
                         "each applied once per forward to a (batch, features) input; use route='auto'")
    g, value = loss_gradient(loss, built.y, args, check=False)
    if process_group is not None:
        built = distributed.DistributedRoute(built, process_group)
        value = distributed.all_reduce_mean(value, process_group)
        rows *= world
    t1 = _sync(device, profile)
    try:
        w, spectrum = built.coefficients(g, kappa=kappa, beta=beta, truncation=truncation, dtype=dtype)
    except HalfInversionError as err:   # e.g. LAPACK on a NaN Gram matrix: name the cause if it came from upstream
        raise (upstream_cause(value, built, g) or err) from err
    t2 = _sync(device, profile)
    direction = built.apply_transpose(w)
    t3 = _sync(device, profile)
    ok = torch.isfinite(value) & built.nonzero & _all_finite(list(direction.values()))
    if on_nonfinite == "raise" and not bool(ok):
        raise diagnose(value, built, g)
    times = (t1 - t0, t2 - t1, t3 - t2) if profile else (None, None, None)
    counted = stats or profile
    result = HIGStats(spectrum.route, rows, n_params, built.chunk_size, spectrum.kept if counted else None,
                      spectrum.condition if counted else None, float(value) if counted else value, *times,
                      engine=engine, ok=bool(ok) if counted else ok)
    return direction, result
