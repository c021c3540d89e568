"""Training methods the bench can compare: classic torch optimizers through the physics, and SIP.

A method turns (network, problem, hyperparameters) into a ``step(batch) -> loss`` callable. Classic methods
backpropagate the problem's loss through its physics (the adjoint); SIP feeds the problem's inverse update.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import torch
from torch import nn

from physopt import HIG, SIP, HalfInversionError, PhysicsUpdateError, lookup
from physopt.hig.per_example import BatchDependenceError
from physopt.validation import check_integer, check_number


class Diverged(FloatingPointError):
    """A training run produced NaN/inf; it was stopped before the weights were touched."""


class StepFn(Protocol):
    def __call__(self, batch: Any) -> float: ...


@dataclasses.dataclass(frozen=True)
class Method:
    """A named way to train: ``build(net, problem, hyperparameters) -> step`` and its fallback hyperparameters."""
    name: str
    description: str
    build: Callable[[nn.Module, Any, dict[str, Any]], StepFn]
    defaults: dict[str, Any]
    needs_inverse: bool = False


#: torch.optim's on/off settings (None, where torch allows it, picks its default)
FLAGS = ("nesterov", "amsgrad", "centered", "maximize", "foreach", "fused", "capturable", "differentiable",
         "decoupled_weight_decay")


def validate_hyperparameters(method: str, hparams: dict[str, Any]) -> None:
    """Reject a learning rate that is not a finite number > 0, a batch size that is not an integer >= 1, betas that are
    not two numbers in [0, 1) and an on/off setting (:data:`FLAGS`) that is not a bool, with a message naming the
    method (:mod:`physopt.validation`)."""
    try:
        check_number("lr", hparams.get("lr"), low=0, low_inclusive=False, optional=True)
        check_integer("batch_size", hparams.get("batch_size"), low=1, optional=True)
        betas = hparams.get("betas")
        if betas is not None and not (isinstance(betas, (tuple, list)) and len(betas) == 2 and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
            raise ValueError(f"Invalid betas: {betas!r}; it must be two numbers >= 0 and < 1, e.g. "
                             f"--hparam {method}.betas=0.9,0.999")
        for flag in FLAGS:
            if hparams.get(flag) is not None and not isinstance(hparams[flag], bool):
                raise ValueError(f"Invalid {flag}: {hparams[flag]!r}; it must be true or false, e.g. "
                                 f"--hparam {method}.{flag}=true")
    except ValueError as err:
        raise ValueError(f"{method}: {err}") from None


def _overflowed(err: RuntimeError) -> bool:
    """Whether ``err`` is torch's refusal of a step size (lr times a factor) too large for the weights' dtype."""
    return "without overflow" in str(err)


def _check_finite_grads(net: nn.Module, where: str) -> None:
    for p in net.parameters():
        if p.grad is not None and not torch.isfinite(p.grad).all():
            raise Diverged(f"{where}: the gradient contains NaN/inf; the weights were not changed")


def _adjoint(optimizer_cls: type[torch.optim.Optimizer]) -> Callable[..., StepFn]:
    """Classic training: loss = mean_i L_i(P(NN(inputs_i))), backpropagated through the physics."""

    def build(net: nn.Module, problem: Any, hparams: dict[str, Any]) -> StepFn:
        opt = optimizer_cls(net.parameters(), **hparams)
        counter = [0]

        def step(batch) -> float:
            counter[0] += 1
            opt.zero_grad(set_to_none=True)
            x = problem.predict(net, batch)
            loss = problem.loss(problem.forward(x, batch), batch).mean()
            if not torch.isfinite(loss):
                raise Diverged(f"step {counter[0]}: the loss is {loss.item()}; the weights were not changed")
            loss.backward()
            _check_finite_grads(net, f"step {counter[0]}")
            before = [p.detach().clone() for p in net.parameters()]
            try:
                opt.step()
                overflow = None
            except RuntimeError as err:
                if not _overflowed(err):
                    raise
                overflow = f"the step size does not fit the weights' dtype ({err}): the learning rate is too large"
            if overflow or not all(torch.isfinite(p).all() for p in net.parameters()):
                with torch.no_grad():
                    for p, b in zip(net.parameters(), before):
                        p.copy_(b)
                raise Diverged(f"step {counter[0]}: {overflow or 'the update made weights NaN/inf'}; the step was "
                               f"undone")
            return loss.item()

        return step

    return build


def _build_sip(net: nn.Module, problem: Any, hparams: dict[str, Any]) -> StepFn:
    hp = dict(hparams)
    base = lookup("SIP base optimizer", hp.pop("base", "adam"), _BASES)
    opt = SIP(net.parameters(), inverse=problem.inverse_update, base=base, **hp)

    def step(batch) -> float:
        opt.zero_grad(set_to_none=True)
        x = problem.predict(net, batch)
        try:
            opt.step(x, batch)
        except PhysicsUpdateError as err:
            raise Diverged(str(err)) from err
        with torch.no_grad():
            return problem.loss(problem.forward(x.detach(), batch), batch).mean().item()

    return step


def _build_half_inverse(kappa: float) -> Callable[..., StepFn]:
    """HIG-family training: per-example Jacobians of the physics output, half-inverted (kappa = -1/2 HIG, -1 GN).

    The bench runs the papers' update as published: HIG's loss guard (``max_loss_increase``, which shrinks a step
    that blows the loss up) is off unless asked for (``--hparam gn.max_loss_increase=1000``), so Gauss-Newton's
    instability shows as it does in the HIG paper instead of being damped away.
    """

    def build(net: nn.Module, problem: Any, hparams: dict[str, Any]) -> StepFn:
        hp = {"kappa": kappa, "max_loss_increase": None, **hparams}
        opt = HIG(net, physics=problem.forward, loss=problem.loss, **hp)
        counter = [0]

        def step(batch) -> float:
            counter[0] += 1
            try:
                return float(opt.step(batch.inputs, batch))
            except HalfInversionError as err:
                raise Diverged(f"step {counter[0]}: {err}") from err

        return step

    return build


_BASES: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad,
    "adadelta": torch.optim.Adadelta, "rmsprop": torch.optim.RMSprop,
}

METHODS: dict[str, Method] = {
    "adam": Method("adam", "Adam through the physics (adjoint gradients)", _adjoint(torch.optim.Adam), {"lr": 1e-3}),
    "sgd": Method("sgd", "SGD through the physics", _adjoint(torch.optim.SGD), {"lr": 1e-2}),
    "adagrad": Method("adagrad", "Adagrad through the physics", _adjoint(torch.optim.Adagrad), {"lr": 1e-2}),
    "adadelta": Method("adadelta", "Adadelta through the physics", _adjoint(torch.optim.Adadelta), {"lr": 1.0}),
    "rmsprop": Method("rmsprop", "RMSprop through the physics", _adjoint(torch.optim.RMSprop), {"lr": 1e-2}),
    "sip": Method("sip", "SIP: Adam on the problem's physics-inversion update", _build_sip, {"lr": 1e-3},
                  needs_inverse=True),
    "gn": Method("gn", "Gauss-Newton on mini-batches: truncated pseudo-inverse of the stacked Jacobian (kappa = -1)",
                 _build_half_inverse(-1.0), {"lr": 1.0, "truncation": 1e-6}),
    "hig": Method("hig", "half-inverse gradients: V S^-1/2 U^T of the stacked per-example Jacobian (kappa = -1/2)",
                  _build_half_inverse(-0.5), {"lr": 1.0, "truncation": 1e-6}),
}


def get_method(name: str) -> Method:
    return lookup("optimizer", name, METHODS)


def resolve_hyperparameters(method: Method, problem: Any, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The hyperparameters a run uses: method fallbacks < the problem's paper values < user overrides.

    Always includes ``batch_size`` (the paper's for this optimizer and problem, else the problem's default); it is
    a setting of the run, not of the optimizer (see :func:`optimizer_arguments`).
    """
    hp = {"batch_size": problem.benchmark.batch_size, **method.defaults}
    hp.update(problem.benchmark.hyperparameters(method.name, problem.config))
    hp.update(overrides or {})
    validate_hyperparameters(method.name, hp)
    return hp


def check_settings(method: Method, problem: Any, hparams: dict[str, Any]) -> None:
    """Build ``method``'s optimizer once on a throwaway network, so that an unknown or ill-typed setting (say
    ``--hparam adam.lrr=1``) fails with a clear line before anything trains. ``hparams`` are the resolved ones
    (:func:`resolve_hyperparameters` has validated lr and batch size)."""
    try:
        method.build(problem.default_network(), problem, optimizer_arguments(hparams))
    except BatchDependenceError as err:             # not a setting: the problem's network does not suit the method
        raise ValueError(f"{method.name} cannot train the default network of {problem.name}: {err}") from None
    except (TypeError, ValueError) as err:
        raise ValueError(f"{method.name}: {err} (check --hparam {method.name}.NAME=VALUE)") from None


def optimizer_arguments(hparams: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters that go to the optimizer (everything except the run's ``batch_size``)."""
    return {k: v for k, v in hparams.items() if k != "batch_size"}
