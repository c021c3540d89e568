"""The one interface every problem implements, and the batch it passes around.

A problem is an inverse problem  x* = argmin_x L(x),  L(x) = loss(P(x), y*)  (SIP paper, Eq. 1), together with the
data that poses it, a default network NN(inputs | theta) -> x and the hyperparameters the papers used per optimizer.
Training solves  min_theta  sum_i L_i(NN(inputs_i | theta))  (SIP paper, Eq. 3).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from .settings import BenchmarkSettings
from .solvers.errors import SimulationError  # noqa: F401  re-exported: defined beside the solvers that raise it


class Batch(NamedTuple):
    """A mini-batch of inverse problems. A NamedTuple, so ``torch.func.vmap`` can map over it.

    Attributes:
        inputs: what the network sees, shape (B, *input_shape).
        target: the observation y* the physics output must match, shape (B, *y_shape).
        x_true: the ground-truth solution x*, shape (B, *x_shape), or None where none exists.
    """
    inputs: Tensor
    target: Tensor
    x_true: Tensor | None = None

    def to(self, device=None, dtype=None) -> "Batch":
        """Move every tensor to ``device`` (and floating tensors to ``dtype``)."""
        def move(t):
            if t is None:
                return None
            return t.to(device=device, dtype=dtype if (dtype is not None and t.is_floating_point()) else None)
        return Batch(*(move(t) for t in self))

    def vmap_dims(self, dim: int = 0) -> "Batch":
        """``in_dims`` for ``torch.func.vmap`` over this batch: ``dim`` for tensors, None for absent fields."""
        return Batch(*(None if t is None else dim for t in self))

    @property
    def batch_size(self) -> int:
        return self.inputs.shape[0]


class ProblemError(ValueError):
    """Bad input to a problem (wrong shape, device or dtype); the message names the problem and the fix."""


@dataclasses.dataclass
class ProblemConfig:
    """Base class of problem configs. Subclasses add the paper's defaults as fields.

    Every value is checked against its field (:meth:`check`): an int field takes an integer, a float field a finite
    number, a bool field a bool, a tuple field a tuple of such; fields named in :attr:`POSITIVE` (sizes, counts, step
    lengths: a grid of 0 cells or dt = 0 would fail later or produce all-zero data) must be > 0.
    """

    #: field names that must be > 0 wherever a config has them
    POSITIVE: ClassVar[tuple[str, ...]] = ("resolution", "dx", "dt", "steps", "points", "length", "n_masses",
                                           "unet_levels", "unet_filters", "hidden", "amount", "gamma", "xi",
                                           "max_rectangles", "min_rectangles", "max_half_size", "max_cfl",
                                           "newton_max_step", "max_loss_change")

    #: (low, high) field pairs that must satisfy low <= high wherever a config has both
    ORDERED: ClassVar[tuple[tuple[str, str], ...]] = (("x_low", "x_high"), ("min_rectangles", "max_rectangles"),
                                                      ("marker_centre_low", "marker_centre_high"),
                                                      ("fill_low", "fill_high"))
    #: field name -> (a lower bound above 1, the reason) wherever a config has that field
    AT_LEAST: ClassVar[dict[str, tuple[int, str]]] = {"resolution": (2, "a grid of 1 cell has no interior")}

    def replace(self, **changes: Any) -> "ProblemConfig":
        """This config with ``changes`` (checked). A string value, as the command line gives it, is parsed by the
        field's type: a number; true/false or 1/0 for a bool; comma-separated numbers for a tuple (``"1,2"``)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ProblemError(f"unknown config field(s) {unknown} for {type(self).__name__}; "
                               f"known fields: {sorted(names)}")
        typed = {}
        for f in dataclasses.fields(self):
            if f.name in changes:
                value = changes[f.name]
                current = getattr(self, f.name)
                if isinstance(value, str) and not isinstance(current, str):
                    value = _parse_field(type(self).__name__, f.name, value, current)
                if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
                    value = float(value)
                typed[f.name] = value
        return dataclasses.replace(self, **typed).check()

    def check(self) -> "ProblemConfig":
        """This config, after checking every value against its field's default type, :attr:`POSITIVE`,
        :attr:`AT_LEAST` and :attr:`ORDERED`."""
        default = type(self)()
        config = type(self).__name__
        for f in dataclasses.fields(self):
            _check_field(config, f.name, getattr(self, f.name), getattr(default, f.name), f.name in self.POSITIVE)
        for name, (low, why) in self.AT_LEAST.items():
            if hasattr(self, name) and getattr(self, name) < low:
                raise ProblemError(f"{name} must be >= {low} ({why}), got {getattr(self, name)!r} (a field of "
                                   f"{config})")
        for low, high in self.ORDERED:
            if hasattr(self, low) and hasattr(self, high) and getattr(self, low) > getattr(self, high):
                raise ProblemError(f"{low} must be <= {high}, got {low}={getattr(self, low)!r} > "
                                   f"{high}={getattr(self, high)!r} (fields of {config})")
        return self


