r"""SIP: scale-invariant physics training (Holl, Koltun & Thuerey, "Scale-invariant Learning by Physics
Inversion", NeurIPS 2022, Sec. 3.2).

The adjoint of the physics is replaced by the update of an inverse solver. For a prediction x_0 = NN(y* | theta):

1. dx = U(y* | x_0), the first update of a (higher-order, scale-invariant) inverse solver started at x_0;
2. x~ = x_0 + dx, treated as a constant;
3. proxy loss  L~ = 1/2 ||x_0 - stopgrad(x~)||^2,  so that  dL~/dx_0 = -dx  (Eq. 6-7);
4. any torch optimizer (Adam by default) turns dL~/dtheta = -dx . dNN/dtheta into a weight update.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from torch.optim import Optimizer

from .validation import all_finite, check_choice, check_number, finite_flag

__all__ = ["SIP", "sip_loss", "sip_backward", "check_physics_update", "PhysicsUpdateError"]

InverseUpdate = Callable[..., Tensor]
_REDUCTIONS = ("mean", "sum")


class PhysicsUpdateError(FloatingPointError):
    """The physics update (or the gradient it produced) contains NaN or inf; the weights were left unchanged."""


def sip_loss(x: Tensor, dx: Tensor, reduction: str = "mean") -> Tensor:
    r"""SIP proxy loss  1/2 ||x - stopgrad(x + dx)||^2  (SIP paper, Eq. 6 with dP^{-1}/dy = 0).

    Its gradient w.r.t. x is exactly -dx, so backpropagating it through the network feeds the physics update to
    any optimizer in place of the adjoint vector dL/dx.

    Args:
        x: network prediction x_0, shape (B, ...), attached to the network's graph.
        dx: physics update U(y* | x_0), same shape as x (any graph it carries is detached).
        reduction: over the batch, ``"mean"`` or ``"sum"``; cells of one example are always summed.
    Returns:
        A scalar tensor.
    """
    check_choice("reduction", reduction, _REDUCTIONS)
    if dx.shape != x.shape:
        raise ValueError(f"the physics update dx has shape {tuple(dx.shape)} but the prediction x has shape "
                         f"{tuple(x.shape)}; the inverse update must return one entry per entry of x")
    target = (x + dx).detach()
    per_example = 0.5 * (x - target).pow(2).reshape(x.shape[0], -1).sum(-1)
    return per_example.mean() if reduction == "mean" else per_example.sum()


def sip_backward(x: Tensor, dx: Tensor, reduction: str = "mean") -> Tensor:
    r"""Put the SIP gradient in place: backpropagate :func:`sip_loss` (dL~/dx = -dx) to the network's weights, so
    that any optimizer's ordinary ``step()`` (or :meth:`SIP.step` without arguments, which also guards against
    NaN/inf) takes the update. ``dx`` is checked first (:func:`check_physics_update`). Returns the proxy loss, detached.

    Example::

        x = net(y_star)
        physopt.sip_backward(x, inverse(x.detach(), y_star))
        adam.step()
    """
    check_physics_update(dx, x)
    proxy = sip_loss(x, dx.detach().to(x.dtype), reduction)
    proxy.backward()
    return proxy.detach()


def check_physics_update(dx: Tensor, x: Tensor, step: int | None = None, finite: bool = True) -> None:
    """Raise a clear error if dx is not a finite tensor of x's shape, device and dtype (``finite=False``: shape and
    device only, no device sync)."""
    where = f" at step {step}" if step is not None else ""
    if not isinstance(dx, Tensor):
        raise TypeError(f"the inverse update must return a Tensor, got {type(dx).__name__}{where}")
    if dx.shape != x.shape:
        raise ValueError(f"the physics update dx has shape {tuple(dx.shape)}{where} but the prediction x has shape "
                         f"{tuple(x.shape)}; the inverse update must return one entry per entry of x")
    if dx.device != x.device:
        raise ValueError(f"the physics update is on {dx.device} but the prediction on {x.device}{where}")
    if not finite:
        return
    bad = ~torch.isfinite(dx)
    if bad.any():
        n_bad = int(bad.sum())
        examples = sorted(set(torch.nonzero(bad.reshape(bad.shape[0], -1).any(-1)).flatten().tolist()))[:8]
        raise PhysicsUpdateError(
            f"the physics update dx contains {n_bad} NaN/inf value(s){where} (examples {examples}); the weights "
            f"were not changed. Check the prediction for extreme values, add damping to the inverse solver, or "
            f"lower the learning rate")


class SIP(Optimizer):
    r"""Train a network on physics-inversion updates with any torch optimizer (SIP paper, Sec. 3.2).

    One call of :meth:`step` does, for a prediction x_0 = NN(y* | theta) that is still attached to the network:

        dx      = inverse(x_0.detach(), *args)             (no gradient; the scale-invariant physics update)
        L~      = 1/2 ||x_0 - stopgrad(x_0 + dx)||^2         (:func:`sip_loss`)
        theta  <- base_step(theta, dL~/dtheta)               (Adam by default)

    so that dL~/dx_0 = -dx replaces the adjoint dL/dx_0 of backpropagation through the physics.

    Args:
        params: the network's parameters (or parameter groups), as for any torch optimizer.
        inverse: ``inverse(x, *args, **kwargs) -> dx``, the physics update, e.g. ``problem.inverse_update`` or a
            generic :class:`physopt.NewtonUpdate` / :class:`physopt.GaussNewtonUpdate` around the user's physics.
        base: the torch optimizer class that turns the proxy gradient into weight updates (default Adam).
        reduction: ``"mean"`` or ``"sum"`` of the proxy loss over the batch.
        **base_kwargs: passed to ``base`` (``lr``, ``betas``, ``momentum``, ...).

    ``param_groups`` and ``state`` are the base optimizer's own, so learning-rate schedulers work on a SIP
    instance directly, and ``state_dict()`` / ``load_state_dict()`` round-trip both.

    :meth:`step` takes the usual torch forms too, where a loop or framework drives the optimizer:
    ``step()`` after the SIP gradient was put in place (:func:`sip_backward`, or ``sip_loss(...).backward()``), and
    ``step(closure)`` with a closure that does so and returns the proxy loss (PyTorch Lightning's automatic
    optimization). Every form undoes a step that leaves NaN/inf weights; the checks cost one device sync per step.

    Example::

        opt = physopt.SIP(net.parameters(), inverse=problem.inverse_update, lr=1e-3)
        for batch in batches:
            opt.zero_grad()
            proxy = opt.step(net(batch.inputs), batch)
    """

    def __init__(self, params, inverse: InverseUpdate, base: type[Optimizer] = torch.optim.Adam,
                 reduction: str = "mean", **base_kwargs: Any):
        if not callable(inverse):
            raise TypeError(f"inverse must be a callable inverse(x, *args) -> dx, got {type(inverse).__name__}")
        if not (isinstance(base, type) and issubclass(base, Optimizer)):
            raise TypeError(f"base must be a torch.optim.Optimizer class such as torch.optim.Adam, got {base!r}")
        check_choice("reduction", reduction, _REDUCTIONS)
        if "lr" in base_kwargs:
            check_number("lr", base_kwargs["lr"], low=0, low_inclusive=False)
        self.base = base(params, **base_kwargs)
        self.inverse = inverse
        self.reduction = reduction
        self.steps = 0
        # Register as a torch Optimizer over the same parameters, then share the base optimizer's groups and state.
        super().__init__([p for g in self.base.param_groups for p in g["params"]], {})
        self.param_groups = self.base.param_groups
        self.state = self.base.state
        self.defaults = self.base.defaults

    def step(self, x: Tensor | Callable[[], Any] | None = None, *args: Any, closure: Callable[[], Any] | None = None,
             **kwargs: Any) -> Any:  # type: ignore[override]
        """One SIP step, in one of three forms:

        - ``step(x, *args, **kwargs)``: compute dx = inverse(x, *args, **kwargs), backpropagate the proxy loss and
          take one base-optimizer step; returns the proxy loss (detached). ``x`` is the network's prediction,
          attached to its graph (call ``zero_grad()`` before); ``args``/``kwargs`` go to ``inverse`` (e.g. the batch).
        - ``step()``: the SIP gradient is already in ``.grad`` (:func:`sip_backward`); take the base step. Returns None.
        - ``step(closure)`` / ``step(closure=closure)``: call the closure (under grad), which puts the SIP gradient in
          place and returns the proxy loss, as torch and PyTorch Lightning call optimizers; then the base step.
          Returns what the closure returned.

        Raises:
            PhysicsUpdateError: the prediction, dx, the resulting gradient or the updated weights are not finite; the
                weights (and the base optimizer's state) are left as they were before the step.
            ValueError: a learning rate in ``param_groups`` is not a finite number > 0 (checked at every step).
        """
        if callable(x) and not isinstance(x, Tensor):
            if closure is not None:
                raise TypeError("SIP.step got two closures; pass one")
            x, closure = None, x
        if x is None:
            if args or kwargs:
                raise TypeError("SIP.step(closure) and SIP.step() take no further arguments; the inverse update's "
                                "arguments go with the prediction: step(x, *args)")
            step = self._check_lrs()
            result = None
            if closure is not None:
                with torch.enable_grad():
                    result = closure()
            self._guarded_base_step(step)
            return result
        if closure is not None:
            raise TypeError("SIP.step takes either the prediction x (and the inverse update's arguments) or a closure")
        if not isinstance(x, Tensor):
            raise TypeError(f"SIP.step expects the network prediction x as a Tensor, got {type(x).__name__}")
        if not x.requires_grad:
            raise ValueError("the prediction x does not require grad: pass the network output itself, not a "
                             "detached copy, so the proxy loss can reach the weights")
        step = self._check_lrs()
        try:
            with torch.no_grad():
                dx = self.inverse(x.detach(), *args, **kwargs)
        except Exception as err:                                  # e.g. an eigensolver given a NaN prediction
            if not all_finite([x]):
                raise PhysicsUpdateError(f"the network prediction contains NaN/inf at step {step}, and the inverse "
                                         f"update failed on it ({type(err).__name__}); the weights were not changed. "
                                         f"Lower the learning rate or check the inputs") from err
            raise
        check_physics_update(dx, x, step, finite=False)          # shape and device here; finiteness below
        proxy = sip_loss(x, dx.to(x.dtype), self.reduction)
        proxy.backward()
        self._guarded_base_step(step, x, dx)
        return proxy.detach()

    def _check_lrs(self) -> int:
        """The number of the coming step, after checking every group's lr (a scheduler or a user may have changed
        it since construction)."""
        for group in self.param_groups:
            if "lr" in group:
                check_number("lr", group["lr"], low=0, low_inclusive=False)
        return self.steps + 1

    def _guarded_base_step(self, step: int, x: Tensor | None = None, dx: Tensor | None = None) -> None:
        """The base optimizer's step, undone (weights and base state) when the prediction, dx, the gradient or the
        new weights hold NaN/inf: all checked in one reduction, one device sync; the cause is found only on failure."""
        grads = [p.grad for p in self._params() if p.grad is not None]
        inputs_ok = finite_flag([t for t in (x, dx) if t is not None] + grads)
        snapshot = self._snapshot()
        try:
            self.base.step()
        except RuntimeError as err:
            if "without overflow" not in str(err):
                raise
            self._restore(snapshot)
            raise PhysicsUpdateError(f"the base optimizer's step size at step {step} does not fit the weights' dtype "
                                     f"({err}); the step was undone. Lower the learning rate") from None
        if bool(torch.stack([inputs_ok, finite_flag(self._params()).to(inputs_ok.device)]).all()):
            self.steps = step
            return
        self._restore(snapshot)
        if x is not None and not all_finite([x]):
            raise PhysicsUpdateError(f"the network prediction contains NaN/inf at step {step}; the weights were not "
                                     f"changed. Lower the learning rate or check the inputs")
        if dx is not None:
            check_physics_update(dx, x, step)                     # raises, naming the examples with NaN/inf
        if not all_finite(grads):
            raise PhysicsUpdateError(f"the proxy gradient contains NaN/inf at step {step}; the weights were not "
                                     f"changed")
        raise PhysicsUpdateError(f"the base optimizer's update at step {step} made weights NaN/inf (a finite but "
                                 f"huge step); the step was undone. Lower the learning rate, or cap dx in the "
                                 f"inverse update (e.g. max_step)")

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _snapshot(self) -> tuple[list[Tensor], dict[Tensor, dict[str, Any]]]:
        """Copies of the weights and of the base optimizer's state, to undo a step (one copy of each per step)."""
        state = {p: {k: v.clone() if isinstance(v, Tensor) else v for k, v in s.items()}
                 for p, s in self.base.state.items()}
        return [p.detach().clone() for p in self._params()], state

    def _restore(self, snapshot: tuple[list[Tensor], dict[Tensor, dict[str, Any]]]) -> None:
        weights, state = snapshot
        with torch.no_grad():
            for p, w in zip(self._params(), weights):
                p.copy_(w)
        for p in list(self.base.state):
            if p in state:
                self.base.state[p] = state[p]
            else:
                del self.base.state[p]

    def state_dict(self) -> dict[str, Any]:
        return {"base": self.base.state_dict(), "reduction": self.reduction, "steps": self.steps,
                "base_class": f"{type(self.base).__module__}.{type(self.base).__qualname__}"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        expected = f"{type(self.base).__module__}.{type(self.base).__qualname__}"
        if state_dict.get("base_class", expected) != expected:
            raise ValueError(f"this state dict was saved with base optimizer {state_dict['base_class']}, but this SIP "
                             f"wraps {expected}; construct SIP with the same base")
        self.base.load_state_dict(state_dict["base"])
        self.reduction = state_dict["reduction"]
        self.steps = int(state_dict["steps"])
        self.param_groups = self.base.param_groups
        self.state = self.base.state

    def __repr__(self) -> str:
        return f"SIP(base={self.base!r}, reduction={self.reduction!r})"
