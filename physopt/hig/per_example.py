"""The per-example machinery under every HIG route: batch checks, the two Jacobian engines, chunks.

For a batch of b examples the HIG update (Schnell et al., ICLR 2022, Eq. 7) needs derivatives of

    y_i = P(NN(inputs_i | theta), args_i)     (flattened, m = |y| entries per example)

for each example separately, w.r.t. what the route needs: all weights (:mod:`physopt.hig.dense`) or a zero
perturbation of every Linear layer's output (:mod:`physopt.hig.factored`). Two engines compute them, ``chunk_size``
examples at a time, with the same result to rounding:

* ``expand`` (:func:`expanded_chunks`, the default): every example is repeated m times, the batch of b m copies runs
  forward once, and one ordinary backward pass with the one-hot cotangent e_k on copy k of each example gives row k
  of every example's Jacobian, because the examples do not interact:  d(sum_(i,k) y_(i,k),k)/d leaf_(i,k) =
  dy_(i,k)/d leaf.  Only torch.autograd is needed, and the physics runs as the plain batched code it is.
* ``vmap`` (:func:`jacobian_chunks`): ``torch.func.vmap(jacrev(f))`` over the examples (the earlier engine; it
  runs the forward once per example and the backward vmapped over the m rows, at vmap's per-op overhead).
* ``supplied`` (:func:`supplied_chunks`): the physics supplies its own Jacobian, ``physics_jacobian(x, *args) ->
  (y, dy/dx)`` (e.g. in closed form, as the quantum dipole's Crank-Nicolson rollout does), and only the network is
  differentiated: its rows are pulled back through the network with dy/dx as cotangents, J_i = (dy_i/dx_i)(dx_i/dW).
  The physics never runs under autograd; the chain rule gives the same J as the other engines to round-off.

Both require what HIG's per-example Jacobian means anyway: the physics treats the examples of a batch
independently. Every tensor in ``args`` is split per example along dim 0 (and repeated with its example).
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn
from torch.func import jacrev, vmap

Physics = Callable[..., Tensor]


class JacobianError(RuntimeError):
    """The per-example Jacobian could not be computed (the physics is not differentiable, or not torch.func-safe)."""


class BatchDependenceError(JacobianError, ValueError):
    """The model couples the examples of a batch (BatchNorm with batch statistics), so per-example Jacobians do not
    exist. A ValueError too: it is a bad input, refused before anything is computed."""


# ---- inputs ---------------------------------------------------------------------------------------------------------
def trainable_parameters(model: nn.Module) -> dict[str, Tensor]:
    """Named parameters with ``requires_grad``, checked to share one device."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("the model has no trainable parameters (none with requires_grad=True)")
    devices = sorted({str(p.device) for p in params.values()})
    if len(devices) > 1:
        where = {d: [n for n, p in params.items() if str(p.device) == d][:3] for d in devices}
        raise ValueError(f"the model's parameters live on several devices {where}; the stacked Jacobian needs them on "
                         f"one: move the model with model.to(device)")
    return params


def _map_tensors(fn: Callable[[Tensor], Any], obj: Any) -> Any:
    """Apply ``fn`` to every tensor in a nest of tuples / NamedTuples / lists / dicts; other leaves unchanged."""
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_map_tensors(fn, o) for o in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_map_tensors(fn, o) for o in obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(fn, v) for k, v in obj.items()}
    return obj


def _in_dims(obj: Any) -> Any:
    """vmap in_dims for a nest: 0 for tensors (every tensor argument is per-example), None for the rest."""
    if isinstance(obj, Tensor):
        return 0
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_in_dims(o) for o in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_in_dims(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _in_dims(v) for k, v in obj.items()}
    return None


def slice_examples(args: Any, start: int, stop: int) -> Any:
    return _map_tensors(lambda t: t[start:stop], args)


def check_batch_norm(model: nn.Module) -> None:
    """:class:`BatchDependenceError` if a BatchNorm layer of ``model`` normalises with batch statistics (training
    mode, or no running statistics): each example's output then depends on the others."""
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and (module.training or module.running_mean is None):
            raise BatchDependenceError(f"per-example Jacobians need batch-independent layers, but the model's "
                                       f"BatchNorm layer '{name}' normalises with batch statistics (training mode); "
                                       f"call model.eval() or use GroupNorm/LayerNorm")


