"""Coordinate derivatives of operator networks u_ij = f(p_i, x_j): Zero Coordinate Shift and its two baselines.

A physics-informed operator network (e.g. a DeepONet) maps M functions p_i and N points x_j in R^d to an (M, N)
field. A PDE residual needs d^alpha u_ij / dx_j^alpha for multi-indices alpha. Three engines compute them behind
one interface (:class:`DerivativeEngine`):

- :class:`ZCS` (Leng & Thiyagalingam, "Zero Coordinate Shift: Whetted Automatic Differentiation for
  Physics-informed Operator Learning", 2023): one scalar leaf z_k = 0 per dimension and a dummy a = 1 of shape
  (M, N); with omega = sum_ij a_ij f(p_i, x_j + z),

      d^alpha u_ij / dx_j^alpha = d/da_ij [ d^alpha omega / dz^alpha ] at z = 0     (paper eqs. 10-11),

  so every z-derivative is scalar-to-scalar and one gradient w.r.t. a recovers the whole field.
- :class:`FuncLoop`: the coordinates are leaves, a loop over the M functions differentiates sum_j u_ij (eq. 4).
- :class:`DataVect`: p and x are tiled to M*N pairs evaluated pointwise, coordinates leaves (eq. 5).

All fields are built with ``create_graph=True``, so a loss made of them backpropagates to the network weights.
The identities need a pointwise network (u_ij depends on x_j only); :func:`check_pointwise` probes that.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor

from ..names import lookup

OperatorFn = Callable[[Tensor, Tensor], Tensor]
"""``fn(p, x) -> u``: p of shape (M, ...), x of shape (N, d), u of shape (M, N)."""
PairwiseFn = Callable[[Tensor, Tensor], Tensor]
"""``pairwise(p, x) -> u``: p of shape (K, ...), x of shape (K, d), u of shape (K,) with u_k = f(p_k, x_k)."""
MultiIndex = tuple[int, ...]


def _check_inputs(p: Tensor, x: Tensor) -> None:
    if not isinstance(p, Tensor) or not isinstance(x, Tensor):
        raise TypeError(f"p and x must be tensors, got {type(p).__name__} and {type(x).__name__}")
    if x.dim() != 2 or x.shape[1] < 1:
        raise ValueError(f"x must be (N, d) coordinates, one row per point, got shape {tuple(x.shape)}; "
                         "for 1-D problems use x[:, None]")
    if not x.is_floating_point():
        raise ValueError(f"x must be floating point to be differentiated, got {x.dtype}")
    if p.dim() < 1 or p.shape[0] < 1:
        raise ValueError(f"p must be (M, ...) with one row per function and M >= 1, got shape {tuple(p.shape)}")


def _check_output(u: Tensor, m: int, n: int, what: str = "fn(p, x)") -> Tensor:
    if not isinstance(u, Tensor) or tuple(u.shape) != (m, n):
        shape = tuple(u.shape) if isinstance(u, Tensor) else type(u).__name__
        raise ValueError(f"{what} must return the (M, N) = ({m}, {n}) field, got {shape}; "
                         "squeeze a trailing output channel or return one value per (function, point) pair")
    return u


def as_multi_index(alpha: Sequence[int], dim: int) -> MultiIndex:
    """Validate ``alpha`` as a multi-index for ``dim`` coordinates: a tuple of ``dim`` non-negative ints."""
    try:
        alpha = tuple(alpha)
    except TypeError:
        raise ValueError(f"a multi-index is a tuple of {dim} derivative orders, one per coordinate, "
                         f"e.g. {(2,) + (0,) * (dim - 1)} for d^2/dx0^2; got {alpha!r}") from None
    if len(alpha) != dim or not all(isinstance(a, int) and not isinstance(a, bool) for a in alpha):
        raise ValueError(f"a multi-index needs exactly {dim} integer orders (one per coordinate of x), got {alpha!r}")
    if any(a < 0 for a in alpha):
        raise ValueError(f"derivative orders must be >= 0, got {alpha!r}")
    return alpha


def _nearest_below(alpha: MultiIndex, cached: Iterable[MultiIndex]) -> MultiIndex:
    """The cached multi-index beta <= alpha (componentwise) of highest order; the zero index is always cached."""
    below = [b for b in cached if all(bi <= ai for bi, ai in zip(b, alpha))]
    return max(below, key=sum)


class DerivativeEngine(ABC):
    """Derivative fields d^alpha u of an operator network on fixed (p, x): one forward pass, cached derivatives.

    Attributes: ``u`` the (M, N) field; ``grad_calls`` the number of ``torch.autograd.grad`` calls made so far.
    """

    name: str

    def __init__(self, fn: OperatorFn, p: Tensor, x: Tensor):
        _check_inputs(p, x)
        self.fn, self.p, self.x = fn, p, x
        self.m, self.n, self.dim = p.shape[0], x.shape[0], x.shape[1]
        self.grad_calls = 0

    def _grad(self, out: Tensor, wrt: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """d out / d wrt with a graph (zeros where out does not depend on a leaf)."""
        if not out.requires_grad:                   # a constant, e.g. a derivative beyond a polynomial's degree
            return tuple(torch.zeros_like(w) for w in wrt)
        self.grad_calls += 1
        return torch.autograd.grad(out, wrt, create_graph=True, allow_unused=True, materialize_grads=True)

    def _ascend(self, cache: dict[MultiIndex, Tensor], alpha: MultiIndex,
                step: Callable[[Tensor], Sequence[Tensor]]) -> Tensor:
        """cache[alpha], climbing from the nearest cached multi-index below it one order at a time (dimension 0
        first). ``step(t)`` returns the d first derivatives of t, one per coordinate, all of which are cached."""
        cur = _nearest_below(alpha, cache)
        while cur != alpha:
            k = next(i for i, (c, a) in enumerate(zip(cur, alpha)) if c < a)
            nxt = tuple(c + (i == k) for i, c in enumerate(cur))
            if nxt not in cache:
                for c, g in enumerate(step(cache[cur])):
                    cache.setdefault(tuple(o + (i == c) for i, o in enumerate(cur)), g)
            cur = nxt
        return cache[alpha]

    @property
    @abstractmethod
    def u(self) -> Tensor:
        """The (M, N) network output."""

    @abstractmethod
    def derivative(self, alpha: Sequence[int]) -> Tensor:
        """The (M, N) field d^alpha u_ij / dx_j^alpha, differentiable w.r.t. the network weights."""

    def combination(self, coefficients: Mapping[Sequence[int], float]) -> Tensor:
        """sum_alpha c_alpha d^alpha u as an (M, N) field, e.g. ``{(2, 0): 1.0, (0, 2): 1.0}`` for the Laplacian."""
        if not coefficients:
            raise ValueError("combination needs at least one {multi_index: coefficient} entry")
        return sum(c * self.derivative(a) for a, c in coefficients.items())


class ZCS(DerivativeEngine):
    """Zero Coordinate Shift (Leng & Thiyagalingam 2023, Algorithm 1 generalised to any multi-index).

    Evaluates u = fn(p, x + z) with one 0-d leaf z_k = 0 per coordinate and omega = sum_ij a_ij u_ij with a leaf
    a = 1. Then d^alpha u_ij = d/da_ij d^alpha omega / dz^alpha at z = 0 (paper eq. 11): the z-derivatives are
    repeated scalar gradients w.r.t. all z_k at once (cached by multi-index; a new index starts from the nearest
    cached one below it) and one gradient w.r.t. a returns the field. :meth:`combination` differentiates
    sum_alpha c_alpha d^alpha omega w.r.t. a once (eq. 14: a linear PDE needs one a-gradient).
    """

    name = "zcs"

    def __init__(self, fn: OperatorFn, p: Tensor, x: Tensor):
        super().__init__(fn, p, x)
        self.z = [torch.zeros((), dtype=x.dtype, device=x.device, requires_grad=True) for _ in range(self.dim)]
        self._u = _check_output(fn(p, x + torch.stack(self.z)), self.m, self.n)
        self.a = torch.ones_like(self._u, requires_grad=True)
        self._omega: dict[MultiIndex, Tensor] = {(0,) * self.dim: (self.a * self._u).sum()}

    @property
    def u(self) -> Tensor:
        return self._u

    @property
    def cached(self) -> tuple[MultiIndex, ...]:
        """Multi-indices whose scalar d^alpha omega / dz^alpha is cached."""
        return tuple(self._omega)

    def omega_derivative(self, alpha: Sequence[int]) -> Tensor:
        """The scalar d^alpha omega / dz^alpha (with a graph). Each gradient is taken w.r.t. all z_k at once (one
        backward pass yields them all) and cached; a new index starts from the nearest cached one below it."""
        return self._ascend(self._omega, as_multi_index(alpha, self.dim), lambda s: self._grad(s, self.z))

    def _field(self, scalar: Tensor) -> Tensor:
        return self._grad(scalar, [self.a])[0]

    def derivative(self, alpha: Sequence[int]) -> Tensor:
        alpha = as_multi_index(alpha, self.dim)
        return self._u if not any(alpha) else self._field(self.omega_derivative(alpha))

    def combination(self, coefficients: Mapping[Sequence[int], float]) -> Tensor:
        if not coefficients:
            raise ValueError("combination needs at least one {multi_index: coefficient} entry")
        return self._field(sum(c * self.omega_derivative(a) for a, c in coefficients.items()))


class _LeafEngine(DerivativeEngine):
    """Shared by the baselines: a field's next derivatives are the columns of one gradient of its sum w.r.t. the
    leaf coordinates (all d columns cached, as DeepXDE's Jacobian cache does)."""

    def _fields_of(self, cache: dict[MultiIndex, Tensor], alpha: MultiIndex, leaf: Tensor) -> Tensor:
        return self._ascend(cache, alpha, lambda field: self._grad(field.sum(), [leaf])[0].unbind(1))


class FuncLoop(_LeafEngine):
    """Loop over the M functions (paper eq. 4, DeepXDE's ``PDEOperatorCartesianProd``): x is a leaf, and for each
    i the field d^alpha u_i. is built by nested gradients of sum_j (lower field)_ij w.r.t. x."""

    name = "funcloop"

    def __init__(self, fn: OperatorFn, p: Tensor, x: Tensor):
        super().__init__(fn, p, x)
        self.leaf = x.detach().requires_grad_(True)
        self._u = _check_output(fn(p, self.leaf), self.m, self.n)
        zero = (0,) * self.dim
        self._cache: list[dict[MultiIndex, Tensor]] = [{zero: self._u[i]} for i in range(self.m)]

    @property
    def u(self) -> Tensor:
        return self._u

    def derivative(self, alpha: Sequence[int]) -> Tensor:
        alpha = as_multi_index(alpha, self.dim)
        return torch.stack([self._fields_of(cache, alpha, self.leaf) for cache in self._cache])


class DataVect(_LeafEngine):
    """Data vectorisation (paper eq. 5, DeepXDE's ``PDEOperator``): p and x tiled to M*N pairs, evaluated pointwise
    by ``pairwise(P, X)``; X is the leaf and fields are nested gradients of their sum w.r.t. X.

    ``pairwise`` defaults to ``fn.pairwise`` when fn has one (see ``problems.operators.DeepONet``), else to
    ``torch.func.vmap`` of fn over single pairs.
    """

    name = "datavect"

    def __init__(self, fn: OperatorFn, p: Tensor, x: Tensor, pairwise: PairwiseFn | None = None):
        super().__init__(fn, p, x)
        pairwise = pairwise or getattr(fn, "pairwise", None) or _vmapped_pairs(fn)
        tiled_p = p.repeat_interleave(self.n, dim=0)
        self.leaf = x.detach().repeat(self.m, 1).requires_grad_(True)
        out = pairwise(tiled_p, self.leaf)
        if not isinstance(out, Tensor) or tuple(out.shape) != (self.m * self.n,):
            raise ValueError(f"pairwise(P, X) must return one value per pair, shape ({self.m * self.n},), "
                             f"got {tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}")
        self._cache: dict[MultiIndex, Tensor] = {(0,) * self.dim: out}

    @property
    def u(self) -> Tensor:
        return self._cache[(0,) * self.dim].view(self.m, self.n)

    def derivative(self, alpha: Sequence[int]) -> Tensor:
        alpha = as_multi_index(alpha, self.dim)
        return self._fields_of(self._cache, alpha, self.leaf).view(self.m, self.n)


def _vmapped_pairs(fn: OperatorFn) -> PairwiseFn:
    return torch.func.vmap(lambda pk, xk: fn(pk[None], xk[None])[0, 0])


ENGINES: dict[str, type[DerivativeEngine]] = {e.name: e for e in (ZCS, FuncLoop, DataVect)}


def derivative_engine(name: str, fn: OperatorFn, p: Tensor, x: Tensor) -> DerivativeEngine:
    """The engine called ``name`` ("zcs", "funcloop" or "datavect") on fn(p, x)."""
    return lookup("derivative engine", name, ENGINES)(fn, p, x)


def check_pointwise(fn: OperatorFn, p: Tensor, x: Tensor, points: int = 4, rtol: float = 1e-6,
                    generator: torch.Generator | None = None) -> None:
    """Raise ValueError if u_ij = fn(p, x)_ij visibly depends on coordinates x_l of other points (l != j).

    ZCS (and FuncLoop) then return sum_l du_ij/dx_l (the response to shifting all points at once) instead of
    du_ij/dx_j. Probes ``points`` random points j with a random combination over the functions i and compares the
    two first derivatives; a pass is evidence, not proof (it checks first derivatives at a few points).
    """
    _check_inputs(p, x)
    leaf = x.detach().requires_grad_(True)
    with torch.enable_grad():
        u = _check_output(fn(p, leaf), p.shape[0], x.shape[0])
        weights = torch.randn(u.shape[0], generator=generator, dtype=u.dtype).to(u.device)
        for j in torch.randperm(x.shape[0], generator=generator)[:points].tolist():
            g = torch.autograd.grad((weights * u[:, j]).sum(), leaf, retain_graph=True, allow_unused=True,
                                    materialize_grads=True)[0]
            own, shifted = g[j], g.sum(0)
            if (own - shifted).norm() > rtol * (own.norm() + shifted.norm()) + 1e-12:
                raise ValueError(
                    f"fn is not pointwise in x: the output at point {j} depends on other points' coordinates "
                    f"(d/dx_j = {own.tolist()}, d/d(shift of all points) = {shifted.tolist()}), e.g. through "
                    "normalisation or attention over the N points. ZCS and FuncLoop would return the wrong "
                    "derivatives; make the network act on each point separately (per-point features only).")
