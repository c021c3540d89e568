"""Per-example Jacobians of a physics output w.r.t. all network weights, with torch.func, in memory-bounded chunks.

For a batch of b examples the HIG update (Schnell et al., ICLR 2022, Eq. 7) needs the stacked Jacobian

    J = [ dy_1/dtheta ; dy_2/dtheta ; ... ; dy_b/dtheta ],   y_i = P(NN(inputs_i | theta), args_i)  flattened,

a (b * |y|) x |theta| matrix, example-major. It is computed as ``vmap(jacrev(y_i(theta)))`` over the examples,
``chunk_size`` examples at a time; the chunk size is chosen so that the estimated peak memory stays under
``memory_bound`` (bytes), and it is the only thing that changes when memory is short.

For networks whose trainable weights all sit in ``nn.Linear`` layers, each applied once to a (b, in) input,
:func:`linear_factors` gives the same information in factored form: per layer l, the layer inputs a_i and
D_l = dy/do_l (o_l = W_l a + b_l), so that  dy_i/dW_l = D_l,i (x) a_i.  The Gram matrix J J^T then costs
O((b|y|)^2 * sum_l width_l) instead of O((b|y|)^2 * |theta|) (see :func:`physopt.linalg.factored_gram`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap

Physics = Callable[..., Tensor]


class MemoryBoundError(MemoryError):
    """The Jacobian (or its decomposition) does not fit into the memory bound even one example at a time."""


class JacobianError(RuntimeError):
    """The per-example Jacobian could not be computed (the physics is not differentiable, or not torch.func-safe)."""


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


def check_batch(inputs: Tensor, args: tuple, device: torch.device) -> int:
    """The batch size; every tensor argument must be on ``device`` with the same leading dimension."""
    if not isinstance(inputs, Tensor) or inputs.dim() < 1:
        raise ValueError(f"inputs must be a tensor with a leading batch dimension, got {type(inputs).__name__}")
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


# ---- memory -----------------------------------------------------------------------------------------------------------
def saved_activation_bytes(model: nn.Module, inputs: Tensor, physics: Physics, args: tuple) -> int:
    """Bytes autograd saves for the backward pass of one example through network + physics."""
    total = [0]

    def pack(t: Tensor) -> Tensor:
        total[0] += t.numel() * t.element_size()
        return t

    one, one_args = inputs[:1], slice_examples(args, 0, 1)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        physics(model(one), *one_args)
    return total[0]


def chunk_size_for(memory_bound: int | None, batch: int, fixed_bytes: int, per_example_bytes: int,
                   what: str) -> int:
    """Largest chunk of examples with  fixed + chunk * per_example <= memory_bound  (all of them without a bound)."""
    if memory_bound is None:
        return batch
    free = memory_bound - fixed_bytes
    if free < per_example_bytes:
        raise MemoryBoundError(
            f"{what} needs about {_gib(fixed_bytes + per_example_bytes)} even one example at a time "
            f"({_gib(fixed_bytes)} for the stacked result and its decomposition), more than memory_bound = "
            f"{_gib(memory_bound)}: lower the batch size, use a smaller network, or raise memory_bound")
    return max(1, min(batch, free // per_example_bytes))


def _gib(n: float) -> str:
    return f"{n / 2 ** 30:.3g} GiB"


def _wrap_transform_error(err: Exception) -> JacobianError:
    return JacobianError(
        f"computing per-example Jacobians with torch.func.vmap(jacrev(...)) failed: {err}\nThe network and the "
        f"physics must be pure torch functions of their inputs: no .item()/.numpy()/.tolist(), no in-place writes "
        f"into inputs, no Python branching on tensor values, no BatchNorm in training mode (use model.eval() or a "
        f"per-example normalisation)")


def _check_nonzero(rows: Tensor, what: str) -> None:
    if not bool((rows != 0).any()):
        raise JacobianError(f"the {what} is zero for every example: the physics output does not depend on the "
                            f"network output (is the physics differentiable w.r.t. its input? a .detach(), "
                            f"torch.no_grad() or a round trip through numpy breaks the chain)")


def _plan(model: nn.Module, inputs: Tensor, physics: Physics, args: tuple, columns: int, chunk_size: int | None,
          memory_bound: int | None, extra_bytes: int, what: str) -> tuple[Tensor, int]:
    """The batched physics output (shape-checked) and the chunk size for a stacked result of b*|y| x ``columns``."""
    b = inputs.shape[0]
    with torch.no_grad():
        y_full = physics(model(inputs), *args)
    if not isinstance(y_full, Tensor) or y_full.dim() < 1 or y_full.shape[0] != b:
        raise ValueError(f"physics returned {type(y_full).__name__} of shape {tuple(getattr(y_full, 'shape', ()))}; "
                         f"it must return a tensor whose leading dimension is the batch size {b}")
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        return y_full, chunk_size
    m, item = y_full[0].numel(), torch.finfo(y_full.dtype).bits // 8
    fixed = b * m * columns * item + extra_bytes
    per_example = 0 if memory_bound is None else \
        m * (2 * columns * item + saved_activation_bytes(model, inputs, physics, args))
    return y_full, chunk_size_for(memory_bound, b, fixed, per_example, what)


def _chunks(per_example: Callable, primal: Any, inputs: Tensor, args: tuple, chunk_size: int):
    """Run the vmapped per-example Jacobian over ``chunk_size`` examples at a time: yields (start, stop, jac, y)."""
    b = inputs.shape[0]
    for start in range(0, b, chunk_size):
        stop = min(b, start + chunk_size)
        try:
            jac, y_chunk = per_example(primal, inputs[start:stop], *slice_examples(args, start, stop))
        except (RuntimeError, TypeError, ValueError) as err:
            raise _wrap_transform_error(err) from err
        yield start, stop, jac, y_chunk


# ---- the stacked Jacobian ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class StackedJacobian:
    """J (b*|y| x |theta|, example-major), y (b, *y_shape), the parameter layout, and the chunk size used."""
    J: Tensor
    y: Tensor
    names: list[str]
    shapes: list[torch.Size]
    chunk_size: int

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        """Split a vector over all weights into per-parameter tensors."""
        out, start = {}, 0
        for name, shape in zip(self.names, self.shapes):
            n = shape.numel()
            out[name] = flat[start:start + n].reshape(shape)
            start += n
        return out


def per_example_jacobian(model: nn.Module, inputs: Tensor, physics: Physics, *args: Any,
                         chunk_size: int | None = None, memory_bound: int | None = None,
                         extra_bytes: int = 0) -> StackedJacobian:
    """Stacked per-example Jacobian of  y_i = physics(model(inputs_i), *args_i)  w.r.t. all trainable weights.

    Args:
        model: any ``nn.Module``; evaluated with :func:`torch.func.functional_call`.
        inputs: network inputs (b, ...).
        physics: ``physics(x, *args) -> y`` batched, differentiable and vmap-safe.
        args: extra physics arguments; every tensor in them is split per example along dim 0.
        chunk_size: examples per vmap call; by default the largest that keeps the estimated peak under
            ``memory_bound`` (all examples when no bound is given).
        memory_bound: bytes the Jacobian computation may use, including ``extra_bytes`` (e.g. its decomposition).

    Raises:
        MemoryBoundError: J and ``extra_bytes`` alone exceed the bound, or not even one example fits.
        JacobianError: torch.func cannot differentiate the physics, or the Jacobian is identically zero.
    """
    params = trainable_parameters(model)
    device = next(iter(params.values())).device
    b = check_batch(inputs, args, device)
    frozen = {n: t.detach() for n, t in model.named_parameters() if n not in params}
    buffers = {**dict(model.named_buffers()), **frozen}
    detached = {n: p.detach() for n, p in params.items()}
    n_params = sum(p.numel() for p in params.values())

    y_full, chunk_size = _plan(model, inputs, physics, args, n_params, chunk_size, memory_bound, extra_bytes,
                               "the stacked Jacobian")
    m, dtype = y_full[0].numel(), y_full.dtype

    def y_of(theta: dict[str, Tensor], inp: Tensor, *a: Any) -> tuple[Tensor, Tensor]:
        x = functional_call(model, ({**theta}, buffers), (inp.unsqueeze(0),))
        y = physics(x, *_map_tensors(lambda t: t.unsqueeze(0), a)).reshape(-1)
        return y, y

    per_example = vmap(jacrev(y_of, has_aux=True), in_dims=(None, 0, *_in_dims(args)))
    J = torch.empty(b * m, n_params, dtype=dtype, device=device)
    y = torch.empty(b, m, dtype=dtype, device=device)
    for start, stop, jac, y_chunk in _chunks(per_example, detached, inputs, args, chunk_size):
        col = 0
        for name, p in params.items():
            J[start * m:stop * m, col:col + p.numel()] = jac[name].reshape((stop - start) * m, -1)
            col += p.numel()
        y[start:stop] = y_chunk
    _check_nonzero(J, "Jacobian of the physics output w.r.t. the weights")
    return StackedJacobian(J, y.view(y_full.shape), list(params), [p.shape for p in params.values()], chunk_size)


# ---- factored form for Linear networks ---------------------------------------------------------------------------------
@dataclasses.dataclass
class LinearFactor:
    """One ``nn.Linear`` layer: its inputs A (b, in) and D = dy/d(layer output), shape (b*|y|, out)."""
    weight: str
    bias: str | None
    A: Tensor
    D: Tensor


@dataclasses.dataclass
class FactoredJacobian:
    """The stacked Jacobian in factored form (one :class:`LinearFactor` per layer), y (b, *y_shape), chunk size."""
    factors: list[LinearFactor]
    y: Tensor
    chunk_size: int


def linear_layers(model: nn.Module) -> list[tuple[str, nn.Linear]] | None:
    """The model's Linear layers if they hold all trainable weights (so the factored form applies), else None."""
    params = {n for n, p in model.named_parameters() if p.requires_grad}
    layers, covered = [], set()
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            prefix = f"{name}." if name else ""
            own = {prefix + n for n, p in mod.named_parameters(recurse=False) if p.requires_grad}
            if own and not mod.weight.requires_grad:
                return None  # a trainable bias on a frozen weight: use the generic route
            if own:
                layers.append((name, mod))
                covered |= own
    return layers if layers and covered == params else None


