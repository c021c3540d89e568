r"""The 1-D Schroedinger equation with a dipole control, discretised as in the HIG paper (Sec. 3.3, App. B.4).

    i d psi/dt = H(t) psi,   H(t) = -d^2/dx^2 + u(t) x,   x in [0, L],   psi(0) = psi(L) = 0.

Space: ``points`` grid points x_j = j dx, j = 0 .. M with M = points - 1 and dx = L / M; the two boundary values are 0,
so the state holds the n = points - 2 interior values psi_1 .. psi_n. The Laplacian is the Dirichlet second difference

    D2 = tridiag(1, -2, 1) / dx^2   (n x n),        H(u) = -D2 + u diag(x_1 .. x_n).

At u = 0 its exact eigenpairs are (k = 1 .. n)

    e_k[j] = sqrt(2 / M) sin(k pi j / M),    lambda_k = (4 / dx^2) sin^2(k pi / (2 M)),

orthonormal in the plain Euclidean inner product <a, b> = sum_j conj(a_j) b_j, which is the one used throughout.

Time: Crank-Nicolson with a piecewise-constant control, one value u_n per step of size dt:

    (I + i dt/2 H(u_n)) psi^{n+1} = (I - i dt/2 H(u_n)) psi^n.

The step is the Cayley transform of the Hermitian H, hence unitary (the norm is kept exactly); since
(I + iA)^{-1}(I - iA) = 2 (I + iA)^{-1} - I it is evaluated as psi^{n+1} = 2 T_n^{-1} psi^n - psi^n with
T_n = I + i dt/2 H(u_n), a complex symmetric tridiagonal matrix.

Representation: everything is plain real-valued torch so it works under ``torch.func`` (vmap, jacrev, jvp) on any
device and floating dtype. A complex state is a real tensor of shape (..., 2, n): [..., 0, :] the real parts,
[..., 1, :] the imaginary parts.

How T^{-1} is applied (exact up to round-off, O(n) memory per step and a handful of tensor ops per step):
with the forward and backward pivots of T = tridiag(beta, alpha_i, beta), alpha_i = 1 + i dt/2 (2/dx^2 + u x_i),
beta = -i dt/(2 dx^2),

    d_1 = alpha_1,  d_i = alpha_i - beta^2 / d_{i-1};      e_n = alpha_n,  e_i = alpha_i - beta^2 / e_{i+1},

the inverse is  (T^{-1})_{ii} = g_i = 1 / (d_i + e_i - alpha_i)  and  (T^{-1})_{ij} = g_i prod_{k=i+1}^{j} (-beta / e_k)
for i < j (symmetric). That is a rank-1 semiseparable matrix, (T^{-1})_{ij} = X_min(i,j) Y_max(i,j) with
Y_j = G_j, X_i = g_i / G_i, G_k = G_{k-1} (-beta / e_k) normalised to G = 1 at the middle index (which halves the
dynamic range of X and Y: float32 stays finite up to controls of order 1e5). Then

    (T^{-1} psi)_i = X_i sum_{j >= i} Y_j psi_j + Y_i sum_{j < i} X_j psi_j,

two (inclusive / exclusive) cumulative sums, done as one small batched matmul with triangular 0/1 matrices.
The factors of all steps are computed up front, vectorised over steps and batch; only the cheap application runs
sequentially.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "spacing", "interior_positions", "second_difference", "hamiltonian", "eigenstates", "eigenvalues",
    "as_real", "as_complex", "inner", "overlap2", "norm2", "cn_factors", "crank_nicolson_step", "rollout",
    "step_matrices", "rollout_jacobian",
]


# ---- grid, operators and eigenstates -----------------------------------------------------------------------------

def spacing(points: int, length: float) -> float:
    """Grid spacing dx = L / (points - 1)."""
    if points < 3:
        raise ValueError(f"need at least 3 grid points (one interior unknown), got points={points}")
    return length / (points - 1)


def interior_positions(points: int, length: float, *, dtype: torch.dtype = torch.float64,
                       device: torch.device | str | None = None) -> Tensor:
    """Interior grid positions x_j = j dx, j = 1 .. points - 2 (the boundary values psi(0) = psi(L) = 0 are implicit)."""
    dx = spacing(points, length)
    return torch.arange(1, points - 1, dtype=dtype, device=device) * dx


def second_difference(points: int, length: float, *, dtype: torch.dtype = torch.float64,
                      device: torch.device | str | None = None) -> Tensor:
    """Dense Dirichlet second-difference matrix D2 = tridiag(1, -2, 1) / dx^2 on the n = points - 2 interior points."""
    dx = spacing(points, length)
    n = points - 2
    d2 = -2.0 * torch.eye(n, dtype=dtype, device=device)
    off = torch.ones(n - 1, dtype=dtype, device=device)
    return (d2 + torch.diag(off, 1) + torch.diag(off, -1)) / dx ** 2


def hamiltonian(u: Tensor | float, points: int, length: float, *, dtype: torch.dtype = torch.float64,
                device: torch.device | str | None = None) -> Tensor:
    """Dense H(u) = -D2 + u diag(x), shape (..., n, n) for a control u of shape (...). A reference for tests and
    analysis; the time stepping never forms it."""
    u = torch.as_tensor(u, dtype=dtype, device=device)
    x = interior_positions(points, length, dtype=dtype, device=device)
    return -second_difference(points, length, dtype=dtype, device=device) + u[..., None, None] * torch.diag(x)


def eigenstates(points: int, *, dtype: torch.dtype = torch.float64,
                device: torch.device | str | None = None) -> Tensor:
    """The eigenstates of H(0): row k-1 is e_k[j] = sqrt(2/M) sin(k pi j / M), j = 1 .. n, M = points - 1.

    Real, orthonormal, ordered by energy: e_1 is the ground state, e_2 the first excited state, and so on.
    They do not depend on the domain length (only the eigenvalues do)."""
    m = points - 1
    k = torch.arange(1, m, dtype=torch.float64)
    return (math.sqrt(2.0 / m) * torch.sin(math.pi * k[:, None] * k[None, :] / m)).to(dtype=dtype, device=device)


def eigenvalues(points: int, length: float, *, dtype: torch.dtype = torch.float64,
                device: torch.device | str | None = None) -> Tensor:
    """Eigenvalues of H(0): lambda_k = (4 / dx^2) sin^2(k pi / (2 M)), k = 1 .. n, ascending."""
    m = points - 1
    dx = spacing(points, length)
    k = torch.arange(1, m, dtype=torch.float64)
    return (4.0 / dx ** 2 * torch.sin(math.pi * k / (2 * m)) ** 2).to(dtype=dtype, device=device)


# ---- complex numbers as (..., 2, n) real tensors -----------------------------------------------------------------

def as_real(psi: Tensor) -> Tensor:
    """A complex tensor (..., n) as the real (..., 2, n) representation [real; imag]."""
    return torch.stack([psi.real, psi.imag], dim=-2)


def as_complex(psi: Tensor) -> Tensor:
    """The real (..., 2, n) representation as a complex tensor (..., n) (for analysis only; not differentiated)."""
    return torch.complex(psi[..., 0, :], psi[..., 1, :])


def inner(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """<a, b> = sum_j conj(a_j) b_j of states in (..., 2, n) form, as (real part, imaginary part), each (...)."""
    ar, ai = a[..., 0, :], a[..., 1, :]
    br, bi = b[..., 0, :], b[..., 1, :]
    return (ar * br + ai * bi).sum(-1), (ar * bi - ai * br).sum(-1)


def overlap2(a: Tensor, b: Tensor) -> Tensor:
    """Transition probability |<a, b>|^2 of states in (..., 2, n) form, shape (...)."""
    re, im = inner(a, b)
    return re * re + im * im


def norm2(psi: Tensor) -> Tensor:
    """Squared norm sum_j |psi_j|^2 of states in (..., 2, n) form."""
    return psi.square().sum((-2, -1))


# ---- Crank-Nicolson ------------------------------------------------------------------------------------------------

def cn_factors(u: Tensor, x: Tensor, dx: float, dt: float, *, dim: int = -1) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""Semiseparable factors of T^{-1} = (I + i dt/2 H(u))^{-1}: (T^{-1})_{ij} = X_min(i,j) Y_max(i,j).

    Args:
        u: controls, any shape (...).
        x: interior positions, shape (n,).
        dim: where the grid index goes in the outputs: -1 gives (..., n); 0 gives (n, ...), and so on.
    Returns:
        (Xr, Xi, Yr, Yi): real and imaginary parts of X and Y.

    See the module docstring for the recurrences. Pure tensor arithmetic (no control flow on values), so it is
    differentiable and vmap-safe; the loops run over the n grid indices only.
    """
    c = 0.5 * dt
    b = c / dx ** 2                          # beta = -i b,  -beta^2 = b^2,  -beta = i b
    b2 = b * b
    n = x.shape[-1]
    cols = [c * (2.0 / dx ** 2 + u * xi) for xi in x.unbind(-1)]  # alpha_i = 1 + i a_i

    def pivots(order):
        # p_first = alpha; p = alpha - beta^2 / p_prev = alpha + b^2 conj(p_prev) / |p_prev|^2  (Re alpha = 1)
        out = {}
        pr = pi = None
        for i in order:
            if pr is None:
                pr, pi = torch.ones_like(cols[i]), cols[i]
            else:
                s = b2 / (pr * pr + pi * pi)
                pr, pi = 1.0 + s * pr, cols[i] - s * pi
            out[i] = (pr, pi)
        return out

    def cmul(p, r):
        return p[0] * r[0] - p[1] * r[1], p[0] * r[1] + p[1] * r[0]

    d = pivots(range(n))
    e = pivots(range(n - 1, -1, -1))
    # q_k = -beta / e_k = i b conj(e_k) / |e_k|^2 ;  1 / q_k = -i e_k / b
    q = []
    for k in range(n):
        er, ei = e[k]
        s = b / (er * er + ei * ei)
        q.append((s * ei, s * er))
    qinv = [(e[k][1] / b, -e[k][0] / b) for k in range(n)]
    # Y_k = G_k and 1 / G_k, with G_mid = 1 and G_k = G_{k-1} q_k
    mid = (n - 1) // 2
    one, zero = torch.ones_like(cols[0]), torch.zeros_like(cols[0])
    G, Ginv = {mid: (one, zero)}, {mid: (one, zero)}
    for k in range(mid + 1, n):
        G[k], Ginv[k] = cmul(G[k - 1], q[k]), cmul(Ginv[k - 1], qinv[k])
    for k in range(mid - 1, -1, -1):
        G[k], Ginv[k] = cmul(G[k + 1], qinv[k + 1]), cmul(Ginv[k + 1], q[k + 1])
    # X_i = g_i / G_i with the diagonal g_i = 1 / (d_i + e_i - alpha_i)
    X = []
    for i in range(n):
        sr = d[i][0] + e[i][0] - 1.0
        si = d[i][1] + e[i][1] - cols[i]
        den = sr * sr + si * si
        X.append(cmul((sr / den, -si / den), Ginv[i]))
    return (torch.stack([t[0] for t in X], dim), torch.stack([t[1] for t in X], dim),
            torch.stack([G[i][0] for i in range(n)], dim), torch.stack([G[i][1] for i in range(n)], dim))


