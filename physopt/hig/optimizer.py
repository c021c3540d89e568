"""Half-inverse gradients (HIG) and Gauss-Newton as torch optimizers.

Schnell, Holl & Thuerey, "Half-Inverse Gradients for Physical Deep Learning", ICLR 2022, Eq. 7:

    dtheta = -eta * J^<beta,kappa> g,    J = [dy_1/dtheta; ...; dy_b/dtheta],   g = [dL/dy_1; ...; dL/dy_b],
    J^<beta,kappa> = max(S)^beta V S^kappa U^T   (J = U S V^T, singular values <= tau * max(S) dropped),

with y_i = P(NN(inputs_i | theta)) the physics output of example i and L = (1/b) sum_i L_i(y_i) the batch loss.
kappa = -1/2 (HIG, default), kappa = -1 (Gauss-Newton, :class:`GaussNewton`), kappa = 1 (gradient descent).
There is no momentum: each step is optimal for its batch (paper Sec. 2.2). The direction comes from
:func:`physopt.hig.direction.hig_direction`; this module only validates, applies and records it.
"""
from __future__ import annotations

import math
import time
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from ..validation import check_choice, check_integer, check_number
from .decompositions import HalfInversionError
from .distributed import all_reduce_mean, check_group, check_same_weights
from .direction import HIG_ROUTES, NONFINITE, HIGStats, Loss, _sync, hig_direction
from .per_example import (JACOBIAN_ENGINES, JacobianError, Physics, PhysicsJacobian, check_batch_norm, check_inputs,
                          probe_output, resolve_engine, trainable_parameters)

__all__ = ["HIG", "GaussNewton"]


def _check_group(group: dict[str, Any]) -> dict[str, float]:
    """The HIG hyperparameters of a parameter group, validated (a scheduler or a user may have changed them)."""
    return dict(lr=check_number("lr", group["lr"], low=0, low_inclusive=False),
                truncation=check_number("truncation", group["truncation"], low=0, high=1),
                kappa=check_number("kappa", group["kappa"]), beta=check_number("beta", group["beta"]))