def check_inputs(inputs: Any, param: Tensor) -> None:
    """ValueError unless ``inputs`` is a tensor of at least one example on the device of the model's parameter
    ``param``, and (if floating point) of its dtype."""
    if not isinstance(inputs, Tensor) or inputs.dim() < 1 or inputs.shape[0] < 1:
        got = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must be a tensor with at least one example along dim 0 (an empty batch has no "
                         f"Jacobian), got {got}")
    if inputs.device != param.device:
        raise ValueError(f"inputs are on {inputs.device} but the model's parameters on {param.device}: move the inputs "
                         f"with inputs.to('{param.device}') (or the model with model.to('{inputs.device}'))")
    if inputs.is_floating_point() and inputs.dtype != param.dtype:
        raise ValueError(f"inputs have dtype {inputs.dtype} but the model's parameters {param.dtype}: convert the "
                         f"inputs with inputs.to({param.dtype}) (or the model with model.to({inputs.dtype}))")


def check_batch(inputs: Tensor, args: tuple, param: Tensor) -> int:
    """The batch size (>= 1); ``inputs`` must fit the model's parameter ``param`` (:func:`check_inputs`) and every
    tensor argument must be on its device with the same leading dimension."""
    check_inputs(inputs, param)
    device = param.device
    b = inputs.shape[0]
    problems: list[str] = []

    def check(t: Tensor) -> Tensor:
        if t.dim() < 1 or t.shape[0] != b:
            problems.append(f"a tensor argument of shape {tuple(t.shape)} has no leading batch dimension of size {b}; "
                            f"every tensor argument is split per example: pass shared tensors through the physics "
                            f"function's closure instead")
        elif t.device != device:
            problems.append(f"a tensor argument is on {t.device} but the model is on {device}: move it there")
        return t

    check(inputs)
    _map_tensors(check, args)
    if problems:
        raise ValueError(problems[0])
    return b


#: how the per-example Jacobian is computed (see the module docstring); ``auto``: :func:`resolve_engine`
JACOBIAN_ENGINES = ("auto", "expand", "vmap", "supplied")

#: ``physics_jacobian(x, *args) -> (y, J)``: the physics output y (b, *y_shape) and its Jacobian w.r.t. the network
#: output, J (b, *y_shape, *x_shape) with J[i, k, j] = dy_i[k] / dx_i[j] (examples independent)
PhysicsJacobian = Callable[..., tuple[Tensor, Tensor]]


def resolve_engine(engine: str, supplied: bool = False) -> str:
    """The engine ``auto`` stands for: ``supplied`` when the physics supplies its Jacobian (``supplied`` is True),
    else ``expand`` (one batched backward; faster than vmap on every bundled setup, see results/hig-timing/).
    ``supplied`` without a physics Jacobian is a ValueError."""
    if engine == "supplied" and not supplied:
        raise ValueError("jacobian='supplied' needs the physics' own Jacobian: pass physics_jacobian=f with "
                         "f(x, *args) -> (y, dy/dx), or use jacobian='auto', 'expand' or 'vmap'")
    if engine == "auto":
        return "supplied" if supplied else "expand"
    return engine


# ---- running the transforms ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def explained(how: str, advice: str) -> Iterator[None]:
    """Turn a RuntimeError / TypeError / ValueError raised inside into a :class:`JacobianError` that names the
    computation that failed (``how``) and what the network and physics must satisfy (``advice``); a JacobianError
    passes unchanged."""
    try:
        yield
    except JacobianError:
        raise
    except (RuntimeError, TypeError, ValueError) as err:
        raise JacobianError(f"{how} failed: {err}\n{advice}") from err
def physics_output(model: nn.Module, inputs: Tensor, physics: Physics, args: tuple) -> Tensor:
    """The batched physics output y = physics(model(inputs), *args) without a graph, checked to be (b, ...)."""
    b = inputs.shape[0]
    with torch.no_grad():
        y = physics(model(inputs), *args)
    if not isinstance(y, Tensor) or y.dim() < 1 or y.shape[0] != b:
        raise ValueError(f"physics returned {type(y).__name__} of shape {tuple(getattr(y, 'shape', ()))}; "
                         f"it must return a tensor whose leading dimension is the batch size {b}")
    return y


