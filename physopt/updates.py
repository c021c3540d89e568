r"""Generic SIP physics updates that need no hand-written inverse: they only need a differentiable physics P.

Both act per example on the inverse problem  min_x L(x) = loss(P(x), y*)  (SIP paper, Eq. 1) and return
dx = U(y* | x), the first step of a scale-invariant solver started at x:

* :class:`NewtonUpdate` - saddle-free Newton (Dauphin et al. 2014; SIP paper Sec. 3.4) from the exact per-example
  Hessian, for small x (up to a few hundred entries per example): dx = -Q |Lambda|^{-1} Q^T g.
* :class:`GaussNewtonUpdate` - damped Gauss-Newton / Levenberg-Marquardt from the physics Jacobian, matrix-free
  with conjugate gradients, for large x: (J^T J + lambda I) dx = -J^T (P(x) - y*).

``physics`` is a batched function ``P(x) -> y`` whose examples are independent (example i of y depends only on
example i of x), differentiable with torch.autograd. Derivatives come from ``torch.func`` where the physics allows
it (``derivatives="func"``), else from plain ``torch.autograd`` (``"autograd"``: vector-Jacobian products by
backward passes, Jacobian-vector products by the double-backward trick  J v = d/du <J^T u, v>,  per-example
Hessians row by row); ``"auto"`` (default) tries torch.func and falls back to autograd, once and with a notice,
for physics torch.func cannot transform (e.g. written with phiml / PhiFlow). Both give the same update to rounding.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch import Tensor
from torch.func import grad, hessian, jvp, vjp, vmap

from .validation import check_choice, check_integer, check_number

__all__ = ["NewtonUpdate", "GaussNewtonUpdate", "saddle_free_newton_step", "DERIVATIVES"]

#: how a generic update differentiates the physics (see the module docstring)
DERIVATIVES = ("auto", "func", "autograd")

Physics = Callable[[Tensor], Tensor]
PointLoss = Callable[[Tensor, Tensor], Tensor]


def _target_of(target: Any) -> Tensor:
    """Accept y* itself or a batch object carrying it as ``.target``."""
    t = getattr(target, "target", target)
    if not isinstance(t, Tensor):
        raise TypeError(f"expected the target y* as a Tensor (or an object with a .target Tensor), "
                        f"got {type(target).__name__}")
    return t


def _check_x(x: Any, target: Tensor, update: str) -> None:
    """ValueError unless x is a tensor of at least one example and the target has as many."""
    if not isinstance(x, Tensor) or x.dim() < 1:
        raise TypeError(f"{update} takes x as a Tensor with a leading batch dimension, got "
                        f"{type(x).__name__ if not isinstance(x, Tensor) else 'a 0-dim tensor'}")
    if x.shape[0] == 0:
        raise ValueError(f"{update} got an empty batch (x of shape {tuple(x.shape)}); it needs at least one example")
    if target.dim() < 1 or target.shape[0] != x.shape[0]:
        raise ValueError(f"the target y* has shape {tuple(target.shape)} but x has shape {tuple(x.shape)}: they must "
                         f"hold the same number of examples along dim 0")


def _half_squared_error(y: Tensor, target: Tensor) -> Tensor:
    if y.shape != target.shape:
        raise ValueError(f"the physics output of one example has shape {tuple(y.shape)} but its target y* has shape "
                         f"{tuple(target.shape)}; pass a target of the physics output's shape (B, *y_shape)")
    return 0.5 * (y - target).pow(2).sum()


def _bdot(a: Tensor, b: Tensor) -> Tensor:
    """Per-example dot product over all non-batch dimensions, shape (B,)."""
    return (a * b).reshape(a.shape[0], -1).sum(-1)


def _per_example(v: Tensor, like: Tensor) -> Tensor:
    """Broadcast a (B,) tensor against ``like``'s shape (B, ...)."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


