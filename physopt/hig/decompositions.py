"""Half-inversion kernels: the HIG direction  J^<beta,kappa> g  without forming a pseudo-inverse.

With the thin SVD  J = U S V^T  of the stacked per-example Jacobian (rows: b * |y| physics outputs, columns: |theta|
weights), the generalised half-inverse of the HIG paper (Schnell et al., ICLR 2022, Eq. 6 and appendix C) is

    J^<beta,kappa> = max(S)^beta * V S^kappa U^T,   singular values s <= tau * max(S) dropped,

kappa = -1/2 is HIG, kappa = -1 Gauss-Newton (the truncated pseudo-inverse), kappa = 1 gradient descent.

Two exact routes to the same vector:

* **SVD** (reference): thin SVD of J, then V (S^kappa (U^T g)).  Cost ~ rows^2 * cols.
* **Gram**: when rows < cols, the Gram matrix  G = J J^T = U S^2 U^T  has the same U and S, and
  V = J^T U S^-1, so  V S^kappa U^T g = J^T [U S^(kappa-1) U^T g]:  one GEMM for G, one symmetric eigendecomposition
  of a rows x rows matrix and one matrix-vector product with J^T.  Same result to rounding, far cheaper.

G squares the condition number, so in float32 singular values below ~sqrt(eps) * max(S) ~ 3e-4 max(S) are lost;
that is why the decomposition runs in float64 by default (``dtype``), block by block so J itself is never copied.
A decomposition that fails (or returns NaN/inf) in a lower precision is retried in float64; if that fails too a
:class:`HalfInversionError` says what to do. Nothing here ever returns NaN.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import Tensor

from ..validation import check_choice, check_number

DECOMPOSITIONS = ("auto", "gram", "svd")


class HalfInversionError(FloatingPointError):
    """The half-inversion could not be computed (non-finite input, or the decomposition failed in float64)."""


@dataclasses.dataclass
class Spectrum:
    """What the decomposition found: singular values (descending), how many were kept (a 0-dim tensor on the
    device, so that nothing waits for it), the route and dtype used. ``kept`` and ``condition`` read it (one host
    sync each)."""
    singular_values: Tensor
    kept_count: Tensor
    route: str
    dtype: torch.dtype

    @property
    def kept(self) -> int:
        """How many singular values were kept (s > tau max(S))."""
        return int(self.kept_count)

    @property
    def condition(self) -> float:
        """max(S) / min(kept S): the conditioning of the inverted part."""
        s, kept = self.singular_values, self.kept
        return float(s[0] / s[kept - 1]) if kept else float("nan")


def check_spectral_parameters(kappa: float, beta: float, truncation: float) -> None:
    """kappa and beta finite numbers, the relative truncation tau in [0, 1) (tau >= 1 would drop every direction)."""
    check_number("kappa", kappa)
    check_number("beta", beta)
    check_number("truncation", truncation, low=0, high=1)


def truncated_power(s: Tensor, exponent: float, truncation: float) -> Tensor:
    """s^exponent for singular values s > truncation * max(s), 0 for the rest (the HIG paper's relative tau)."""
    if s.numel() == 0:
        return s
    keep = s > truncation * s.max()
    return torch.where(keep, s.clamp_min(torch.finfo(s.dtype).tiny) ** exponent, torch.zeros_like(s))


def choose_decomposition(rows: int, cols: int) -> str:
    """``gram`` when the Jacobian is wide (rows = b |y| < cols = |theta|, the usual case), else ``svd``."""
    return "gram" if rows < cols else "svd"


def _check_finite(name: str, t: Tensor) -> None:
    if not torch.isfinite(t).all():
        raise HalfInversionError(f"the {name} contains NaN/inf, so it cannot be half-inverted; check the physics and "
                                 f"the network output for NaN (e.g. lower the learning rate)")


def _check_overflow(t: Tensor, kappa: float, beta: float) -> None:
    if not torch.isfinite(t).all():
        raise HalfInversionError(f"the half-inverse overflowed (kappa = {kappa:g}, beta = {beta:g} on singular values "
                                 f"spanning many orders of magnitude): raise the truncation tau, or use exponents "
                                 f"closer to 0")


def _with_retry(decompose: Callable[[torch.dtype], tuple[Tensor, ...]], dtype: torch.dtype,
                what: str, check: bool = True) -> tuple[tuple[Tensor, ...], torch.dtype]:
    """Run ``decompose(dtype)``; on failure or non-finite output retry in float64; then raise. Without ``check`` a
    float64 result is not inspected on the host (no sync; the caller checks what it computes from it)."""
    tried = [dtype] if dtype == torch.float64 else [dtype, torch.float64]
    last = None
    for dt in tried:
        try:
            out = decompose(dt)
        except (torch.linalg.LinAlgError, RuntimeError) as err:  # LAPACK / cuSOLVER non-convergence
            last = err
            continue
        if (dt == torch.float64 and not check) or all(torch.isfinite(t).all() for t in out):
            return out, dt
        last = "NaN/inf in the result"
    raise HalfInversionError(f"the {what} failed in {', '.join(str(d) for d in tried)} ({last}); the Jacobian is "
                             f"probably degenerate: raise the truncation tau, lower the learning rate or the batch "
                             f"size, or check the physics for NaN")


def gram_matrix(J: Tensor, dtype: torch.dtype = torch.float64, block: int = 4096) -> Tensor:
    """G = J J^T accumulated in ``dtype`` over column blocks of J (J is never copied whole)."""
    rows, cols = J.shape
    G = torch.zeros(rows, rows, dtype=dtype, device=J.device)
    for start in range(0, cols, block):
        part = J[:, start:start + block].to(dtype)
        G.addmm_(part, part.T)
    return G


def jt_vector(J: Tensor, w: Tensor, block: int = 4096) -> Tensor:
    """J^T w in the dtype of ``w``, over column blocks of J."""
    out = torch.empty(J.shape[1], dtype=w.dtype, device=J.device)
    for start in range(0, J.shape[1], block):
        out[start:start + block] = J[:, start:start + block].to(w.dtype).T @ w
    return out


def _beta_scale(s: Tensor, beta: float) -> Tensor | float:
    """max(S)^beta (1 where max(S) = 0 or beta = 0), on the device."""
    if beta == 0 or s.numel() == 0:
        return 1.0
    return torch.where(s[0] > 0, s[0].clamp_min(torch.finfo(s.dtype).tiny) ** beta, torch.ones_like(s[0]))


def gram_coefficients(G: Tensor, g: Tensor, *, kappa: float = -0.5, beta: float = 0.0, truncation: float = 1e-6,
                      dtype: torch.dtype = torch.float64, check: bool = True) -> tuple[Tensor, Spectrum]:
    """w = max(S)^beta U S^(kappa-1) U^T g from  G = J J^T = U S^2 U^T;  the update direction is then  J^T w.

    Returns w in the decomposition dtype (float64 unless ``dtype`` says otherwise) and the :class:`Spectrum`.
    ``check``: refuse non-finite G, g or w at once (host syncs); HIG's step passes False and checks its direction
    once instead (:func:`physopt.hig.direction.hig_direction`).
    """
    if check:
        _check_finite("Gram matrix J J^T", G)
        _check_finite("loss gradient dL/dy", g)
    (lam, U), used = _with_retry(lambda dt: torch.linalg.eigh(G.to(dt)), dtype, "eigendecomposition of J J^T",
                                 check)
    s = lam.clamp_min(0).sqrt().flip(0)            # descending singular values of J
    U = U.flip(1)
    coeff = truncated_power(s, kappa - 1.0, truncation)
    w = _beta_scale(s, beta) * (U @ (coeff * (U.T @ g.to(used))))
    if check:
        _check_overflow(w, kappa, beta)
    return w, Spectrum(s, (coeff != 0).sum(), "gram", used)


def half_inverse_gram(J: Tensor, g: Tensor, *, kappa: float = -0.5, beta: float = 0.0, truncation: float = 1e-6,
                      dtype: torch.dtype = torch.float64) -> tuple[Tensor, Spectrum]:
    """max(S)^beta V S^kappa U^T g  via  J^T [U S^(kappa-1) U^T g]  with  J J^T = U S^2 U^T  (Gram route)."""
    _check_finite("Jacobian", J)
    w, spectrum = gram_coefficients(gram_matrix(J, dtype), g, kappa=kappa, beta=beta, truncation=truncation,
                                    dtype=dtype)
    return jt_vector(J, w), spectrum


def svd_coefficients(J: Tensor, g: Tensor, *, kappa: float = -0.5, beta: float = 0.0, truncation: float = 1e-6,
                     dtype: torch.dtype = torch.float64,
                     check: bool = True) -> tuple[Tensor, Tensor, Tensor | float, Spectrum]:
    """c = S^kappa U^T g in the right-singular coordinates of the thin SVD  J = U S V^T, V^T, and max(S)^beta:
    the direction is then  max(S)^beta * V c  (:func:`half_inverse_svd`). ``check`` as in
    :func:`gram_coefficients`."""
    if check:
        _check_finite("Jacobian", J)
        _check_finite("loss gradient dL/dy", g)
    (U, s, Vh), used = _with_retry(lambda dt: torch.linalg.svd(J.to(dt), full_matrices=False), dtype,
                                   "thin SVD of the Jacobian", check)
    coeff = truncated_power(s, kappa, truncation)
    scale = _beta_scale(s, beta)
    c = coeff * (U.T @ g.to(used))
    if check:
        _check_overflow(c * scale, kappa, beta)
    return c, Vh, scale, Spectrum(s, (coeff != 0).sum(), "svd", used)


def half_inverse_svd(J: Tensor, g: Tensor, *, kappa: float = -0.5, beta: float = 0.0, truncation: float = 1e-6,
                     dtype: torch.dtype = torch.float64) -> tuple[Tensor, Spectrum]:
    """max(S)^beta V S^kappa U^T g  from the thin SVD  J = U S V^T  (reference route, as in the HIG paper)."""
    c, Vh, scale, spectrum = svd_coefficients(J, g, kappa=kappa, beta=beta, truncation=truncation, dtype=dtype)
    return scale * (Vh.T @ c), spectrum


def half_inverse(J: Tensor, g: Tensor, *, kappa: float = -0.5, beta: float = 0.0, truncation: float = 1e-6,
                 route: str = "auto", dtype: torch.dtype = torch.float64) -> tuple[Tensor, Spectrum]:
    """The HIG direction  J^<beta,kappa> g = max(S)^beta V S^kappa U^T g  (HIG paper Eq. 6, appendix C).

    Args:
        J: stacked Jacobian, shape (rows, cols) = (b * |y|, |theta|).
        g: dL/dy flattened, shape (rows,).
        kappa: exponent of the singular values: -1/2 HIG, -1 Gauss-Newton, 1 gradient descent.
        beta: the update is scaled by max(S)^beta (beta = -1 - kappa normalises the largest singular value to 1).
        truncation: relative tau; singular values <= tau * max(S) are dropped.
        route: ``"gram"``, ``"svd"`` or ``"auto"`` (Gram when rows < cols).
        dtype: precision of the decomposition (float64 by default; see the module docstring).

    Returns:
        The direction (cols,) in the decomposition dtype, and the :class:`Spectrum`.
    """
    if not isinstance(J, Tensor) or not isinstance(g, Tensor):
        raise TypeError(f"half_inverse takes J and g as tensors, got {type(J).__name__} and {type(g).__name__}")
    if J.dim() != 2 or g.dim() != 1 or g.shape[0] != J.shape[0]:
        raise ValueError(f"half_inverse expects J of shape (rows, cols) and g of shape (rows,), got "
                         f"{tuple(J.shape)} and {tuple(g.shape)}")
    for name, t in (("J", J), ("g", g)):
        if t.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"half_inverse takes real floating-point J and g (float32 or float64), got {name} of "
                            f"dtype {t.dtype}; convert it with {name}.to(torch.float64)")
    check_choice("dtype", dtype, (torch.float32, torch.float64))
    check_spectral_parameters(kappa, beta, truncation)
    check_choice("route", route, DECOMPOSITIONS)
    if route == "auto":
        route = choose_decomposition(*J.shape)
    fn = half_inverse_gram if route == "gram" else half_inverse_svd
    return fn(J, g, kappa=kappa, beta=beta, truncation=truncation, dtype=dtype)