def probe_output(model: nn.Module, inputs: Tensor, physics: Physics, args: tuple) -> Tensor:
    """y of the first example alone, (1, ...), without a graph: its size and dtype plan the Jacobian."""
    with torch.no_grad():
        y = physics(model(inputs[:1]), *slice_examples(args, 0, 1))
    if not isinstance(y, Tensor) or y.dim() < 1 or y.shape[0] != 1:
        raise ValueError(f"physics returned {type(y).__name__} of shape {tuple(getattr(y, 'shape', ()))} for one "
                         f"example; it must return a tensor whose leading dimension is the batch size (1 here)")
    return y


def planning_output(model: nn.Module, inputs: Tensor, physics: Physics, args: tuple, engine: str,
                    probe: Tensor | None) -> Tensor:
    """The physics output that sizes the Jacobian (its per-example size and dtype): the whole batch's for ``vmap``
    (that engine always computed it), else one example's: ``probe`` where the caller already has it."""
    if engine == "vmap":
        return physics_output(model, inputs, physics, args)
    return probe if probe is not None else probe_output(model, inputs, physics, args)


def repeat_examples(obj: Any, m: int) -> Any:
    """Every tensor in a nest with each example (dim 0) repeated m times in place: [a, b] -> [a, a, .., b, b, ..]."""
    return _map_tensors(lambda t: t.repeat_interleave(m, 0), obj)


def expanded_chunks(forward: Callable[..., tuple[Tensor, list[Tensor]]], inputs: Tensor, args: tuple,
                    chunk_size: int, m: int) -> Iterator[tuple[int, int, tuple[Tensor, ...], Tensor]]:
    """The ``expand`` engine: yields (start, stop, grads, y) per chunk of ``chunk_size`` examples.

    ``forward(inputs_rep, *args_rep) -> (y, leaves)`` runs on the chunk with every example repeated m times
    (c m rows) and returns the output y (c m, ...) and the tensors to differentiate, each with one row per copy.
    One backward pass with cotangent  e_k  on copy k of example i  gives  grads[j][i m + k] = dy_(i,k) / d leaves[j]
    (row k of example i's Jacobian), as no copy depends on another. ``y`` is one copy per example, (c, m).
    """
    b = inputs.shape[0]
    for start in range(0, b, chunk_size):
        stop = min(b, start + chunk_size)
        rows = (stop - start) * m
        with explained("computing per-example Jacobians by one batched backward pass (jacobian='expand')",
                       "The physics must be differentiable with torch.autograd (no .detach(), .item(), numpy round "
                       "trips) and take any batch size, treating its examples independently; jacobian='vmap' is the "
                       "other engine"):
            with torch.enable_grad():
                y, leaves = forward(repeat_examples(inputs[start:stop], m),
                                    *repeat_examples(slice_examples(args, start, stop), m))
            if not isinstance(y, Tensor) or y.shape[0] != rows or y[0].numel() != m:
                raise ValueError(f"physics returned shape {tuple(getattr(y, 'shape', ()))} for a batch of {rows}, "
                                 f"expected ({rows}, ...) with {m} values per example as for one example")
            if not y.requires_grad:
                raise JacobianError(
                    "the physics output is not differentiable w.r.t. the network output (it carries no autograd "
                    "graph): a .detach(), torch.no_grad() or a round trip through numpy breaks the chain")
            y = y.reshape(rows, m)
            cotangent = torch.eye(m, dtype=y.dtype, device=y.device).repeat(stop - start, 1)
            grads = torch.autograd.grad(y, leaves, cotangent, allow_unused=True, materialize_grads=True)
        yield start, stop, grads, y[::m].detach()


