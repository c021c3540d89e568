"""The factored route: HIG for networks whose trainable weights all sit in ``nn.Linear`` layers.

For such a network (each Linear applied once per forward to a (b, in) input) the per-example Jacobian factors per
layer l into the layer inputs a_i and D_l = dy/do_l (o_l = W_l a + b_l):  dy_i/dW_l = D_l,i (x) a_i,
dy_i/db_l = D_l,i.  The Gram matrix J J^T is then assembled from the factors (:func:`factored_gram`) in
O((b|y|)^2 * sum_l width_l) instead of O((b|y|)^2 * |theta|), and J is never formed; J^T w is one outer product per
layer (:func:`factored_jt_vector`). Same half-inversion as the dense Gram route (:mod:`physopt.hig.decompositions`).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .decompositions import Spectrum, gram_coefficients
from .memory import plan_chunks
from .per_example import (JACOBIAN_ENGINES, JACOBIAN_OF_OUTPUT, OverJacobian, Physics, PhysicsJacobian, check_batch,
                          check_batch_norm, check_nonzero, expanded_chunks, explained, jacobian_chunks, nonzero_flag,
                          one_example, planning_output, repeat_examples, resolve_engine, supplied_chunks,
                          trainable_parameters)
from ..validation import check_choice

__all__ = ["LinearFactor", "FactoredJacobian", "linear_layers", "linear_factors", "factored_gram",
           "factored_jt_vector", "FactoredRoute", "build"]


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
    nonzero: Tensor | None = None     # 0-dim bool on the device: does some D_l have a nonzero entry

    def tensors(self) -> list[Tensor]:
        """What the Jacobian is made of (for the diagnosis of a non-finite step)."""
        return [t for f in self.factors for t in (f.A, f.D)]


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


def _record_layer_inputs(model: nn.Module, layers: list[tuple[str, nn.Linear]],
                         inputs: Tensor) -> tuple[list[Tensor] | None, Any]:
    """Each layer's input in a plain batched forward (None if a layer is called != once or not on (b, in)), and
    the network's output of that forward."""
    seen: dict[str, list[Tensor]] = {name: [] for name, _ in layers}
    handles = [mod.register_forward_hook(lambda mod, inp, out, name=name: seen[name].append(inp[0].detach()))
               for name, mod in layers]
    try:
        with torch.no_grad():
            out = model(inputs)
    finally:
        for h in handles:
            h.remove()
    b = inputs.shape[0]
    recorded = []
    for name, _ in layers:
        calls = seen[name]
        if len(calls) != 1 or calls[0].dim() != 2 or calls[0].shape[0] != b:
            return None, out
        recorded.append(calls[0])
    return recorded, out