def _parse_field(config: str, name: str, text: str, default: Any) -> Any:
    """A command-line string as a value of the field whose default is ``default`` (checked later by
    :func:`_check_field`): an int or float, a bool from true/false/1/0, a tuple from comma-separated numbers."""
    if isinstance(default, bool):
        flags = {"true": True, "1": True, "false": False, "0": False}
        if text.strip().lower() not in flags:
            raise ProblemError(f"config field {name} of {config} takes true or false (or 1/0), got '{text}'")
        return flags[text.strip().lower()]
    if isinstance(default, tuple):
        item = default[0] if default else 0.0
        parts = [p for p in text.split(",") if p.strip()]
        return tuple(_parse_field(config, name, p, item) for p in parts)
    if isinstance(default, (int, float)):
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                pass
        raise ProblemError(f"config field {name} of {config} takes a number, got '{text}'")
    return text


def _check_sample_arguments(problem: str, batch_size: Any, generator: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ProblemError(f"{problem}: sample() takes an integer batch size >= 1, got {batch_size!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ProblemError(f"{problem}: sample() takes a torch.Generator (or None) as generator, got "
                           f"{type(generator).__name__}; e.g. torch.Generator().manual_seed(0)")


def _check_field(config: str, name: str, value: Any, default: Any, positive: bool) -> None:
    where = f"a field of {config}"
    if isinstance(default, tuple):
        if not isinstance(value, (tuple, list)) or (default and len(value) == 0):
            raise ProblemError(f"{name} takes a tuple like {default}, got {value!r} ({where})")
        for item in value:
            _check_field(config, name, item, default[0] if default else item, positive)
        return
    if isinstance(default, bool):
        ok = isinstance(value, bool)
        wanted = "True or False"
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool) and (not positive or value > 0)
        wanted = "an integer" + (" >= 1" if positive else "")
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
            (not positive or value > 0)
        wanted = "a finite number" + (" > 0" if positive else "")
    else:
        return
    if not ok:
        raise ProblemError(f"{name} must be {wanted}, got {value!r} ({where})")


def described(value: Any, dtype: bool = False) -> str:
    """What a method returned, for an error message: ``shape (4, 2)`` (with ``, dtype torch.int32`` when ``dtype``)
    for a tensor, else the type's name."""
    if not isinstance(value, Tensor):
        return type(value).__name__
    return f"shape {tuple(value.shape)}" + (f", dtype {value.dtype}" if dtype else "")


def per_example(problem: str, what: str, value: Any, batch_size: int) -> Tensor:
    """``value`` if it is a tensor of shape (batch_size,) (one number per example), else a ProblemError."""
    if not isinstance(value, Tensor) or tuple(value.shape) != (batch_size,):
        raise ProblemError(f"{problem}: {what} must return one value per example, shape ({batch_size},) (reduce "
                           f"over every dimension but the first, e.g. .reshape({batch_size}, -1).sum(-1)); got "
                           f"{described(value)}")
    return value


