"""Training methods the bench can compare: classic torch optimizers through the physics, SIP, HIG and Gauss-Newton,
and any optimizer from anywhere.

A method turns (network, problem, hyperparameters) into a ``step(batch) -> loss`` callable. Classic methods
backpropagate the problem's loss through its physics (the adjoint); SIP feeds the problem's inverse update.
:func:`get_method` finds a method by built-in name, by an installed package's entry point (group
:data:`OPTIMIZER_GROUP`) or by import path (``torch.optim.AdamW``, ``mypkg.opt:MyOpt``): every
``torch.optim.Optimizer`` subclass trains through the physics like Adam (with a closure where its ``step`` needs
one, e.g. ``torch.optim.LBFGS``). A name with '>' is a schedule of methods (``adam>hig@30s``,
:mod:`physopt.bench.schedule`).
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
from typing import Any, Callable, Protocol

import torch
from torch import nn

from physopt import HIG, SIP, HalfInversionError, PhysicsUpdateError, lookup
from physopt.names import (UnknownNameError, describe, find_entry_point, import_object, installed_entry_points,
                           is_import_path, load_entry_point, unknown_name)
from physopt.hig.per_example import BatchDependenceError
from physopt.validation import all_finite, check_integer, check_number

from .lr_schedule import SCHEDULE_SETTINGS, validate_schedule
from .schedule import is_schedule, schedule_method


class Diverged(FloatingPointError):
    """A training run produced NaN/inf; it was stopped before the weights were touched."""


class StepFn(Protocol):
    def __call__(self, batch: Any) -> float: ...


@dataclasses.dataclass(frozen=True)
class Method:
    """A named way to train: ``build(net, problem, hyperparameters) -> step`` and its fallback hyperparameters.

    ``settings``: the hyperparameter names the method takes (None: not known in advance; the optimizer itself
    refuses an unknown one); ``alias``: a short name ``--hparam`` may use for it (e.g. ``adamw`` for
    ``torch.optim.AdamW``)."""
    name: str
    description: str
    build: Callable[[nn.Module, Any, dict[str, Any]], StepFn]
    defaults: dict[str, Any]
    needs_inverse: bool = False
    settings: tuple[str, ...] | None = None
    alias: str | None = None
    #: the torch.optim class it steps with, where there is one (its constructor's defaults fill settings a search
    #: leaves alone, e.g. the other component of ``betas``)
    optimizer_cls: type | None = None
    #: ``resolve(problem, overrides, batch_size) -> hyperparameters`` where the method settles them itself (a
    #: schedule: its phases' settings, :mod:`physopt.bench.schedule`); None: :func:`resolve_hyperparameters`' rule
    resolve: Callable[[Any, dict[str, Any] | None, int | None], dict[str, Any]] | None = None
    #: spread over processes by its own ``process_group`` setting (HIG, Gauss-Newton) instead of DDP around the
    #: network (every gradient method, SIP)
    takes_process_group: bool = False


#: torch.optim's on/off settings (None, where torch allows it, picks its default)
#: the hyperparameters that are settings of the run, never arguments of the optimizer's constructor: its batch size,
#: its torch thread count on the CPU (``threads``: an equal-wall-clock comparison can give each optimizer the count
#: its step is fastest with) and its learning-rate schedule (:mod:`physopt.bench.lr_schedule`)
RUN_SETTINGS = ("batch_size", "threads") + SCHEDULE_SETTINGS

FLAGS = ("nesterov", "amsgrad", "centered", "maximize", "foreach", "fused", "capturable", "differentiable",
         "decoupled_weight_decay")


def validate_hyperparameters(method: str, hparams: dict[str, Any]) -> None:
    """Reject a learning rate that is not a finite number > 0, a batch size that is not an integer >= 1, betas that are
    not two numbers in [0, 1), a thread count that is not an integer >= 1, an on/off setting (:data:`FLAGS`) that is
    not a bool and a learning-rate schedule :mod:`physopt.bench.lr_schedule` does not know, with a message naming the
    method (:mod:`physopt.validation`)."""
    try:
        check_number("lr", hparams.get("lr"), low=0, low_inclusive=False, optional=True)
        check_integer("batch_size", hparams.get("batch_size"), low=1, optional=True)
        check_integer("threads", hparams.get("threads"), low=1, optional=True)
        validate_schedule(hparams)
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
    if not all_finite(p.grad for p in net.parameters() if p.grad is not None):
        raise Diverged(f"{where}: the gradient contains NaN/inf; the weights were not changed")


def _needs_closure(optimizer_cls: type[torch.optim.Optimizer]) -> bool:
    """Whether ``optimizer_cls.step`` requires a closure that re-evaluates the loss (e.g. ``torch.optim.LBFGS``)."""
    closure = inspect.signature(optimizer_cls.step).parameters.get("closure")
    return closure is not None and closure.default is inspect.Parameter.empty


def _adjoint(optimizer_cls: type[torch.optim.Optimizer]) -> Callable[..., StepFn]:
    """Classic training: loss = mean_i L_i(P(NN(inputs_i))), backpropagated through the physics. An optimizer whose
    ``step`` needs a closure gets one that re-evaluates this loss on the same batch (and backpropagates it)."""
    closure_step = _needs_closure(optimizer_cls)

    def build(net: nn.Module, problem: Any, hparams: dict[str, Any]) -> StepFn:
        opt = optimizer_cls(net.parameters(), **hparams)
        counter = [0]

        def batch_loss(batch) -> torch.Tensor:
            loss = problem.loss(problem.forward(problem.predict(net, batch), batch), batch).mean()
            if not loss.requires_grad:
                raise ValueError(f"the loss of {problem.name} does not depend on the network's weights, so there is "
                                 f"no gradient: the physics or the loss detaches its input (a .detach(), .item(), "
                                 f"numpy or torch.no_grad inside?)")
            return loss

        def update(batch, loss: torch.Tensor | None) -> float:
            """One optimizer step; the weights are restored and Diverged raised if it leaves NaN/inf weights."""
            before = [p.detach().clone() for p in net.parameters()]
            try:
                if closure_step:
                    values: list[torch.Tensor] = []

                    def closure() -> torch.Tensor:
                        opt.zero_grad(set_to_none=True)
                        value = batch_loss(batch)
                        if torch.isfinite(value):
                            value.backward()
                        values.append(value.detach())
                        return value
                    loss = opt.step(closure)
                    if loss is None and values:         # a step that returns nothing: the loss before the update
                        loss = values[0]
                else:
                    opt.step()
                overflow = None
            except RuntimeError as err:
                if not _overflowed(err):
                    raise
                overflow = f"the step size does not fit the weights' dtype ({err}): the learning rate is too large"
            unfinished = closure_step and (loss is None or not torch.isfinite(loss))  # the plain path checked it
            bad = overflow or ("the loss became NaN/inf" if unfinished else None)
            if bad or not all_finite(net.parameters()):
                with torch.no_grad():
                    for p, b in zip(net.parameters(), before):
                        p.copy_(b)
                raise Diverged(f"step {counter[0]}: {bad or 'the update made weights NaN/inf'}; the step was undone")
            return loss.item()

        def step(batch) -> float:
            counter[0] += 1
            if closure_step:
                return update(batch, None)
            opt.zero_grad(set_to_none=True)
            loss = batch_loss(batch)
            if not torch.isfinite(loss):
                raise Diverged(f"step {counter[0]}: the loss is {loss.item()}; the weights were not changed")
            loss.backward()
            _check_finite_grads(net, f"step {counter[0]}")
            return update(batch, loss)

        step.optimizer = opt            # type: ignore[attr-defined]  (its state: what a checkpoint saves)
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

    step.optimizer = opt.base           # type: ignore[attr-defined]  (SIP's state is its base optimizer's)
    return step


def _build_half_inverse(kappa: float) -> Callable[..., StepFn]:
    """HIG-family training: per-example Jacobians of the physics output, half-inverted (kappa = -1/2 HIG, -1 GN).

    The bench runs the papers' update as published: HIG's loss guard (``max_loss_increase``, which shrinks a step
    that blows the loss up) is off unless asked for (``--hparam gn.max_loss_increase=1000``), so Gauss-Newton's
    instability shows as it does in the HIG paper instead of being damped away.
    """

    def build(net: nn.Module, problem: Any, hparams: dict[str, Any]) -> StepFn:
        hp = {"kappa": kappa, "max_loss_increase": None, **hparams}
        if type(problem).defines_physics_jacobian():    # the problem's closed-form dy/dx (engine 'supplied')
            hp.setdefault("physics_jacobian", problem.physics_jacobian)
        opt = HIG(net, physics=problem.forward, loss=problem.loss, **hp)
        counter = [0]

        def step(batch) -> float:
            counter[0] += 1
            try:
                return float(opt.step(batch.inputs, batch))
            except HalfInversionError as err:
                raise Diverged(f"step {counter[0]}: {err}") from err

        step.optimizer = opt            # type: ignore[attr-defined]
        return step

    return build


_BASES: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad,
    "adadelta": torch.optim.Adadelta, "rmsprop": torch.optim.RMSprop,
}

METHODS: dict[str, Method] = {
    "adam": Method("adam", "Adam through the physics (adjoint gradients)", _adjoint(torch.optim.Adam), {"lr": 1e-3},
                   optimizer_cls=torch.optim.Adam),
    "sgd": Method("sgd", "SGD through the physics", _adjoint(torch.optim.SGD), {"lr": 1e-2},
                  optimizer_cls=torch.optim.SGD),
    "adagrad": Method("adagrad", "Adagrad through the physics", _adjoint(torch.optim.Adagrad), {"lr": 1e-2},
                      optimizer_cls=torch.optim.Adagrad),
    "adadelta": Method("adadelta", "Adadelta through the physics", _adjoint(torch.optim.Adadelta), {"lr": 1.0},
                       optimizer_cls=torch.optim.Adadelta),
    "rmsprop": Method("rmsprop", "RMSprop through the physics", _adjoint(torch.optim.RMSprop), {"lr": 1e-2},
                      optimizer_cls=torch.optim.RMSprop),
    "sip": Method("sip", "SIP: Adam on the problem's physics-inversion update", _build_sip, {"lr": 1e-3},
                  needs_inverse=True),
    "gn": Method("gn", "Gauss-Newton on mini-batches: truncated pseudo-inverse of the stacked Jacobian (kappa = -1)",
                 _build_half_inverse(-1.0), {"lr": 1.0, "truncation": 1e-6}, takes_process_group=True),
    "hig": Method("hig", "half-inverse gradients: V S^-1/2 U^T of the stacked per-example Jacobian (kappa = -1/2)",
                  _build_half_inverse(-0.5), {"lr": 1.0, "truncation": 1e-6}, takes_process_group=True),
}


#: the entry-point group under which an installed package declares optimizers: ``name = "pkg.module:Class"``, a
#: ``torch.optim.Optimizer`` subclass or a :class:`Method`
OPTIMIZER_GROUP = "physopt.optimizers"
_RESOLVED: dict[str, Method] = {}


def get_method(name: str) -> Method:
    """The method called ``name``: a built-in (:data:`METHODS`, any case), an installed entry point of
    :data:`OPTIMIZER_GROUP`, or an import path (``torch.optim.AdamW``, ``mypkg.opt:MyOpt``) of a
    ``torch.optim.Optimizer`` subclass or a :class:`Method`. Unknown names get an error that lists the choices."""
    if not isinstance(name, str):
        raise TypeError(f"an optimizer name is a string, got {type(name).__name__}")
    key = name.strip()
    if key.lower() in METHODS:
        return METHODS[key.lower()]
    if is_schedule(key):
        if key not in _RESOLVED:
            _RESOLVED[key] = schedule_method(key, get_method, Method)
        return _RESOLVED[key]
    if key not in _RESOLVED:
        plugins = installed_entry_points(OPTIMIZER_GROUP)
        entry = find_entry_point(plugins, key)
        if entry is not None:               # named as declared, whatever the case typed (its runs' files too)
            _RESOLVED[key] = as_method(entry.name, load_entry_point(entry, "optimizer"))
        elif is_import_path(key):
            _RESOLVED[key] = as_method(key, import_object(key, "optimizer"))
        else:
            unknown_name("optimizer", name, sorted({*METHODS, *plugins}))
    return _RESOLVED[key]


def list_methods() -> dict[str, str]:
    """Every optimizer name :func:`get_method` knows without an import path -> its description (entry points are
    listed by name and target, not loaded)."""
    out = {name: m.description for name, m in METHODS.items()}
    for name, ep in sorted(installed_entry_points(OPTIMIZER_GROUP).items()):
        if name.lower() in METHODS:         # get_method finds the built-in first: say so instead of hiding it
            out[name.lower()] += f" (the entry point '{name}' = {ep.value} is hidden by it: name that by import path)"
        else:
            out[name] = f"from {ep.value}"
    return out


def as_method(name: str, obj: Any) -> Method:
    """``obj`` (a :class:`Method` or a ``torch.optim.Optimizer`` subclass) as the method called ``name``."""
    if isinstance(obj, Method):
        return dataclasses.replace(obj, name=name)
    if isinstance(obj, type) and issubclass(obj, (SIP, HIG)):
        builtin = "sip" if issubclass(obj, SIP) else "gn" if obj.__name__ == "GaussNewton" else "hig"
        raise UnknownNameError(f"optimizer '{name}' is physopt's {obj.__name__}, which needs the problem's "
                               f"physics: use the built-in name '{builtin}'")
    if not (isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer)):
        raise UnknownNameError(f"optimizer '{name}' is {describe(obj)}, not a torch.optim.Optimizer subclass (or a "
                               f"physopt.bench.methods.Method)")
    return Method(name, f"{obj.__module__}.{obj.__qualname__} through the physics (adjoint gradients)",
                  _adjoint(obj), {}, settings=_settings_of(obj), alias=obj.__name__.lower(), optimizer_cls=obj)


def _settings_of(optimizer_cls: type[torch.optim.Optimizer]) -> tuple[str, ...] | None:
    """The keyword settings of the optimizer's constructor besides ``params`` (None if it takes ``**kwargs``)."""
    parameters = list(inspect.signature(optimizer_cls.__init__).parameters.values())[1:]     # without self
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return tuple(p.name for p in parameters if p.name != "params" and p.kind is not inspect.Parameter.VAR_POSITIONAL)