# Constant contraction tables of the step. Products are indexed (group g, factor part, state part) with the groups
# g = (Y, X) of the factors F = (Yr, Yi, Xr, Xi); only products that are used are formed (no 0 * inf).
# In:  (X psi, Y psi) (re, im each) from F x psi.   Out: 2 T^{-1} psi = 2 (Y P + X S) from F x (P, S).
_IN = [((0, 1, 0, 0), 1.0), ((0, 1, 1, 1), -1.0), ((1, 1, 0, 1), 1.0), ((1, 1, 1, 0), 1.0),
       ((2, 0, 0, 0), 1.0), ((2, 0, 1, 1), -1.0), ((3, 0, 0, 1), 1.0), ((3, 0, 1, 0), 1.0)]
_OUT = [((0, 1, 0, 0), 2.0), ((0, 1, 1, 1), -2.0), ((0, 0, 0, 0), 2.0), ((0, 0, 1, 1), -2.0),
        ((1, 1, 0, 1), 2.0), ((1, 1, 1, 0), 2.0), ((1, 0, 0, 1), 2.0), ((1, 0, 1, 0), 2.0)]


def _table(entries, rows, dtype, device) -> Tensor:
    t = torch.zeros(rows, 2, 2, 2, dtype=dtype, device=device)
    for idx, v in entries:
        t[idx] = v
    return t.reshape(rows, 8)