def linear_factors(model: nn.Module, inputs: Tensor, physics: Physics, *args: Any, chunk_size: int | None = None,
                   memory_bound: int | None = None, extra_bytes: int = 0,
                   engine: str = "auto", check: bool = True, probe: Tensor | None = None,
                   physics_jacobian: PhysicsJacobian | None = None) -> FactoredJacobian | None:
    """The stacked Jacobian in factored form, or None when the model is not a network of plain Linear layers
    (each applied once per example to a (b, in) input) plus parameter-free modules.

    D_l = dy/do_l is the derivative w.r.t. a zero perturbation added to every layer output (forward hooks), by the
    ``engine`` of :mod:`physopt.hig.per_example` (``expand``: one batched backward; ``vmap``: per-example
    ``jacrev``; ``supplied``: one batched backward through the network alone with the rows of
    ``physics_jacobian``'s dy/dx as cotangents, D_l = (dy/dx)(dx/do_l)); A_l from one batched forward. Memory
    bounding, errors and ``check`` as in :func:`per_example_jacobian`.
    """
    check_choice("engine", engine, JACOBIAN_ENGINES)
    engine = resolve_engine(engine, physics_jacobian is not None)
    layers = linear_layers(model)
    if layers is None:
        return None
    params = trainable_parameters(model)
    device = next(iter(params.values())).device
    check_batch_norm(model)
    b = check_batch(inputs, args, next(iter(params.values())))
    A, x_net = _record_layer_inputs(model, layers, inputs)     # x_net: the network output ('supplied' needs it)
    if A is None:
        return None
    width = sum(mod.out_features for _, mod in layers)
    y_probe = planning_output(model, inputs, physics, args, engine, probe)
    chunk_size = plan_chunks(model, inputs, physics, args, y_probe, width, chunk_size, memory_bound, extra_bytes,
                             "the factored Jacobian")
    m, dtype = y_probe[0].numel(), y_probe.dtype

    holder: dict[str, Tensor] = {}
    handles = [mod.register_forward_hook(lambda mod, inp, out, name=name: out + holder[name]) for name, mod in layers]
    state = {**{n: p.detach() for n, p in model.named_parameters()}, **dict(model.named_buffers())}
    names = [name for name, _ in layers]
    widths = {name: mod.out_features for name, mod in layers}
    kinds = {name: mod.weight.dtype for name, mod in layers}     # the perturbations' dtype: the layer output's
    D = {name: torch.empty(b * m, widths[name], dtype=dtype, device=device) for name in names}
    y = torch.empty(b, m, dtype=dtype, device=device)
    try:
        if engine == "vmap":
            def y_of(eps: dict[str, Tensor], inp: Tensor, *a: Any) -> tuple[Tensor, Tensor]:
                holder.update(eps)
                out = one_example(physics, functional_call(model, state, (inp.unsqueeze(0),)), a)
                return out, out

            zeros = {name: torch.zeros(widths[name], dtype=kinds[name], device=device) for name in names}
            for start, stop, jac, y_chunk in jacobian_chunks(y_of, zeros, inputs, args, chunk_size):
                for name in names:
                    D[name][start * m:stop * m] = jac[name].reshape((stop - start) * m, -1)
                y[start:stop] = y_chunk
        else:
            def perturbed(inp: Tensor) -> tuple[Tensor, list[Tensor]]:
                for name in names:   # one zero perturbation per copy: its gradient is the copy's row of D
                    holder[name] = torch.zeros(inp.shape[0], widths[name], dtype=kinds[name], device=device,
                                               requires_grad=True)
                return functional_call(model, state, (inp,)), [holder[name] for name in names]

            def forward(inp: Tensor, *a: Any) -> tuple[Tensor, list[Tensor]]:
                x, leaves = perturbed(inp)
                return physics(x, *a), leaves

            if engine == "supplied":
                chunks = ((start, stop, _pulled_back(perturbed, inputs[start:stop], P, m), y_chunk)
                          for start, stop, (P,), y_chunk in supplied_chunks(physics_jacobian, x_net, args,
                                                                            chunk_size, m))
            else:
                chunks = expanded_chunks(forward, inputs, args, chunk_size, m)
            for start, stop, grads, y_chunk in chunks:
                for name, grad in zip(names, grads):
                    D[name][start * m:stop * m] = grad
                y[start:stop] = y_chunk
    finally:
        for h in handles:
            h.remove()
    nonzero = torch.stack([nonzero_flag(d) for d in D.values()]).any()
    if check:
        check_nonzero(nonzero, JACOBIAN_OF_OUTPUT)
    factors = []
    for (name, mod), a in zip(layers, A):
        prefix = f"{name}." if name else ""
        bias = prefix + "bias" if (mod.bias is not None and mod.bias.requires_grad) else None
        factors.append(LinearFactor(prefix + "weight", bias, a.to(dtype), D[name]))
    return FactoredJacobian(factors, y.view(b, *y_probe.shape[1:]), chunk_size, nonzero)