class _Derivatives:
    """Runs the torch.func route of an update, or the autograd one: ``auto`` falls back to autograd the first time
    torch.func fails on the physics (a RuntimeWarning says so) and stays there."""

    def __init__(self, mode: str, owner: str):
        self.mode = check_choice("derivatives", mode, DERIVATIVES)
        self.owner = owner
        self.func_worked = False         # torch.func has run this physics once (``auto`` then has nothing to find out)

    @property
    def undecided(self) -> bool:
        """``auto`` before torch.func has run the physics: a route should fail early rather than halfway."""
        return self.mode == "auto" and not self.func_worked

    def run(self, func_route: Callable[[], Any], autograd_route: Callable[[], Any]) -> Any:
        if self.mode == "autograd":
            return autograd_route()
        if self.mode == "func":
            return func_route()
        try:
            result = func_route()
            self.func_worked = True
            return result
        except (RuntimeError, NotImplementedError) as err:
            result = autograd_route()            # an error of the physics itself raises here again, unmasked
            self.mode = "autograd"
            warnings.warn(f"{self.owner}: torch.func cannot transform this physics ({str(err).splitlines()[0]}); "
                          f"using torch.autograd instead from now on (derivatives='autograd' says so up front)",
                          RuntimeWarning, stacklevel=4)
            return result