def _checked_loss(loss: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def checked(self: "Problem", y: Tensor, batch: Batch, *args: Any, **kw: Any) -> Tensor:
        self.check_loss_input(y, batch)
        return per_example(self.name, "loss()", loss(self, y, batch, *args, **kw), y.shape[0])
    return checked


def _checked_x_error(x_error: Callable[..., Tensor | None]) -> Callable[..., Tensor | None]:
    def checked(self: "Problem", x: Tensor, batch: Batch, *args: Any, **kw: Any) -> Tensor | None:
        value = x_error(self, x, batch, *args, **kw)
        return None if value is None else per_example(self.name, "x_error()", value, x.shape[0])
    return checked


def _checked_inverse(inverse: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def checked(self: "Problem", x: Tensor, batch: Batch, *args: Any, **kw: Any) -> Tensor:
        self.check_batch(batch, "inverse_update")
        dx = inverse(self, x, batch, *args, **kw)
        if not isinstance(dx, Tensor) or dx.shape != x.shape:
            raise ProblemError(f"{self.name}: inverse_update() must return the update dx in x's shape "
                               f"{tuple(x.shape)}; got {described(dx)}")
        return dx
    return checked


def _checked_forward(physics: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def checked(self: "Problem", x: Tensor, batch: Batch | None = None, *args: Any, **kw: Any) -> Tensor:
        self.check_physics_input(x, batch)
        y = physics(self, x, batch, *args, **kw)
        if not isinstance(y, Tensor) or not y.is_floating_point() or y.dim() < 1 or y.shape[0] != x.shape[0]:
            raise ProblemError(f"{self.name}: the physics must return a real floating-point tensor with the batch "
                               f"dimension first, shape ({x.shape[0]}, ...) for x of shape {tuple(x.shape)}; got "
                               f"{described(y, dtype=True)}")
        return y
    return checked


def _checked_physics_jacobian(jacobian: Callable[..., tuple[Tensor, Tensor]]) -> Callable[..., tuple[Tensor, Tensor]]:
    def checked(self: "Problem", x: Tensor, batch: Batch | None = None, *args: Any,
                **kw: Any) -> tuple[Tensor, Tensor]:
        self.check_physics_input(x, batch)
        y, J = jacobian(self, x, batch, *args, **kw)
        if J.shape != (*y.shape, *x.shape[1:]) or y.shape[0] != x.shape[0]:
            raise ProblemError(f"{self.name}: physics_jacobian() must return (y, dy/dx) with y of shape "
                               f"({x.shape[0]}, ...) and dy/dx of shape (*y.shape, *x.shape[1:]); got "
                               f"{described(y)} and {described(J)} for x of shape {tuple(x.shape)}")
        return y, J
    return checked


def _checked_sample(sampler: Callable[..., Batch]) -> Callable[..., Batch]:
    def checked(self: "Problem", batch_size: int, generator: torch.Generator | None = None) -> Batch:
        _check_sample_arguments(self.name, batch_size, generator)
        batch = sampler(self, batch_size, generator)
        if not isinstance(batch, Batch) or any(isinstance(t, Tensor) and (t.dim() < 1 or t.shape[0] != batch_size)
                                               for t in batch) or not isinstance(batch.target, Tensor):
            got = (f"shapes {[tuple(t.shape) if isinstance(t, Tensor) else t for t in batch]}"
                   if isinstance(batch, Batch) else type(batch).__name__)
            raise ProblemError(f"{self.name}: sample({batch_size}) must return a problems.Batch(inputs, target, "
                               f"x_true) of tensors with {batch_size} examples each; got {got}")
        return batch
    return checked


#: method name -> a wrapper that checks the method's input first (see Problem.__init_subclass__)
_CHECKED_METHODS = {"loss": _checked_loss, "x_error": _checked_x_error, "inverse_update": _checked_inverse,
                    "forward": _checked_forward, "sample": _checked_sample,
                    "physics_jacobian": _checked_physics_jacobian}


class Problem(ABC):
    """A differentiable, batched inverse problem with its data, physics, metrics and (optionally) SIP update.

    Subclasses set ``name``, ``description``, ``Config`` and ``x_shape`` and implement ``sample`` (or
    ``sample_solution``), ``forward`` and ``default_network``. Everything else has a default built on those.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Config: ClassVar[type[ProblemConfig]]
    #: what the bench needs to compare optimizers on this problem (optimizers, hyperparameters, batch sizes,
    #: presets, held-out size), apart from the physics config
    benchmark: ClassVar[BenchmarkSettings] = BenchmarkSettings()
    #: name of the x-space metric shown in tables
    x_error_name: ClassVar[str] = "x_error"

    def __init__(self, config: ProblemConfig | None = None, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, **overrides: Any):
        config = config if config is not None else self.Config()
        if not isinstance(config, self.Config):
            raise ProblemError(f"{type(self).__name__} takes a {self.Config.__name__}, got {type(config).__name__}")
        config = config.replace(**overrides) if overrides else config.check()
        self.config = config
        self.device = torch.device(device)
        if self.device.type == "cuda" and (not torch.cuda.is_available() or
                                           (self.device.index or 0) >= torch.cuda.device_count()):
            raise ProblemError(f"device '{device}' was asked for, but this machine has "
                               f"{torch.cuda.device_count()} CUDA device(s): use device='cpu'")
        self.dtype = dtype

    # ---- shapes -------------------------------------------------------------------------------------------------
    @property
    @abstractmethod
    def x_shape(self) -> tuple[int, ...]:
        """Shape of one example's solution x (without the batch dimension)."""

    # ---- data ---------------------------------------------------------------------------------------------------
    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """Draw ``batch_size`` fresh problems. Random numbers come from ``generator`` (a CPU generator), so a seed
        gives the same data on every device; the batch is returned on ``self.device`` in ``self.dtype``.

        Default: x* = :meth:`sample_solution` (float64, CPU), y* = P(x*) (``forward`` called with batch=None), and
        the network sees y*. Problems whose data is posed differently override this method.
        """
        _check_sample_arguments(self.name, batch_size, generator)
        x = self.sample_solution(batch_size, generator)
        y = self.forward(x, None)
        return Batch(inputs=y, target=y, x_true=x).to(self.device, self.dtype)

    def sample_solution(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """Ground-truth solutions x*, float64 on the CPU, shape (batch_size, *x_shape)."""
        raise NotImplementedError(f"{type(self).__name__} must implement sample() or sample_solution()")

    def __init_subclass__(cls, **kwargs: Any):
        """Every problem's ``forward`` checks its input first (x a floating tensor of shape (B, *x_shape), B the
        batch's size, on the batch's device), its ``loss`` and ``inverse_update`` their batch (and y's shape), and
        every ``sample`` its arguments (an integer batch size >= 1, a torch.Generator or None)."""
        super().__init_subclass__(**kwargs)
        for name, checked in _CHECKED_METHODS.items():
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_checks_input", False):
                wrapper = functools.wraps(method)(checked(method))
                wrapper._checks_input = True
                setattr(cls, name, wrapper)

    # ---- physics ------------------------------------------------------------------------------------------------
    @abstractmethod
    def forward(self, x: Tensor, batch: Batch) -> Tensor:
        """The physics y = P(x), batched over the leading dimension; pure torch, differentiable, vmap-safe."""

    def loss(self, y: Tensor, batch: Batch) -> Tensor:
        """Per-example loss  L_i = 1/2 ||y_i - y*_i||^2  (summed over all non-batch dimensions)."""
        self.check_loss_input(y, batch)
        diff = y - batch.target
        return 0.5 * diff.pow(2).reshape(diff.shape[0], -1).sum(-1)

    def component_losses(self, y: Tensor, batch: Batch) -> dict[str, Tensor]:
        """Named per-example parts of the loss that the bench reports beside it (e.g. the quantum dipole's low- and
        high-energy losses), each of shape (B,). None by default."""
        return {}

    def x_error(self, x: Tensor, batch: Batch) -> Tensor | None:
        """Per-example x-space error  ||x_i - x*_i||_1  (sum over cells), or None without ground truth."""
        if batch.x_true is None:
            return None
        diff = (x - batch.x_true).abs()
        return diff.reshape(diff.shape[0], -1).sum(-1)

    def inverse_update(self, x: Tensor, batch: Batch) -> Tensor:
        """The SIP physics update dx = U(y* | x) (SIP paper, Sec. 3.2): x + dx is the inverse solver's next iterate.
        Problems without one raise NotImplementedError."""
        raise NotImplementedError(f"problem '{self.name}' defines no SIP inverse update; use a generic one "
                                  f"(physopt.NewtonUpdate / physopt.GaussNewtonUpdate) or a gradient optimizer")

    def physics_jacobian(self, x: Tensor, batch: Batch | None = None) -> tuple[Tensor, Tensor]:
        """The physics output and its per-example Jacobian, (y, dy/dx): y = forward(x, batch) of shape (B, *y_shape)
        and dy/dx of shape (B, *y_shape, *x_shape), dy/dx[i, k, j] = dy_i[k] / dx_i[j], where the problem has it
        cheaper than autograd (in closed form); HIG then differentiates only the network
        (:mod:`physopt.hig.per_example`, engine ``supplied``). Problems without one raise NotImplementedError."""
        raise NotImplementedError(f"problem '{self.name}' supplies no physics Jacobian; HIG computes it by autograd "
                                  f"(jacobian='expand')")

    @classmethod
    def defines_physics_jacobian(cls) -> bool:
        """Whether this problem class overrides :meth:`physics_jacobian` (HIG then uses it by default)."""
        return cls.physics_jacobian is not Problem.physics_jacobian

    @classmethod
    def defines_inverse(cls) -> bool:
        """Whether this problem class overrides :meth:`inverse_update` (so SIP can train on it)."""
        return cls.inverse_update is not Problem.inverse_update

    @property
    def has_inverse(self) -> bool:
        return self.defines_inverse()

    # ---- networks -----------------------------------------------------------------------------------------------
    @abstractmethod
    def default_network(self) -> nn.Module:
        """The paper's network for this problem (fresh weights from torch's global RNG), on ``self.device``."""

    def predict(self, net: nn.Module, batch: Batch) -> Tensor:
        """x = NN(inputs | theta), checked against ``x_shape``."""
        self.check_batch(batch, "predict")
        x = net(batch.inputs)
        self.check_prediction(x, batch)
        return x

    # ---- metrics ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def metrics(self, x: Tensor, batch: Batch) -> dict[str, float | None]:
        """Batch means of the loss and the x-space error of prediction x."""
        self.check_batch(batch, "metrics")
        self.check_prediction(x, batch)
        loss = self.loss(self.forward(x, batch), batch).mean().item()
        err = self.x_error(x, batch)
        return {"loss": loss, "x_error": None if err is None else err.mean().item()}

    # ---- validation ---------------------------------------------------------------------------------------------
    def check_batch(self, batch: Any, where: str) -> None:
        """TypeError unless ``batch`` is a :class:`Batch` (what :meth:`sample` returns)."""
        if not isinstance(batch, Batch):
            raise TypeError(f"{self.name}: {where}() needs the Batch the data came in (from problem.sample(...)), "
                            f"got {type(batch).__name__}")

    def check_loss_input(self, y: Tensor, batch: Batch) -> None:
        """TypeError / ProblemError unless ``batch`` is a :class:`Batch` and y a tensor of its target's shape."""
        self.check_batch(batch, "loss")
        if not isinstance(y, Tensor) or y.shape != batch.target.shape:
            raise ProblemError(f"{self.name}: loss() got y of {described(y)}, but the batch's target has shape "
                               f"{tuple(batch.target.shape)}; pass the physics output problem.forward(x, batch)")

    def check_physics_input(self, x: Tensor, batch: Batch | None) -> None:
        """ProblemError if x is not a floating-point tensor of shape (B, *x_shape) with B the batch's size, on the
        batch's device (cheap: no values are read)."""
        if not isinstance(x, Tensor):
            raise ProblemError(f"{self.name}: the physics takes a torch.Tensor x, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ProblemError(f"{self.name}: the physics takes a floating-point x, got dtype {x.dtype}; convert it "
                               f"with x.to({self.dtype})")
        if isinstance(batch, Batch) and x.device != batch.target.device:
            raise ProblemError(f"{self.name}: x is on {x.device} but the batch on {batch.target.device} (the problem "
                               f"is on {self.device}); move x with x.to(batch.target.device)")
        size = batch.batch_size if isinstance(batch, Batch) else x.shape[0] if x.dim() else None
        if x.dim() != len(self.x_shape) + 1 or tuple(x.shape[1:]) != tuple(self.x_shape) or x.shape[0] != size:
            raise ProblemError(f"{self.name}: the physics got x of shape {tuple(x.shape)}, expected "
                               f"{(size, *self.x_shape)} (batch size {size}, x_shape {tuple(self.x_shape)}); check "
                               f"the network's output layer or reshape its output")

    def check_prediction(self, x: Tensor, batch: Batch) -> None:
        """Raise :class:`ProblemError` with a fix if x does not fit this problem and batch."""
        self.check_batch(batch, "check_prediction")
        if not isinstance(x, Tensor):
            raise ProblemError(f"{self.name}: the prediction must be a torch.Tensor, got {type(x).__name__}")
        nd = len(self.x_shape)
        if x.dim() != nd + 1 or tuple(x.shape[1:]) != tuple(self.x_shape) or x.shape[0] != batch.batch_size:
            raise ProblemError(f"{self.name}: prediction has shape {tuple(x.shape)}, expected "
                               f"{(batch.batch_size, *self.x_shape)} (batch size {batch.batch_size}, "
                               f"x_shape {self.x_shape}); "
                               f"check the network's output layer or reshape its output")
        if x.device != batch.target.device:
            raise ProblemError(f"{self.name}: prediction is on {x.device} but the batch is on "
                               f"{batch.target.device}; move the network with net.to(problem.device) or create "
                               f"the problem with device='{x.device}'")
        if not x.is_floating_point():
            raise ProblemError(f"{self.name}: prediction has dtype {x.dtype}; a floating dtype is required")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config}, device={self.device}, dtype={self.dtype})"
