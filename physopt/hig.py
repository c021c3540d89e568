"""Half-inverse gradients (HIG) and Gauss-Newton for networks trained through a differentiable physics solver.

Schnell, Holl & Thuerey, "Half-Inverse Gradients for Physical Deep Learning", ICLR 2022, Eq. 7:

    dtheta = -eta * J^<beta,kappa> g,    J = [dy_1/dtheta; ...; dy_b/dtheta],   g = [dL/dy_1; ...; dL/dy_b],
    J^<beta,kappa> = max(S)^beta V S^kappa U^T   (J = U S V^T, singular values <= tau * max(S) dropped),

with y_i = P(NN(inputs_i | theta)) the physics output of example i and L = (1/b) sum_i L_i(y_i) the batch loss.
kappa = -1/2 (HIG, default), kappa = -1 (Gauss-Newton, :class:`GaussNewton`), kappa = 1 (gradient descent).
There is no momentum: each step is optimal for its batch (paper Sec. 2.2).

Cost: per-example Jacobians (:mod:`physopt.jacobian`) plus a half-inversion (:mod:`physopt.linalg`); the route is
picked automatically: ``factored`` (networks of Linear layers: Gram matrix from per-layer factors), ``gram``
(J J^T + symmetric eigendecomposition, when b|y| < |theta|) or ``svd`` (thin SVD of J, the paper's reference).
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable

import torch
from torch import Tensor, nn

from .jacobian import Physics, linear_factors, per_example_jacobian, slice_examples, trainable_parameters
from .linalg import (HalfInversionError, choose_route, factored_gram, factored_jt_vector, gram_coefficients,
                     half_inverse)

HIG_ROUTES = ("auto", "factored", "gram", "svd")
Loss = Callable[..., Tensor]


@dataclasses.dataclass
class HIGStats:
    """What one step did: route, chunk size, the shape of J, how many singular values were kept, and timings (s)."""
    route: str
    rows: int
    cols: int
    chunk_size: int
    kept: int
    condition: float
    loss: float
    jacobian_s: float
    decomposition_s: float
    apply_s: float


def _sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _decomposition_bytes(route: str, rows: int, cols: int) -> int:
    """Float64 working memory of the half-inversion beyond the Jacobian itself."""
    if route == "svd":
        return 8 * (2 * rows * cols + rows * rows)
    return 8 * 4 * rows * rows


def loss_gradient(loss: Loss, y: Tensor, args: tuple) -> tuple[Tensor, float]:
    """g = dL/dy with L = mean_i L_i(y_i) (or the scalar ``loss`` returns), flattened example-major; and L."""
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
    return g.reshape(-1), value.item()


def hig_direction(model: nn.Module, inputs: Tensor, physics: Physics, loss: Loss, *args: Any, kappa: float = -0.5,
                  beta: float = 0.0, truncation: float = 1e-6, route: str = "auto",
                  dtype: torch.dtype = torch.float64, memory_bound: int | None = None,
                  chunk_size: int | None = None) -> tuple[dict[str, Tensor], HIGStats]:
    """The functional core of :class:`HIG`: J^<beta,kappa> g per trainable parameter (not yet scaled by -eta).

    ``physics(model(inputs), *args) -> y`` (batched, vmap-safe), ``loss(y, *args) -> (b,)`` per-example losses.
    """
    if route not in HIG_ROUTES:
        raise ValueError(f"unknown HIG route '{route}'; choose one of {HIG_ROUTES}")
    params = trainable_parameters(model)
    device = next(iter(params.values())).device
    n_params = sum(p.numel() for p in params.values())
    t0 = _sync(device)
    with torch.no_grad():   # b * |y| from one example, to pick the route and size its memory
        rows = physics(model(inputs[:1]), *slice_examples(args, 0, 1))[0].numel() * inputs.shape[0]
    decomposition = route if route in ("gram", "svd") else choose_route(rows, n_params)
    factored = None
    if route == "factored" or (route == "auto" and decomposition == "gram"):
        factored = linear_factors(model, inputs, physics, *args, chunk_size=chunk_size, memory_bound=memory_bound,
                                  extra_bytes=_decomposition_bytes("gram", rows, n_params))
        if factored is None and route == "factored":
            raise ValueError("route='factored' needs a model whose trainable weights all sit in nn.Linear layers, "
                             "each applied once per forward to a (batch, features) input; use route='auto'")
    if factored is not None:
        m = factored.y[0].numel()
        g, value = loss_gradient(loss, factored.y, args)
        t1 = _sync(device)
        G = factored_gram(factored.factors, m, dtype)
        w, spectrum = gram_coefficients(G, g, kappa=kappa, beta=beta, truncation=truncation, dtype=dtype)
        spectrum.route = "factored"
        t2 = _sync(device)
        direction = factored_jt_vector(factored.factors, w, m)
        chunk = factored.chunk_size
    else:
        stacked = per_example_jacobian(model, inputs, physics, *args, chunk_size=chunk_size, memory_bound=memory_bound,
                                       extra_bytes=_decomposition_bytes(decomposition, rows, n_params))
        g, value = loss_gradient(loss, stacked.y, args)
        t1 = _sync(device)
        flat, spectrum = half_inverse(stacked.J, g, kappa=kappa, beta=beta, truncation=truncation,
                                      route=decomposition, dtype=dtype)
        t2 = _sync(device)
        direction = stacked.unflatten(flat)
        chunk = stacked.chunk_size
    t3 = _sync(device)
    stats = HIGStats(spectrum.route, rows, n_params, chunk, spectrum.kept, spectrum.condition, value,
                     t1 - t0, t2 - t1, t3 - t2)
    return direction, stats


def _check_number(name: str, value: Any, low: float | None = None, low_inclusive: bool = True,
                  high: float | None = None) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (v < low or (v == low and not low_inclusive)):
        raise ValueError(f"{name} must be {'>=' if low_inclusive else '>'} {low}, got {value}")
    if high is not None and v >= high:
        raise ValueError(f"{name} must be < {high}, got {value}")
    return v


class HIG(torch.optim.Optimizer):
    r"""Half-inverse gradients:  theta <- theta - lr * max(S)^beta V S^kappa U^T g  (HIG paper, Eq. 7).

    Replaces Adam in a loop that trains ``model`` through a differentiable ``physics``::

        opt = physopt.HIG(net, physics=problem.forward, loss=problem.loss, lr=1.0, truncation=1e-6)
        for batch in data:
            loss = opt.step(batch.inputs, batch)     # y_i = physics(net(inputs_i), batch_i), L_i = loss(y, batch)

    Args:
        model: the network (any ``nn.Module`` without cross-example coupling such as BatchNorm in training mode).
        physics: ``physics(x, *args) -> y``, batched over dim 0, differentiable and ``torch.func.vmap``-safe.
        loss: ``loss(y, *args) -> (b,)`` per-example losses (the batch loss is their mean) or a scalar.
        lr: eta. The paper uses 1 for most problems (0.5 quantum dipole, 0.01-0.02 Poisson).
        truncation: relative tau in [0, 1): singular values <= tau * max(S) are dropped.
        kappa: singular-value exponent (-1/2 HIG, -1 Gauss-Newton, 1 gradient descent).
        beta: the update is scaled by max(S)^beta.
        route: ``auto`` | ``factored`` | ``gram`` | ``svd`` (see :mod:`physopt.linalg`).
        decomposition_dtype: precision of the half-inversion (float64 by default: the Gram route squares the
            condition number).
        memory_bound: bytes the Jacobian and its decomposition may use; the per-example Jacobian is then computed in
            chunks small enough to fit (None: all examples at once).
        chunk_size: force the number of examples per vmap call.

    ``step(inputs, *args)`` returns the batch loss before the update; ``last_stats`` holds a :class:`HIGStats`.
    Every tensor in ``args`` is split per example along dim 0. On NaN/inf anywhere the step raises
    :class:`physopt.linalg.HalfInversionError` and leaves the weights unchanged.
    """

    def __init__(self, model: nn.Module, physics: Physics, loss: Loss, lr: float = 1.0, truncation: float = 1e-6,
                 kappa: float = -0.5, beta: float = 0.0, *, route: str = "auto",
                 decomposition_dtype: torch.dtype = torch.float64, memory_bound: int | None = None,
                 chunk_size: int | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"{type(self).__name__} needs the model (an nn.Module), not {type(model).__name__}: it "
                            f"evaluates per-example Jacobians with torch.func.functional_call(model, ...)")
        if not callable(physics) or not callable(loss):
            raise TypeError("physics and loss must be callables: physics(x, *args) -> y, loss(y, *args) -> (b,)")
        if route not in HIG_ROUTES:
            raise ValueError(f"unknown route '{route}'; choose one of {HIG_ROUTES}")
        if memory_bound is not None and _check_number("memory_bound", memory_bound, 0, False) <= 0:
            raise ValueError(f"memory_bound must be > 0 bytes, got {memory_bound}")
        if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
            raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size}")
        if decomposition_dtype not in (torch.float32, torch.float64):
            raise ValueError(f"decomposition_dtype must be torch.float32 or torch.float64, got {decomposition_dtype}")
        defaults = dict(lr=_check_number("lr", lr, 0, False), truncation=_check_number("truncation", truncation, 0,
                                                                                       True, 1.0),
                        kappa=_check_number("kappa", kappa), beta=_check_number("beta", beta))
        super().__init__(list(trainable_parameters(model).values()), defaults)
        self.model, self.physics, self.loss = model, physics, loss
        self.route, self.decomposition_dtype = route, decomposition_dtype
        self.memory_bound = None if memory_bound is None else int(memory_bound)
        self.chunk_size = chunk_size
        self.last_stats: HIGStats | None = None

    def step(self, inputs: Tensor, *args: Any) -> float:  # type: ignore[override]
        """One update on the batch (``inputs``, ``args``); returns the batch loss before the update."""
        if len(self.param_groups) != 1:
            raise ValueError(f"{type(self).__name__} half-inverts one Jacobian over all weights, so it takes exactly "
                             f"one parameter group, got {len(self.param_groups)}")
        group = self.param_groups[0]
        for key in ("lr", "truncation", "kappa", "beta"):   # a scheduler or a user may have changed them
            _check_number(key, group[key], 0 if key in ("lr", "truncation") else None, key != "lr")
        direction, stats = hig_direction(self.model, inputs, self.physics, self.loss, *args, kappa=group["kappa"],
                                         beta=group["beta"], truncation=group["truncation"], route=self.route,
                                         dtype=self.decomposition_dtype, memory_bound=self.memory_bound,
                                         chunk_size=self.chunk_size)
        named = trainable_parameters(self.model)
        if set(named) != set(direction):
            raise RuntimeError("the model's trainable parameters changed since the optimizer was built")
        if not all(torch.isfinite(d).all() for d in direction.values()):
            raise HalfInversionError("the update contains NaN/inf; the weights were not changed")
        t = time.perf_counter()
        with torch.no_grad():
            for name, p in named.items():
                p.add_(direction[name].to(p.dtype), alpha=-group["lr"])
        stats.apply_s += _sync(p.device) - t
        self.last_stats = stats
        return stats.loss


class GaussNewton(HIG):
    """Gauss-Newton on mini-batches: :class:`HIG` with kappa = -1, i.e. theta <- theta - lr * J^+_tau g, the truncated
    pseudo-inverse (the HIG paper's GN baseline, lr 1)."""

    def __init__(self, model: nn.Module, physics: Physics, loss: Loss, lr: float = 1.0, truncation: float = 1e-6,
                 kappa: float = -1.0, beta: float = 0.0, **kwargs: Any):
        super().__init__(model, physics, loss, lr, truncation, kappa, beta, **kwargs)