def _record_layer_inputs(model: nn.Module, layers: list[tuple[str, nn.Linear]], inputs: Tensor) -> list[Tensor] | None:
    """Each layer's input in a plain batched forward, or None if a layer is called != once or not on (b, in)."""
    seen: dict[str, list[Tensor]] = {name: [] for name, _ in layers}
    handles = [mod.register_forward_hook(lambda mod, inp, out, name=name: seen[name].append(inp[0].detach()))
               for name, mod in layers]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for h in handles:
            h.remove()
    b = inputs.shape[0]
    recorded = []
    for name, _ in layers:
        calls = seen[name]
        if len(calls) != 1 or calls[0].dim() != 2 or calls[0].shape[0] != b:
            return None
        recorded.append(calls[0])
    return recorded


def linear_factors(model: nn.Module, inputs: Tensor, physics: Physics, *args: Any, chunk_size: int | None = None,
                   memory_bound: int | None = None, extra_bytes: int = 0) -> FactoredJacobian | None:
    """The stacked Jacobian in factored form, or None when the model is not a network of plain Linear layers
    (each applied once per example to a (b, in) input) plus parameter-free modules.

    D_l = dy/do_l is obtained as a per-example ``jacrev`` w.r.t. a zero perturbation added to every layer output
    (forward hooks); A_l from one batched forward. Memory bounding and errors as in :func:`per_example_jacobian`.
    """
    layers = linear_layers(model)
    if layers is None:
        return None
    params = trainable_parameters(model)
    device = next(iter(params.values())).device
    b = check_batch(inputs, args, device)
    A = _record_layer_inputs(model, layers, inputs)
    if A is None:
        return None
    width = sum(mod.out_features for _, mod in layers)
    y_full, chunk_size = _plan(model, inputs, physics, args, width, chunk_size, memory_bound, extra_bytes,
                               "the factored Jacobian")
    m, dtype = y_full[0].numel(), y_full.dtype

    holder: dict[str, Tensor] = {}
    handles = [mod.register_forward_hook(lambda mod, inp, out, name=name: out + holder[name]) for name, mod in layers]
    state = {**{n: p.detach() for n, p in model.named_parameters()}, **dict(model.named_buffers())}

    def y_of(eps: dict[str, Tensor], inp: Tensor, *a: Any) -> tuple[Tensor, Tensor]:
        holder.update(eps)
        x = functional_call(model, state, (inp.unsqueeze(0),))
        y = physics(x, *_map_tensors(lambda t: t.unsqueeze(0), a)).reshape(-1)
        return y, y

    zeros = {name: torch.zeros(mod.out_features, dtype=dtype, device=device) for name, mod in layers}
    per_example = vmap(jacrev(y_of, has_aux=True), in_dims=(None, 0, *_in_dims(args)))
    D = {name: torch.empty(b * m, mod.out_features, dtype=dtype, device=device) for name, mod in layers}
    y = torch.empty(b, m, dtype=dtype, device=device)
    try:
        for start, stop, jac, y_chunk in _chunks(per_example, zeros, inputs, args, chunk_size):
            for name in D:
                D[name][start * m:stop * m] = jac[name].reshape((stop - start) * m, -1)
            y[start:stop] = y_chunk
    finally:
        for h in handles:
            h.remove()
    _check_nonzero(torch.cat([d.reshape(-1) for d in D.values()]), "Jacobian of the physics output w.r.t. the "
                                                                    "network output")
    factors = []
    for (name, mod), a in zip(layers, A):
        prefix = f"{name}." if name else ""
        bias = prefix + "bias" if (mod.bias is not None and mod.bias.requires_grad) else None
        factors.append(LinearFactor(prefix + "weight", bias, a.to(dtype), D[name]))
    return FactoredJacobian(factors, y.view(y_full.shape), chunk_size)