def _operators(u: Tensor, x: Tensor, dx: float, dt: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-step data for :func:`_apply`, from controls u of shape (N, B) (steps first).

    F (N, 4, n, B): the factors (Yr, Yi, Xr, Xi) of every step, grid index before batch, each step's slice contiguous;
    tri (4, n, n): exclusive forward (for X psi) / inclusive reverse (for Y psi) cumulative-sum matrices;
    m_in (4, 8), m_out (2, 8): the constant complex-multiplication tables.
    """
    Xr, Xi, Yr, Yi = cn_factors(u, x, dx, dt, dim=1)          # (N, n, B)
    F = torch.stack([Yr, Yi, Xr, Xi], 1)
    n = x.shape[-1]
    ones = torch.ones(n, n, dtype=u.dtype, device=u.device)
    upper, lower = ones.triu(), ones.tril(-1)   # (upper @ a)_i = sum_{j>=i} a_j ; (lower @ a)_i = sum_{j<i} a_j
    tri = torch.stack([lower, lower, upper, upper])
    m_in = _table(_IN, 4, u.dtype, u.device)
    m_out = _table(_OUT, 2, u.dtype, u.device)
    return F, tri, m_in, m_out


def _apply(psi: Tensor, F: Tensor, tri: Tensor, m_in: Tensor, m_out: Tensor) -> Tensor:
    """One Crank-Nicolson step psi -> 2 T^{-1} psi - psi for psi of shape (2, n, B) (real/imag, grid, batch)."""
    n, b = psi.shape[1], psi.shape[2]
    f = F.reshape(2, 2, 1, n, b)
    ab = (m_in @ (f * psi).reshape(8, n * b)).reshape(4, n, b)           # X psi, Y psi (re, im)
    sp = torch.bmm(tri, ab)                                              # P = sum_{j<i} X psi, S = sum_{j>=i} Y psi
    prod = (f * sp.reshape(2, 1, 2, n, b)).reshape(8, n * b)             # Y x P, X x S
    return torch.addmm(psi.reshape(2, n * b), m_out, prod, beta=-1).reshape(2, n, b)


def _check(psi: Tensor, u: Tensor, x: Tensor) -> None:
    if psi.dim() != 3 or psi.shape[1] != 2 or psi.shape[2] != x.shape[-1]:
        raise ValueError(f"state must have shape (B, 2, {x.shape[-1]}) (real/imag parts of the interior values), "
                         f"got {tuple(psi.shape)}")
    if u.shape[0] != psi.shape[0]:
        raise ValueError(f"controls have batch size {u.shape[0]} but the state has {psi.shape[0]}")


def crank_nicolson_step(psi: Tensor, u: Tensor, x: Tensor, dx: float, dt: float) -> Tensor:
    r"""One Crank-Nicolson step (I + i dt/2 H(u)) psi' = (I - i dt/2 H(u)) psi, H(u) = -D2 + u diag(x).

    Args:
        psi: states, shape (B, 2, n) (real parts, imaginary parts of the interior values).
        u: one control per example, shape (B,).
        x: interior positions, shape (n,).
    Returns:
        psi', shape (B, 2, n). Unitary: |psi'| = |psi| up to round-off.
    """
    _check(psi, u, x)
    F, tri, m_in, m_out = _operators(u[None], x.to(u.dtype), dx, dt)
    return _apply(psi.permute(1, 2, 0), F[0], tri, m_in, m_out).permute(2, 0, 1)


def rollout(psi0: Tensor, controls: Tensor, x: Tensor, dx: float, dt: float, *,
            return_trajectory: bool = False) -> Tensor:
    r"""Crank-Nicolson rollout with a piecewise-constant control: psi^{n+1} = CN(u_n) psi^n, n = 0 .. N-1.

    Args:
        psi0: start states, shape (B, 2, n).
        controls: u_n, shape (B, N): one value per step, held constant over [n dt, (n+1) dt].
        x: interior positions, shape (n,).
        return_trajectory: also return all states.
    Returns:
        psi^N, shape (B, 2, n); with ``return_trajectory`` the states psi^0 .. psi^N, shape (B, N + 1, 2, n).

    The step factors of all N steps are computed at once (vectorised over steps and batch); the N applications run
    sequentially, each a few small tensor ops. Differentiable, vmap-safe, any device and floating dtype.
    """
    _check(psi0, controls, x)
    F, tri, m_in, m_out = _operators(controls.transpose(0, 1), x.to(controls.dtype), dx, dt)
    psi = psi0.permute(1, 2, 0)
    states = [psi]
    for Fn in F.unbind(0):
        psi = _apply(psi, Fn, tri, m_in, m_out)
        if return_trajectory:
            states.append(psi)
    if return_trajectory:
        return torch.stack(states, 0).permute(3, 0, 1, 2)
    return psi.permute(2, 0, 1)


# ---- the rollout's Jacobian w.r.t. the controls, in closed form ----------------------------------------------------

def step_matrices(controls: Tensor, x: Tensor, dx: float, dt: float) -> Tensor:
    r"""The dense complex step matrices C_k = (I + i dt/2 H(u_k))^{-1} (I - i dt/2 H(u_k)) = 2 T_k^{-1} - I.

    Args:
        controls: u, shape (..., N).
        x: interior positions, shape (n,).
    Returns:
        C, complex, shape (..., N, n, n), from the semiseparable factors (T^{-1})_{ij} = X_min(i,j) Y_max(i,j).
    """
    if not controls.is_floating_point() or controls.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"controls must be float32 or float64 (the step matrices are complex), got {controls.dtype}")
    Xr, Xi, Yr, Yi = cn_factors(controls, x.to(controls.dtype), dx, dt)            # (..., N, n)
    X, Y = torch.complex(Xr, Xi), torch.complex(Yr, Yi)
    i = torch.arange(x.shape[-1], device=controls.device)
    lo, hi = torch.minimum(i[:, None], i[None, :]), torch.maximum(i[:, None], i[None, :])
    eye = torch.eye(x.shape[-1], dtype=X.dtype, device=X.device)
    return 2.0 * X[..., lo] * Y[..., hi] - eye


def rollout_jacobian(psi0: Tensor, controls: Tensor, x: Tensor, dx: float, dt: float) -> tuple[Tensor, Tensor]:
    r"""The final state psi^N of :func:`rollout` and its Jacobian w.r.t. every control, in closed form.

    With psi^{k+1} = C_k psi^k (:func:`step_matrices`), the suffix products P_k = C_{N-1} ... C_k (P_N = I) and
    dC_k/du_k = -2 T_k^{-1} (dT_k/du_k) T_k^{-1} = -i dt T_k^{-1} diag(x) T_k^{-1}, using
    T_k^{-1} psi^k = (psi^k + psi^{k+1}) / 2 and P_{k+1} T_k^{-1} = (P_k + P_{k+1}) / 2:

        d psi^N / d u_k = P_{k+1} (dC_k/du_k) psi^k = -(i dt / 4) (P_k + P_{k+1}) (x * (psi^k + psi^{k+1})).

    One forward sweep for the states and one backward sweep for the P_k, each N small batched complex matmuls,
    instead of |psi^N| = 2n reverse passes through the rollout (the per-example Jacobian HIG needs).
    The same derivative as autograd through :func:`rollout` to round-off (tested against ``torch.func.jacrev``).

    Args:
        psi0: start states, shape (B, 2, n).
        controls: u_k, shape (B, N).
        x: interior positions, shape (n,).
    Returns:
        (psi^N of shape (B, 2, n), J of shape (B, 2, n, N)): J[b, r, j, k] = d psi^N[b, r, j] / d u[b, k]
        (r = 0 real part, 1 imaginary part). Not differentiable itself (computed without a graph).
    """
    _check(psi0, controls, x)
    with torch.no_grad():
        C = step_matrices(controls, x, dx, dt)                                      # (B, N, n, n)
        n, N = x.shape[-1], controls.shape[-1]
        states = [torch.complex(psi0[:, 0], psi0[:, 1]).to(C.dtype)]
        for k in range(N):
            states.append((C[:, k] @ states[-1].unsqueeze(-1)).squeeze(-1))
        S = torch.stack(states, 1)                                                  # (B, N + 1, n)
        suffix = [torch.eye(n, dtype=C.dtype, device=C.device).expand_as(C[:, 0])]  # P_N
        for k in range(N - 1, -1, -1):
            suffix.append(suffix[-1] @ C[:, k])
        P = torch.stack(suffix[::-1], 1)                                            # (B, N + 1, n, n): P_0 .. P_N
        v = x.to(controls.dtype) * (S[:, :-1] + S[:, 1:])                            # (B, N, n)
        cols = ((P[:, :-1] + P[:, 1:]) @ v.unsqueeze(-1)).squeeze(-1) * (-0.25j * dt)  # (B, N, n)
        J = torch.stack([cols.real, cols.imag], 1).permute(0, 1, 3, 2)              # (B, 2, n, N)
        psiN = torch.stack([S[:, -1].real, S[:, -1].imag], 1)
    return psiN.to(controls.dtype), J.to(controls.dtype).contiguous()