class HIG(torch.optim.Optimizer):
    r"""Half-inverse gradients:  theta <- theta - lr * max(S)^beta V S^kappa U^T g  (HIG paper, Eq. 7).

    Replaces Adam in a loop that trains ``model`` through a differentiable ``physics``::

        opt = physopt.HIG(net, physics=problem.forward, loss=problem.loss, lr=1.0, truncation=1e-6)
        for batch in data:
            loss = opt.step(batch.inputs, batch)     # y_i = physics(net(inputs_i), batch_i), L_i = loss(y, batch)

    Args:
        model: the network (any ``nn.Module`` without cross-example coupling such as BatchNorm in training mode).
        physics: ``physics(x, *args) -> y``, batched over dim 0 with independent examples, differentiable (and
            ``torch.func.vmap``-safe for ``jacobian='vmap'``).
        loss: ``loss(y, *args) -> (b,)`` per-example losses (the batch loss is their mean) or a scalar.
        lr: eta. The paper uses 1 for most problems (0.5 quantum dipole, 0.01-0.02 Poisson).
        truncation: relative tau in [0, 1): singular values <= tau * max(S) are dropped.
        kappa: singular-value exponent (-1/2 HIG, -1 Gauss-Newton, 1 gradient descent).
        beta: the update is scaled by max(S)^beta.
        route: ``auto`` | ``factored`` | ``gram`` | ``svd`` (see :mod:`physopt.hig.direction`).
        decomposition_dtype: precision of the half-inversion (float64 by default: the Gram route squares the
            condition number).
        memory_bound: bytes the Jacobian and its decomposition may use; the per-example Jacobian is then computed in
            chunks small enough to fit (None: all examples at once).
        chunk_size: force the number of examples per vmap call.
        max_loss_increase: guard against a step that blows up (e.g. truncation=0 on an ill-conditioned physics):
            after the update the batch loss is evaluated again (one forward pass); if it is not finite or more than
            ``max_loss_increase`` times the loss before, the update is retried with lr scaled by 0.1, 0.01, ...
            (up to 1e-10), a ``RuntimeWarning`` says so and ``last_stats.lr_scale`` records the factor; if none
            helps the step is undone and raises :class:`physopt.HalfInversionError`. None switches the guard off.
        jacobian: how the per-example Jacobian is computed: ``auto`` (``supplied`` when ``physics_jacobian`` is
            given, else ``expand``), ``expand`` (every example repeated |y| times and one batched backward pass with
            one-hot cotangents; only torch.autograd, no vmap through the physics), ``vmap``
            (``torch.func.vmap(jacrev)``) or ``supplied`` (``physics_jacobian``'s dy/dx pulled back through the
            network alone); the same update to rounding (:mod:`physopt.hig.per_example`).
        physics_jacobian: the physics' own Jacobian, ``physics_jacobian(x, *args) -> (y, dy/dx)`` with y as
            ``physics`` returns it, (b, *y_shape), and dy/dx of shape (b, *y_shape, *x_shape), e.g. in closed form
            (a problem's :meth:`problems.Problem.physics_jacobian`); then the physics never runs under autograd in
            the step. Must be the derivative of ``physics``: the guard and the loss evaluations still call ``physics``.
        profile: time the parts of each step (Jacobian, decomposition, apply) in ``last_stats``, with a device sync
            between them; off by default, so a step adds no syncs for timing.
        stats: record in ``last_stats`` how many singular values were kept and the condition number of the kept
            part, and the loss as a Python float (host syncs); off by default (``last_stats.loss`` is then a 0-dim
            tensor on the device).
        on_nonfinite: ``raise`` (default): NaN/inf anywhere in the step (or a zero Jacobian) raises
            :class:`physopt.HalfInversionError` (:class:`physopt.JacobianError`) naming the cause and leaves the
            weights unchanged; finding out costs one host sync per step. ``skip``: no sync; such a step leaves the
            weights unchanged on the device, ``last_stats.ok`` is False and ``skipped_steps`` (a device tensor)
            counts it: read it where you log.
        compile_physics: run ``physics`` under ``torch.compile`` (True, or a dict of ``torch.compile`` options),
            falling back to the eager function with a one-time warning where compiling fails
            (:func:`physopt.compiled_physics`): fewer, fused kernels per step; compiling takes seconds to minutes
            once per input shape (the Jacobian's b |y| rows, the guard's b and the first step's one-example
            probe are three).
        process_group: spread the batch over the processes of this ``torch.distributed`` group (e.g.
            ``torch.distributed.group.WORLD``): each process steps with its own equal share of the global batch, and
            every process applies the update single-process HIG computes on the union of the shares
            (:mod:`physopt.hig.distributed`; memory per process: its own Jacobian rows and the Gram matrix of all
            rows). The first step checks that the weights agree on every process; the guard's loss is the global
            batch's.

    A step makes no host-device sync of its own with ``stats=False``, ``profile=False``, ``max_loss_increase=None``
    and ``on_nonfinite='skip'`` (tested by intercepting every host read); the guard needs the loss after the step on
    the host, and torch's eigendecomposition checks its convergence flag on the host on CUDA.

    ``step(inputs, *args)`` returns the batch loss before the update; ``last_stats`` holds a :class:`HIGStats`.
    Every tensor in ``args`` is split per example along dim 0. On NaN/inf anywhere the step raises
    :class:`physopt.HalfInversionError` and leaves the weights unchanged. lr, truncation, kappa and beta are
    validated again at every step (a scheduler or a user may change them in ``param_groups``).
    """

    def __init__(self, model: nn.Module, physics: Physics, loss: Loss, lr: float = 1.0, truncation: float = 1e-6,
                 kappa: float = -0.5, beta: float = 0.0, *, route: str = "auto",
                 decomposition_dtype: torch.dtype = torch.float64, memory_bound: int | None = None,
                 chunk_size: int | None = None, max_loss_increase: float | None = 1e3, profile: bool = False,
                 jacobian: str = "auto", stats: bool = False, on_nonfinite: str = "raise",
                 compile_physics: bool | dict[str, Any] = False, process_group: Any = None,
                 physics_jacobian: PhysicsJacobian | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"{type(self).__name__} needs the model (an nn.Module), not {type(model).__name__}: it "
                            f"evaluates per-example Jacobians with torch.func.functional_call(model, ...)")
        if not callable(physics) or not callable(loss):
            raise TypeError("physics and loss must be callables: physics(x, *args) -> y, loss(y, *args) -> (b,)")
        check_choice("route", route, HIG_ROUTES)
        check_choice("jacobian", jacobian, JACOBIAN_ENGINES)
        if physics_jacobian is not None and not callable(physics_jacobian):
            raise TypeError(f"physics_jacobian must be a callable physics_jacobian(x, *args) -> (y, dy/dx) or None, "
                            f"got {type(physics_jacobian).__name__}")
        resolve_engine(jacobian, physics_jacobian is not None)       # jacobian='supplied' needs physics_jacobian
        check_choice("on_nonfinite", on_nonfinite, NONFINITE)
        memory_bound = check_integer("memory_bound", memory_bound, low=1, optional=True)
        chunk_size = check_integer("chunk_size", chunk_size, low=1, optional=True)
        check_choice("decomposition_dtype", decomposition_dtype, (torch.float32, torch.float64))
        self.max_loss_increase = check_number("max_loss_increase", max_loss_increase, low=1, optional=True)
        defaults = _check_group(dict(lr=lr, truncation=truncation, kappa=kappa, beta=beta))
        if not isinstance(compile_physics, (bool, dict)):
            raise TypeError(f"compile_physics must be True, False or a dict of torch.compile options, got "
                            f"{compile_physics!r}")
        check_batch_norm(model)
        super().__init__(list(trainable_parameters(model).values()), defaults)
        if compile_physics is not False:
            from ..compiled import compiled_physics
            physics = compiled_physics(physics, **(compile_physics if isinstance(compile_physics, dict) else {}))
        self.model, self.physics, self.loss = model, physics, loss
        self.physics_jacobian = physics_jacobian
        self.route, self.decomposition_dtype = route, decomposition_dtype
        self.memory_bound = memory_bound
        self.chunk_size = chunk_size
        self.profile = bool(profile)
        self.jacobian = jacobian
        self.stats, self.on_nonfinite = bool(stats), on_nonfinite
        self.skipped_steps: Tensor | None = None
        self.process_group = process_group
        self._weights_checked = process_group is None
        if process_group is not None:
            check_group(process_group)
        self._probes: dict[tuple, Tensor] = {}     # one example's physics output per input layout (see step)
        self.last_stats: HIGStats | None = None

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """HIG half-inverts one Jacobian over all of the model's weights, so it has exactly one parameter group (the
        one it builds): a second one is refused here, when it is added."""
        if getattr(self, "param_groups", None):
            raise ValueError(f"{type(self).__name__} half-inverts one Jacobian over all of the model's trainable "
                             f"weights, so it takes exactly one parameter group (built from the model); to train "
                             f"other parameters, make them trainable parameters of the model, or use a second "
                             f"optimizer for them")
        super().add_param_group(param_group)

    def step(self, inputs: Tensor, *args: Any) -> Tensor:  # type: ignore[override]
        """One update on the batch (``inputs``, ``args``); returns the batch loss before the update (0-dim, detached,
        as :meth:`physopt.SIP.step` returns its proxy loss)."""
        if len(self.param_groups) != 1:
            raise ValueError(f"{type(self).__name__} half-inverts one Jacobian over all weights, so it takes exactly "
                             f"one parameter group, got {len(self.param_groups)}")
        group = _check_group(self.param_groups[0])
        if not self._weights_checked:
            check_same_weights(trainable_parameters(self.model), self.process_group)
            self._weights_checked = True
        direction, stats = self._direction(group, inputs, args)
        named = trainable_parameters(self.model)
        if set(named) != set(direction):
            raise RuntimeError("the model's trainable parameters changed since the optimizer was built")
        ok = stats.ok if self.on_nonfinite == "skip" else None
        if isinstance(ok, Tensor):
            skipped = (~ok).to(torch.int64)
            self.skipped_steps = skipped if self.skipped_steps is None else self.skipped_steps + skipped
        for p in named.values():
            if group["lr"] > torch.finfo(p.dtype).max:
                raise HalfInversionError(f"lr = {group['lr']:g} does not fit the weights' dtype {p.dtype} (largest "
                                         f"{torch.finfo(p.dtype).max:.3g}), so the update would overflow; the weights "
                                         f"were not changed. Lower the learning rate")
        t = time.perf_counter()
        before = [p.detach().clone() for p in named.values()] if self.max_loss_increase is not None else None
        if ok is not None:      # skip mode: a non-finite direction becomes no change, decided on the device
            direction = {name: torch.where(ok, d, torch.zeros_like(d)) for name, d in direction.items()}
        self._apply(named, direction, group["lr"])
        if before is not None and (ok is None or bool(ok)):
            stats.lr_scale, stats.loss_after = self._guard(named, direction, group["lr"], before, float(stats.loss),
                                                           inputs, args)
        if self.profile:
            stats.apply_s += _sync(next(iter(named.values())).device) - t
        self.last_stats = stats
        loss = stats.loss
        return loss.detach().to(torch.float64) if isinstance(loss, Tensor) else torch.tensor(loss, dtype=torch.float64)

    def _direction(self, group: dict[str, float], inputs: Tensor, args: tuple) -> tuple[dict[str, Tensor], HIGStats]:
        """hig_direction with the size of one example's physics output remembered per input layout (the probe costs a
        forward pass, which on a small many-step solver is as slow as a whole batch's); computed again if the
        physics' output no longer fits it."""
        key = (tuple(inputs.shape[1:]), inputs.dtype, inputs.device)

        def run(probe: Tensor | None) -> tuple[dict[str, Tensor], HIGStats]:
            return hig_direction(self.model, inputs, self.physics, self.loss, *args, kappa=group["kappa"],
                                 beta=group["beta"], truncation=group["truncation"], route=self.route,
                                 dtype=self.decomposition_dtype, memory_bound=self.memory_bound,
                                 chunk_size=self.chunk_size, profile=self.profile, jacobian=self.jacobian,
                                 stats=self.stats, on_nonfinite=self.on_nonfinite, probe=probe,
                                 process_group=self.process_group, physics_jacobian=self.physics_jacobian)

        cached = self._probes.get(key)
        if cached is not None:
            try:
                return run(cached)
            except JacobianError:
                del self._probes[key]             # the physics' output changed its size: look again
        check_inputs(inputs, next(iter(trainable_parameters(self.model).values())))   # before running anything
        check_batch_norm(self.model)
        with torch.no_grad():
            self._probes[key] = probe_output(self.model, inputs, self.physics, args)
        return run(self._probes[key])

    @staticmethod
    def _apply(named: dict[str, Tensor], direction: dict[str, Tensor], lr: float) -> None:
        with torch.no_grad():
            for name, p in named.items():
                p.add_(direction[name].to(p.dtype), alpha=-lr)

    def _batch_loss(self, inputs: Tensor, args: tuple) -> float:
        with torch.no_grad():
            value = self.loss(self.physics(self.model(inputs), *args), *args).mean()
        if self.process_group is not None:
            value = all_reduce_mean(value, self.process_group)
        return float(value)

    def _guard(self, named: dict[str, Tensor], direction: dict[str, Tensor], lr: float, before: list[Tensor],
               loss_before: float, inputs: Tensor, args: tuple) -> tuple[float, float]:
        """Backtrack (lr x 0.1 per try) while the batch loss after the step is NaN/inf or above
        max_loss_increase x the loss before (only finiteness where that loss is <= 0); returns (the lr factor used,
        the loss after)."""
        limit = self.max_loss_increase * loss_before if loss_before > 0 else math.inf
        loss_after = self._batch_loss(inputs, args)
        scale = 1.0
        while not (math.isfinite(loss_after) and loss_after <= limit):
            with torch.no_grad():
                for p, b in zip(named.values(), before):
                    p.copy_(b)
            if scale <= _SMALLEST_SCALE:
                tau = self.param_groups[0]["truncation"]
                raise HalfInversionError(
                    f"the update raised the batch loss from {loss_before:.3g} to {loss_after:.3g} even with lr scaled "
                    f"by {scale:g}; the step was undone. Raise the truncation (tau = {tau:g} keeps directions with "
                    f"tiny singular values) or lower the learning rate")
            scale *= 0.1
            self._apply(named, direction, lr * scale)
            loss_after = self._batch_loss(inputs, args)
        if scale < 1.0:
            warnings.warn(f"{type(self).__name__}: the full step raised the batch loss more than "
                          f"{self.max_loss_increase:g}x (from {loss_before:.3g}); applied with lr scaled by {scale:g} "
                          f"(last_stats.lr_scale). Consider a larger truncation or a smaller lr", RuntimeWarning,
                          stacklevel=3)
        return scale, loss_after


_SMALLEST_SCALE = 1e-10


class GaussNewton(HIG):
    """Gauss-Newton on mini-batches: :class:`HIG` with kappa = -1, i.e. theta <- theta - lr * J^+_tau g, the truncated
    pseudo-inverse (the HIG paper's GN baseline, lr 1)."""

    def __init__(self, model: nn.Module, physics: Physics, loss: Loss, lr: float = 1.0, truncation: float = 1e-6,
                 kappa: float = -1.0, beta: float = 0.0, **kwargs: Any):
        super().__init__(model, physics, loss, lr, truncation, kappa, beta, **kwargs)