def supplied_chunks(physics_jacobian: PhysicsJacobian, x: Tensor, args: tuple, chunk_size: int,
                    m: int) -> Iterator[tuple[int, int, tuple[Tensor], Tensor]]:
    """The ``supplied`` engine's physics part: yields (start, stop, (P,), y) per chunk of ``chunk_size`` examples, as
    :func:`expanded_chunks` does for the physics alone: P (c m, *x_shape) holds row k of example i's dy_i/dx_i at
    P[i m + k], y (c, m). ``x``: the network outputs (b, *x_shape)."""
    b = x.shape[0]
    for start in range(0, b, chunk_size):
        stop = min(b, start + chunk_size)
        c = stop - start
        with explained("computing the physics Jacobian with the supplied physics_jacobian (jacobian='supplied')",
                       "physics_jacobian(x, *args) must return (y, J): the physics output y of shape (b, ...) and "
                       "its Jacobian J of shape (b, *y.shape[1:], *x.shape[1:])"):
            with torch.no_grad():
                out = physics_jacobian(x[start:stop], *slice_examples(args, start, stop))
            if not (isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, Tensor) for t in out)):
                raise TypeError(f"physics_jacobian returned {type(out).__name__}, expected a pair (y, J) of tensors")
            y, P = out
            if y.shape[0] != c or y[0].numel() != m:
                raise ValueError(f"physics_jacobian returned y of shape {tuple(y.shape)} for {c} examples, expected "
                                 f"({c}, ...) with {m} values per example as the physics returns")
            if P.shape != (c, *y.shape[1:], *x.shape[1:]):
                raise ValueError(f"physics_jacobian returned J of shape {tuple(P.shape)}, expected "
                                 f"{(c, *y.shape[1:], *x.shape[1:])} (batch, y's shape, x's shape)")
        yield start, stop, (P.reshape(c * m, *x.shape[1:]).to(x.dtype),), y.reshape(c, m).detach()


def one_example(physics: Physics, x: Tensor, args: tuple) -> Tensor:
    """y_i flattened to (|y|,): ``physics`` on x (the network output for one example, a batch of 1) and args_i
    (which vmap passes without their batch dimension; it is restored here)."""
    return physics(x, *_map_tensors(lambda t: t.unsqueeze(0), args)).reshape(-1)


def jacobian_chunks(y_of: Callable[..., tuple[Tensor, Tensor]], primal: Any, inputs: Tensor, args: tuple,
                    chunk_size: int) -> Iterator[tuple[int, int, Any, Tensor]]:
    """``vmap(jacrev(y_of, has_aux=True))`` over ``chunk_size`` examples at a time: yields (start, stop, jac, y).

    ``y_of(primal, input_i, *args_i) -> (y_i, y_i)`` is differentiated w.r.t. ``primal`` (shared by all examples).
    """
    per_example = vmap(jacrev(y_of, has_aux=True), in_dims=(None, 0, *_in_dims(args)))
    b = inputs.shape[0]
    for start in range(0, b, chunk_size):
        stop = min(b, start + chunk_size)
        with explained("computing per-example Jacobians with torch.func.vmap(jacrev(...))",
                       "The network and the physics must be pure torch functions of their inputs: no "
                       ".item()/.numpy()/.tolist(), no in-place writes into inputs, no Python branching on tensor "
                       "values, no BatchNorm in training mode (use model.eval() or a per-example normalisation)"):
            jac, y_chunk = per_example(primal, inputs[start:stop], *slice_examples(args, start, stop))
        yield start, stop, jac, y_chunk


JACOBIAN_OF_WEIGHTS = "Jacobian of the physics output w.r.t. the weights"
JACOBIAN_OF_OUTPUT = "Jacobian of the physics output w.r.t. the network output"


def nonzero_flag(rows: Tensor) -> Tensor:
    """0-dim bool on the device: does ``rows`` have a nonzero entry (no host sync)."""
    return (rows != 0).any()


def zero_jacobian_error(what: str) -> JacobianError:
    return JacobianError(f"the {what} is zero for every example: the physics output does not depend on the network "
                         f"output (is the physics differentiable w.r.t. its input? a .detach(), torch.no_grad() or a "
                         f"round trip through numpy breaks the chain)")


def check_nonzero(nonzero: Tensor, what: str) -> None:
    """JacobianError unless the flag from :func:`nonzero_flag` is set (one host sync)."""
    if not bool(nonzero):
        raise zero_jacobian_error(what)


class OverJacobian:
    """Base of a route that holds a Jacobian object with ``y`` and ``chunk_size`` (:mod:`physopt.hig.direction`)."""
    jacobian: Any

    @property
    def y(self) -> Tensor:
        """The physics output (b, ...) from the same pass as the derivatives."""
        return self.jacobian.y

    @property
    def chunk_size(self) -> int:
        """Examples per vmap call that were used."""
        return self.jacobian.chunk_size

    @property
    def nonzero(self) -> Tensor:
        """0-dim bool on the device: whether the Jacobian has a nonzero entry."""
        return self.jacobian.nonzero

    def tensors(self) -> list[Tensor]:
        """What the Jacobian is made of."""
        return self.jacobian.tensors()