def _pulled_back(perturbed: Any, inputs: Tensor, P: Tensor, m: int) -> tuple[Tensor, ...]:
    """D_l rows of a chunk for the ``supplied`` engine: the network on every example repeated m times, one backward
    pass with cotangent row k of dy_i/dx_i (``P``, (c m, *x_shape)) on copy k of example i."""
    with explained("pulling the supplied physics Jacobian back through the network (jacobian='supplied')",
                   "The network must be a plain torch function of its input (no in-place writes into it)"):
        with torch.enable_grad():
            x, leaves = perturbed(repeat_examples(inputs, m))
            return torch.autograd.grad(x, leaves, P.to(x.dtype), allow_unused=True, materialize_grads=True)


def factored_gram(factors, rows_per_example: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """G = J J^T from per-layer factors: with dy_i/dW_l = D_l,i (x) a_i (and dy_i/db_l = D_l,i),

        G[(i,k),(j,k')] = sum_l (D_l D_l^T)[(i,k),(j,k')] * (a_i . a_j + [layer has a bias]),

    O((b|y|)^2 sum_l width_l) flops instead of O((b|y|)^2 |theta|). ``factors``: :class:`LinearFactor`.
    """
    m = rows_per_example
    rows = factors[0].D.shape[0]
    b = rows // m
    G = torch.zeros(rows, rows, dtype=dtype, device=factors[0].D.device)
    G4 = G.view(b, m, b, m)
    for f in factors:
        D, A = f.D.to(dtype), f.A.to(dtype)
        K = A @ A.T
        if f.bias is not None:
            K = K + 1.0
        G4.add_((D @ D.T).view(b, m, b, m) * K[:, None, :, None])
    return G


def factored_jt_vector(factors, w: Tensor, rows_per_example: int) -> dict[str, Tensor]:
    """J^T w per parameter:  dW_l = sum_i c_i a_i^T,  db_l = sum_i c_i,  with  c_i = sum_k w_(i,k) D_l,(i,k)."""
    m = rows_per_example
    out: dict[str, Tensor] = {}
    for f in factors:
        D, A = f.D.to(w.dtype), f.A.to(w.dtype)
        c = (w[:, None] * D).view(A.shape[0], m, D.shape[1]).sum(1)     # (b, out)
        out[f.weight] = c.T @ A
        if f.bias is not None:
            out[f.bias] = c.sum(0)
    return out


@dataclasses.dataclass
class FactoredRoute(OverJacobian):
    """HIG on the factored Jacobian: w = max(S)^beta U S^(kappa-1) U^T g from the factored Gram matrix
    (``coefficients``), then the direction J^T w layer by layer (``apply_transpose``)."""
    jacobian: FactoredJacobian
    name: str = "factored"

    def coefficients(self, g: Tensor, *, kappa: float, beta: float, truncation: float,
                     dtype: torch.dtype) -> tuple[Tensor, Spectrum]:
        G = factored_gram(self.jacobian.factors, self.y[0].numel(), dtype)
        w, spectrum = gram_coefficients(G, g, kappa=kappa, beta=beta, truncation=truncation, dtype=dtype, check=False)
        spectrum.route = self.name
        return w, spectrum

    def apply_transpose(self, w: Tensor) -> dict[str, Tensor]:
        return factored_jt_vector(self.jacobian.factors, w, self.y[0].numel())


def build(model: nn.Module, inputs: Tensor, physics: Physics, args: tuple, *, chunk_size: int | None,
          memory_bound: int | None, extra_bytes: int, engine: str = "auto",
          probe: Tensor | None = None, physics_jacobian: PhysicsJacobian | None = None) -> FactoredRoute | None:
    """The factored route, or None when the model is not a network of plain Linear layers."""
    factored = linear_factors(model, inputs, physics, *args, chunk_size=chunk_size, memory_bound=memory_bound,
                              extra_bytes=extra_bytes, engine=engine, check=False, probe=probe,
                              physics_jacobian=physics_jacobian)
    return None if factored is None else FactoredRoute(factored)
