"""The dense route: the stacked per-example Jacobian J of physics output w.r.t. all weights, half-inverted whole.

    J = [ dy_1/dtheta ; dy_2/dtheta ; ... ; dy_b/dtheta ],   y_i = P(NN(inputs_i | theta), args_i)  flattened,

a (b |y|) x |theta| matrix, example-major, for any network (engines: :func:`per_example_jacobian`).
Its half-inversion (:mod:`physopt.hig.decompositions`) is either ``gram`` (J J^T = U S^2 U^T, for wide J) or ``svd``
(thin SVD of J, the HIG paper's reference). Memory: J itself is b |y| |theta| numbers; see :mod:`physopt.hig.memory`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vjp, vmap

from .decompositions import Spectrum, gram_coefficients, gram_matrix, jt_vector, svd_coefficients
from .memory import plan_chunks
from .per_example import (JACOBIAN_ENGINES, JACOBIAN_OF_WEIGHTS, OverJacobian, Physics, check_batch, check_batch_norm,
                          PhysicsJacobian, check_nonzero, expanded_chunks, explained, jacobian_chunks, nonzero_flag,
                          one_example, planning_output, resolve_engine, supplied_chunks, trainable_parameters)
from ..validation import check_choice

__all__ = ["StackedJacobian", "per_example_jacobian", "DenseRoute", "build_gram", "build_svd"]


@dataclasses.dataclass
class StackedJacobian:
    """J (b*|y| x |theta|, example-major), y (b, *y_shape), the parameter layout, and the chunk size used."""
    J: Tensor
    y: Tensor
    names: list[str]
    shapes: list[torch.Size]
    chunk_size: int
    nonzero: Tensor | None = None     # 0-dim bool on the device: does J have a nonzero entry

    def tensors(self) -> list[Tensor]:
        """What the Jacobian is made of (for the diagnosis of a non-finite step)."""
        return [self.J]

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
                         extra_bytes: int = 0, engine: str = "auto", check: bool = True,
                         probe: Tensor | None = None,
                         physics_jacobian: PhysicsJacobian | None = None) -> StackedJacobian:
    """Stacked per-example Jacobian of  y_i = physics(model(inputs_i), *args_i)  w.r.t. all trainable weights.

    ``engine`` (see :mod:`physopt.hig.per_example`): ``expand`` (default) works in two stages, J_i = P_i N_i: the
    physics Jacobian P_i = dy_i/dx_i at the network output x_i = model(inputs_i) from one batched backward through
    the physics alone (each example repeated |y| times), then its rows pulled back through the network,
    P_i N_i = vjp of the network with the |y| cotangents P_i (``torch.func.vmap`` over the examples, through the
    network only: the physics itself is never vmapped). ``supplied``: P_i from ``physics_jacobian`` (the default
    when one is given), then the same pull-back. ``vmap``: ``vmap(jacrev(y_i(theta)))`` through both.

    Args:
        model: any ``nn.Module``; evaluated with :func:`torch.func.functional_call`.
        inputs: network inputs (b, ...).
        physics: ``physics(x, *args) -> y`` batched and differentiable (and vmap-safe for ``engine='vmap'``).
        args: extra physics arguments; every tensor in them is split per example along dim 0.
        chunk_size: examples per pass; by default the largest that keeps the estimated peak under
            ``memory_bound`` (all examples when no bound is given).
        memory_bound: bytes the Jacobian computation may use, including ``extra_bytes`` (e.g. its decomposition).
        engine: ``auto`` (``supplied`` with a ``physics_jacobian``, else ``expand``), ``expand``, ``vmap`` or
            ``supplied``.
        check: raise at once when J is zero everywhere (a host sync); HIG's step passes False and reads the device
            flag ``nonzero`` with the rest of its checks.
        physics_jacobian: ``physics_jacobian(x, *args) -> (y, dy/dx)``
            (:data:`physopt.hig.per_example.PhysicsJacobian`).

    Raises:
        MemoryBoundError: J and ``extra_bytes`` alone exceed the bound, or not even one example fits.
        JacobianError: the physics cannot be differentiated, or the Jacobian is identically zero.
    """
    check_choice("engine", engine, JACOBIAN_ENGINES)
    engine = resolve_engine(engine, physics_jacobian is not None)
    params = trainable_parameters(model)
    device = next(iter(params.values())).device
    check_batch_norm(model)
    b = check_batch(inputs, args, next(iter(params.values())))
    frozen = {n: t.detach() for n, t in model.named_parameters() if n not in params}
    buffers = {**dict(model.named_buffers()), **frozen}
    detached = {n: p.detach() for n, p in params.items()}
    n_params = sum(p.numel() for p in params.values())

    y_probe = planning_output(model, inputs, physics, args, engine, probe)
    chunk_size = plan_chunks(model, inputs, physics, args, y_probe, n_params, chunk_size, memory_bound, extra_bytes,
                             "the stacked Jacobian")
    m, dtype = y_probe[0].numel(), y_probe.dtype

    def network(theta: dict[str, Tensor], inp: Tensor) -> Tensor:
        return functional_call(model, ({**theta}, buffers), (inp,))

    J = torch.empty(b * m, n_params, dtype=dtype, device=device)
    y = torch.empty(b, m, dtype=dtype, device=device)

    def store(start: int, stop: int, jac: dict[str, Tensor], y_chunk: Tensor) -> None:
        col = 0
        for name, p in params.items():
            J[start * m:stop * m, col:col + p.numel()] = jac[name].reshape((stop - start) * m, -1)
            col += p.numel()
        y[start:stop] = y_chunk

    if engine == "vmap":
        def y_of(theta: dict[str, Tensor], inp: Tensor, *a: Any) -> tuple[Tensor, Tensor]:
            out = one_example(physics, network(theta, inp.unsqueeze(0)), a)
            return out, out

        for start, stop, jac, y_chunk in jacobian_chunks(y_of, detached, inputs, args, chunk_size):
            store(start, stop, jac, y_chunk)
    else:
        with torch.no_grad():
            x = network(detached, inputs)

        def physics_rows(x_rep: Tensor, *a: Any) -> tuple[Tensor, list[Tensor]]:
            x_rep.requires_grad_(True)
            return physics(x_rep, *a), [x_rep]

        def pulled_back(theta: dict[str, Tensor], inp: Tensor, rows: Tensor) -> dict[str, Tensor]:
            _, pull = vjp(lambda th: network(th, inp.unsqueeze(0)), theta)
            return vmap(lambda row: pull(row.unsqueeze(0))[0])(rows)   # (m, *shape) per weight

        chunks = (supplied_chunks(physics_jacobian, x, args, chunk_size, m) if engine == "supplied" else
                  expanded_chunks(physics_rows, x, args, chunk_size, m))
        for start, stop, (P,), y_chunk in chunks:
            P = P.view(stop - start, m, *x.shape[1:])
            with explained("pulling the physics Jacobian back through the network with torch.func.vmap(vjp(...))",
                           "The network must be a pure torch function of its input (no BatchNorm in training mode, "
                           "no in-place writes into its input)"):
                jac = vmap(pulled_back, in_dims=(None, 0, 0))(detached, inputs[start:stop], P)
            store(start, stop, jac, y_chunk)
    nonzero = nonzero_flag(J)
    if check:
        check_nonzero(nonzero, JACOBIAN_OF_WEIGHTS)
    return StackedJacobian(J, y.view(b, *y_probe.shape[1:]), list(params), [p.shape for p in params.values()],
                           chunk_size, nonzero)


@dataclasses.dataclass
class DenseRoute(OverJacobian):
    """HIG on the dense J: ``coefficients(g)`` decomposes J, ``apply_transpose(w)`` maps back to the weights.

    gram: w = max(S)^beta U S^(kappa-1) U^T g and the direction is J^T w;
    svd:  w = S^kappa U^T g (right-singular coordinates) and the direction is max(S)^beta V w.
    Both give max(S)^beta V S^kappa U^T g (HIG paper, Eq. 7).
    """
    jacobian: StackedJacobian
    name: str
    _svd: tuple[Tensor, float] | None = None

    def coefficients(self, g: Tensor, *, kappa: float, beta: float, truncation: float,
                     dtype: torch.dtype) -> tuple[Tensor, Spectrum]:
        J = self.jacobian.J
        if self.name == "svd":
            c, Vh, scale, spectrum = svd_coefficients(J, g, kappa=kappa, beta=beta, truncation=truncation,
                                                      dtype=dtype, check=False)
            self._svd = (Vh, scale)
            return c, spectrum
        return gram_coefficients(gram_matrix(J, dtype), g, kappa=kappa, beta=beta, truncation=truncation, dtype=dtype,
                                 check=False)

    def apply_transpose(self, w: Tensor) -> dict[str, Tensor]:
        if self.name == "svd":
            Vh, scale = self._svd
            return self.jacobian.unflatten(scale * (Vh.T @ w))
        return self.jacobian.unflatten(jt_vector(self.jacobian.J, w))


def _build(name: str, model: nn.Module, inputs: Tensor, physics: Physics, args: tuple, *, chunk_size: int | None,
           memory_bound: int | None, extra_bytes: int, engine: str = "auto",
           probe: Tensor | None = None, physics_jacobian: PhysicsJacobian | None = None) -> DenseRoute:
    return DenseRoute(per_example_jacobian(model, inputs, physics, *args, chunk_size=chunk_size,
                                           memory_bound=memory_bound, extra_bytes=extra_bytes, engine=engine,
                                           check=False, probe=probe, physics_jacobian=physics_jacobian), name)


def build_gram(model: nn.Module, inputs: Tensor, physics: Physics, args: tuple, **plan: Any) -> DenseRoute:
    """The dense route with the Gram decomposition (cheaper when b |y| < |theta|)."""
    return _build("gram", model, inputs, physics, args, **plan)


def build_svd(model: nn.Module, inputs: Tensor, physics: Physics, args: tuple, **plan: Any) -> DenseRoute:
    """The dense route with the thin SVD (the HIG paper's reference; for tall J, b |y| >= |theta|)."""
    return _build("svd", model, inputs, physics, args, **plan)