def settings_by_method(methods: list[Method], hyperparameters: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``--hparam`` settings keyed by what the user wrote (a method's name or alias, any case) -> keyed by method
    name; a key that matches none of ``methods`` is refused (its settings would be ignored)."""
    out: dict[str, dict[str, Any]] = {}
    for key, values in hyperparameters.items():
        k = key.strip().lower()
        matches = [m for m in methods if k == m.name.lower()] or \
            [m for m in methods if k == (m.alias or "").lower()]          # a full name wins over an alias
        if not matches:
            raise ValueError(f"settings given for '{key}', which is not among the optimizers compared here "
                             f"({', '.join(m.name for m in methods)}): add it to --optimizers or drop its --hparam")
        if len(matches) > 1:
            raise ValueError(f"settings given for '{key}' match several optimizers "
                             f"({', '.join(m.name for m in matches)}): write the full name")
        name = matches[0].name
        twice = sorted(set(out.get(name, {})) & set(values))
        if twice:
            raise ValueError(f"--hparam {name}.{twice[0]} is given twice (as '{key}' and by another name)")
        out.setdefault(name, {}).update(values)
    return out


def canonical_optimizers(problem: Any) -> list[str]:
    """The optimizers a comparison on ``problem`` (an instance or class) runs by default: its benchmark settings',
    without those that need an inverse update the problem does not define (e.g. 'sip' for a user's problem that
    declares no settings and no inverse)."""
    cls = problem if isinstance(problem, type) else type(problem)
    return [o for o in cls.benchmark.optimizers if cls.defines_inverse() or not get_method(o).needs_inverse]


def resolve_hyperparameters(method: Method, problem: Any, overrides: dict[str, Any] | None = None,
                            batch_size: int | None = None) -> dict[str, Any]:
    """The hyperparameters a run uses: method fallbacks < the problem's paper values < user overrides < a
    ``batch_size`` given for every optimizer (``--batch-size``).

    Always includes ``batch_size`` (the paper's for this optimizer and problem, else the problem's default); it is
    a setting of the run, not of the optimizer (see :func:`optimizer_arguments`). A method that settles its own
    (``Method.resolve``, a schedule) does so.
    """
    if method.resolve is not None:
        return method.resolve(problem, overrides, batch_size)
    hp = {"batch_size": problem.benchmark.batch_size, **method.defaults}
    hp.update(problem.benchmark.hyperparameters(method.name, problem.config))
    hp.update(overrides or {})
    if batch_size:
        hp["batch_size"] = batch_size
    validate_hyperparameters(method.name, hp)
    return hp


def check_settings(method: Method, problem: Any, hparams: dict[str, Any]) -> None:
    """Build ``method``'s optimizer once on a throwaway network, so that an unknown or ill-typed setting (say
    ``--hparam adam.lrr=1``) fails with a clear line before anything trains. ``hparams`` are the resolved ones
    (:func:`resolve_hyperparameters` has validated lr and batch size)."""
    arguments = optimizer_arguments(hparams)
    if method.settings is not None:
        unknown = sorted(set(arguments) - set(method.settings))
        if unknown:
            close = difflib.get_close_matches(unknown[0], method.settings, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"{method.name} has no setting '{unknown[0]}'.{hint} Its settings: "
                             f"{', '.join(method.settings)}")
    net = problem.default_network()
    if not any(p.requires_grad for p in net.parameters()):
        raise ValueError(f"the default network of {problem.name} ({type(net).__name__}) has no trainable weights: "
                         f"give it layers with parameters")
    try:
        step = method.build(net, problem, arguments)
    except BatchDependenceError as err:             # not a setting: the problem's network does not suit the method
        raise ValueError(f"{method.name} cannot train the default network of {problem.name}: {err}") from None
    except (TypeError, ValueError) as err:
        raise ValueError(f"{method.name}: {err} (check --hparam {method.name}.NAME=VALUE)") from None
    if method.name.lower() not in METHODS:          # a user's optimizer: some settings fail only in step()
        _trial_step(method, problem, step)


def _trial_step(method: Method, problem: Any, step: StepFn) -> None:
    """One step of a user's optimizer on a throwaway network and two examples, so that what fails only when it
    steps (a setting its constructor accepts, e.g. ``line_search_fn='wolfe'`` of LBFGS; a step that raises) fails
    here in one line, before anything trains; a step that diverges is left to the run."""
    batch = problem.sample(2, torch.Generator().manual_seed(0))
    try:
        step(batch)
    except Diverged:
        pass
    except (RuntimeError, TypeError, ValueError, KeyError, AttributeError, IndexError, NotImplementedError) as err:
        if isinstance(err, ValueError) and type(err).__module__.startswith("problems"):
            raise                                   # the problem's own error (ProblemError) says what to fix
        raise ValueError(f"{method.name}: one trial step on {problem.name} failed: {type(err).__name__}: {err} "
                         f"(check its --hparam {method.name}.NAME=VALUE settings, or its step())") from None


def optimizer_arguments(hparams: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters that go to the optimizer: everything except the run's own settings (:data:`RUN_SETTINGS`:
    ``batch_size``, ``threads`` and the learning-rate schedule)."""
    return {k: v for k, v in hparams.items() if k not in RUN_SETTINGS}