def autograd_vjp(physics: Physics, x: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """y = P(x) and the pullback u -> J^T u, by backward passes through one recorded graph."""
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = physics(xg)
    if not y.requires_grad:
        raise ValueError("the physics output does not depend differentiably on x (no autograd graph): a .detach(), "
                         ".item() or numpy round trip inside P breaks the chain")

    def pullback(u: Tensor) -> Tensor:
        return torch.autograd.grad(y, xg, u, retain_graph=True)[0]

    return y.detach(), pullback


def autograd_jvp_operator(physics: Physics, x: Tensor) -> Callable[[Tensor], Tensor]:
    """v -> J v by the double-backward trick: J^T u is linear in u, so  J v = d/du <J^T u, v>  (one backward
    through the backward graph per product; P's backward must itself be differentiable)."""
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = physics(xg)
        u = torch.zeros_like(y, requires_grad=True)
        (jtu,) = torch.autograd.grad(y, xg, u, create_graph=True)

    def jv(v: Tensor) -> Tensor:
        return torch.autograd.grad(jtu, u, v, retain_graph=True)[0]

    return jv


def saddle_free_newton_step(g: Tensor, h: Tensor, max_loss_change: float | None = None) -> Tensor:
    r"""Batched saddle-free Newton step from gradients g (B, n) and symmetric Hessians h (B, n, n).

    With h = Q diag(lambda) Q^T and g_e = Q^T g, the step in the eigenbasis is  s_e = -g_e / |lambda|
    (a descent direction whatever the sign of the curvature; 0 where lambda = 0), and dx = Q s_e.

    ``max_loss_change`` caps steps along flat directions: where |lambda_e| is below the geometric mean of |lambda|,
    |s_e| <= max_loss_change / |g_e|, which limits the first-order loss decrease per direction to about that value.
    """
    lam, q = torch.linalg.eigh(h)
    g_e = (q.transpose(-1, -2) @ g.unsqueeze(-1)).squeeze(-1)
    abs_lam = lam.abs()
    step = torch.where(abs_lam > 0, g_e.abs() / abs_lam.clamp_min(torch.finfo(lam.dtype).tiny), torch.zeros_like(g_e))
    if max_loss_change is not None:
        geo_mean = torch.exp(torch.log(abs_lam.clamp_min(torch.finfo(lam.dtype).tiny)).mean(-1, keepdim=True))
        cap = max_loss_change / g_e.abs().clamp_min(torch.finfo(lam.dtype).tiny)
        step = torch.where(abs_lam > geo_mean, step, torch.minimum(step, cap))
    step = -torch.sign(g_e) * step
    return (q @ step.unsqueeze(-1)).squeeze(-1)


class NewtonUpdate:
    r"""Per-example saddle-free Newton update for SIP from the exact Hessian of L(x) = loss(P(x), y*).

        g = dL/dx,  H = d^2L/dx^2 (torch.func, vmapped over examples),  dx = :func:`saddle_free_newton_step`.

    Cost per example: one Hessian (n x n for n entries of x) and one n x n eigendecomposition; use it for small
    x. For large x use :class:`GaussNewtonUpdate`.

    Args:
        physics: batched ``P(x) -> y``; examples independent.
        loss: per-example ``loss(y_i, y*_i) -> scalar`` (unbatched); default 1/2 ||y_i - y*_i||^2.
        max_loss_change: optional cap on steps along low-curvature directions (see
            :func:`saddle_free_newton_step`); None for the plain saddle-free Newton step.
        max_step: optional trust radius: a step longer than this (Euclidean norm per example) is scaled down to it.
            Newton steps explode where the curvature nearly vanishes (e.g. e^x far below its target).

    Call as ``dx = update(x, target)`` with target y* (or a batch with ``.target``).
    """

    def __init__(self, physics: Physics, loss: PointLoss | None = None, max_loss_change: float | None = None,
                 max_step: float | None = None, derivatives: str = "auto"):
        if not callable(physics):
            raise TypeError(f"physics must be callable P(x) -> y, got {type(physics).__name__}")
        for name, value in (("max_loss_change", max_loss_change), ("max_step", max_step)):
            check_number(name, value, low=0, low_inclusive=False, optional=True)
        self._derivatives = _Derivatives(derivatives, "NewtonUpdate")
        self.physics = physics
        self.loss = loss if loss is not None else _half_squared_error
        self.max_loss_change = max_loss_change
        self.max_step = max_step

    def _example_loss(self, xi: Tensor, ti: Tensor) -> Tensor:
        return self.loss(self.physics(xi.unsqueeze(0)).squeeze(0), ti)

    @property
    def derivatives(self) -> str:
        """The route in use: ``auto`` until the first call decides, then ``func`` or ``autograd``."""
        return self._derivatives.mode

    def gradient_and_hessian(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """Per-example g (B, n) and H (B, n, n) of L, with x flattened to (B, n)."""
        return self._derivatives.run(lambda: self._func_route(x, target), lambda: self._autograd_route(x, target))

    def _func_route(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        shape = x.shape
        flat = lambda v, t: self._example_loss(v.reshape(shape[1:]), t)  # noqa: E731
        xf = x.reshape(shape[0], -1)
        g = vmap(grad(flat))(xf, target)
        h = vmap(hessian(flat))(xf, target)
        return g, h

    def _autograd_route(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """The physics runs batched (never vmapped); L = sum_i L_i, so with independent examples its gradient holds
        every g_i, and row k of every H_i is the gradient of sum_i g_i[k]: n more backward passes."""
        b = x.shape[0]
        xg = x.detach().requires_grad_(True)
        with torch.enable_grad():
            y = self.physics(xg)
            total = vmap(self.loss)(y, target).sum()          # the per-example loss is vmapped, not the physics
            (g,) = torch.autograd.grad(total, xg, create_graph=True)
            g = g.reshape(b, -1)
            rows = [torch.autograd.grad(g[:, k].sum(), xg, retain_graph=True, allow_unused=True,
                                        materialize_grads=True)[0].reshape(b, -1) for k in range(g.shape[1])]
        return g.detach(), torch.stack(rows, dim=1)

    def __call__(self, x: Tensor, target: Any) -> Tensor:
        y_star = _target_of(target)
        _check_x(x, y_star, "NewtonUpdate")
        g, h = self.gradient_and_hessian(x, y_star)
        dx = saddle_free_newton_step(g, h, self.max_loss_change)
        if self.max_step is not None:
            norm = dx.norm(dim=-1, keepdim=True)
            dx = dx * torch.clamp(self.max_step / norm.clamp_min(torch.finfo(dx.dtype).tiny), max=1.0)
        return dx.reshape(x.shape)

    def __repr__(self) -> str:
        return f"NewtonUpdate(physics={getattr(self.physics, '__name__', self.physics)!r}, " \
               f"max_loss_change={self.max_loss_change}, max_step={self.max_step}, derivatives={self.derivatives!r})"


class GaussNewtonUpdate:
    r"""Damped Gauss-Newton (Levenberg-Marquardt) SIP update, matrix-free with batched conjugate gradients.

    Per example, with r = P(x) - y* and J = dP/dx:

        (J^T J + lambda I) dx = -J^T r,

    solved by CG using only Jacobian-vector (forward mode) and vector-Jacobian (reverse mode) products, so J is
    never formed. With lambda -> 0 and J invertible this is the exact inverse step x + dx = P^{-1}(y*) for linear P.

    Args:
        physics: batched ``P(x) -> y``; examples independent. Loss is 1/2 ||P(x) - y*||^2.
        damping: lambda >= 0, in units of J^T J (absolute).
        max_iterations: CG iteration limit.
        tolerance: CG stops once ||residual|| <= tolerance * ||J^T r|| for every example.
    """

    def __init__(self, physics: Physics, damping: float = 1e-4, max_iterations: int = 50, tolerance: float = 1e-6,
                 derivatives: str = "auto"):
        if not callable(physics):
            raise TypeError(f"physics must be callable P(x) -> y, got {type(physics).__name__}")
        self._derivatives = _Derivatives(derivatives, "GaussNewtonUpdate")
        check_number("damping", damping, low=0)
        check_integer("max_iterations", max_iterations, low=1)
        check_number("tolerance", tolerance, low=0, low_inclusive=False)
        self.physics = physics
        self.damping = damping
        self.max_iterations = max_iterations
        self.tolerance = tolerance
        self.last_iterations = 0

    @property
    def derivatives(self) -> str:
        """The route in use: ``auto`` until the first call decides, then ``func`` or ``autograd``."""
        return self._derivatives.mode

    def _products(self, x: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
        """y = P(x), u -> J^T u and v -> J v, by torch.func or by torch.autograd (:class:`_Derivatives`)."""
        def func_route():
            y, pull = vjp(self.physics, x)
            if self._derivatives.undecided:                      # fail here, not in the middle of CG
                jvp(self.physics, (x,), (torch.zeros_like(x),))
            return y, lambda u: pull(u)[0], lambda v: jvp(self.physics, (x,), (v,))[1]

        def autograd_route():
            y, pull = autograd_vjp(self.physics, x)
            return y, pull, autograd_jvp_operator(self.physics, x)

        return self._derivatives.run(func_route, autograd_route)

    def __call__(self, x: Tensor, target: Any) -> Tensor:
        y_star = _target_of(target)
        _check_x(x, y_star, "GaussNewtonUpdate")
        y, pullback, jacobian_vector = self._products(x)
        if y.shape != y_star.shape:
            raise ValueError(f"physics output has shape {tuple(y.shape)} but the target y* has shape "
                             f"{tuple(y_star.shape)}")

        def normal_op(v: Tensor) -> Tensor:  # (J^T J + lambda) v
            return pullback(jacobian_vector(v)) + self.damping * v

        b = -pullback(y - y_star)
        dx = torch.zeros_like(x)
        res = b.clone()
        p = res.clone()
        rs = _bdot(res, res)
        stop = (self.tolerance ** 2) * rs
        k = 0
        for k in range(1, self.max_iterations + 1):
            if bool((rs <= stop).all()):
                k -= 1
                break
            ap = normal_op(p)
            pap = _bdot(p, ap)
            active = rs > stop
            alpha = torch.where(active & (pap > 0), rs / torch.where(pap > 0, pap, torch.ones_like(pap)),
                                torch.zeros_like(rs))
            dx = dx + _per_example(alpha, x) * p
            res = res - _per_example(alpha, x) * ap
            rs_new = _bdot(res, res)
            beta = torch.where(active, rs_new / torch.where(rs > 0, rs, torch.ones_like(rs)), torch.zeros_like(rs))
            p = res + _per_example(beta, x) * p
            rs = torch.where(active, rs_new, rs)
        self.last_iterations = k
        return dx

    def __repr__(self) -> str:
        return (f"GaussNewtonUpdate(damping={self.damping}, max_iterations={self.max_iterations}, "
                f"tolerance={self.tolerance}, derivatives={self.derivatives!r})")
