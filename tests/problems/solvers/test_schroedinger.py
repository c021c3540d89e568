"""The 1-D Schroedinger solver with a dipole control (HIG paper Sec. 3.3, App. B.4), each piece against an independent
reference: dense complex numpy / scipy matrices built here from the equations, not from the module under test."""
import numpy as np
import pytest
import scipy.linalg
import torch
from torch.autograd import gradcheck

from problems.solvers import schroedinger as sch

POINTS, LENGTH, DT, STEPS = 16, 2.0, 0.05, 384
N_INT = POINTS - 2
DX = LENGTH / (POINTS - 1)


# ---- independent references (numpy, complex, dense) -----------------------------------------------------------------

def ref_hamiltonian(u: float) -> np.ndarray:
    """H(u) = -D2 + u diag(x), D2 = tridiag(1, -2, 1) / dx^2 on the 14 interior points x_j = j dx."""
    d2 = (np.diag(-2.0 * np.ones(N_INT)) + np.diag(np.ones(N_INT - 1), 1) + np.diag(np.ones(N_INT - 1), -1)) / DX ** 2
    x = DX * np.arange(1, N_INT + 1)
    return -d2 + u * np.diag(x)


def ref_cn_step(u: float, dt: float = DT) -> np.ndarray:
    """The exact Crank-Nicolson propagator (I + i dt/2 H)^{-1} (I - i dt/2 H), dense complex."""
    h, eye = ref_hamiltonian(u), np.eye(N_INT)
    return np.linalg.solve(eye + 0.5j * dt * h, eye - 0.5j * dt * h)


def to_real(psi: np.ndarray) -> torch.Tensor:
    """complex (..., n) -> real (..., 2, n), float64."""
    return torch.from_numpy(np.stack([psi.real, psi.imag], axis=-2)).to(torch.float64)


def to_complex(psi: torch.Tensor) -> np.ndarray:
    p = psi.detach().numpy()
    return p[..., 0, :] + 1j * p[..., 1, :]


def random_states(b: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    psi = rng.standard_normal((b, N_INT)) + 1j * rng.standard_normal((b, N_INT))
    return psi / np.linalg.norm(psi, axis=-1, keepdims=True)


X64 = sch.interior_positions(POINTS, LENGTH)


# ---- grid, Hamiltonian and eigenstates -------------------------------------------------------------------------------

def test_grid_matches_the_paper():
    assert sch.spacing(POINTS, LENGTH) == pytest.approx(2 / 15)          # "dx = 0.133, 16 discretization points"
    np.testing.assert_allclose(X64.numpy(), DX * np.arange(1, 15), rtol=0, atol=1e-15)
    np.testing.assert_allclose(sch.hamiltonian(0.7, POINTS, LENGTH).numpy(), ref_hamiltonian(0.7), rtol=1e-14)
    assert STEPS * DT == pytest.approx(19.2)                              # "up to a time of 19.2"


def test_eigenstates_are_orthonormal_eigenvectors_of_the_discrete_hamiltonian():
    e = sch.eigenstates(POINTS).numpy()               # rows e_1 .. e_14
    lam = sch.eigenvalues(POINTS, LENGTH).numpy()
    h = ref_hamiltonian(0.0)
    residual = np.abs(e @ h - lam[:, None] * e).max()  # H symmetric: (H e_k)^T = e_k^T H
    assert residual < 1e-12 * lam.max()
    np.testing.assert_allclose(e @ e.T, np.eye(N_INT), rtol=0, atol=1e-14)
    np.testing.assert_allclose(lam, np.linalg.eigvalsh(h), rtol=1e-12)
    assert np.all(np.diff(lam) > 0) and np.all(e[0] > 0)                # ascending; e_1 is the nodeless ground state


# ---- Crank-Nicolson -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("u", [0.0, 1.0, -7.5, 40.0])
def test_one_step_matches_the_dense_cn_propagator(u):
    psi = random_states(5, seed=1)
    expected = psi @ ref_cn_step(u).T
    out = sch.crank_nicolson_step(to_real(psi), torch.full((5,), u, dtype=torch.float64), X64, DX, DT)
    np.testing.assert_allclose(to_complex(out), expected, rtol=0, atol=1e-13)


def test_one_step_with_a_different_control_per_example():
    psi = random_states(4, seed=2)
    us = [0.0, 3.0, -20.0, 500.0]
    expected = np.stack([ref_cn_step(u) @ p for u, p in zip(us, psi)])
    out = sch.crank_nicolson_step(to_real(psi), torch.tensor(us, dtype=torch.float64), X64, DX, DT)
    np.testing.assert_allclose(to_complex(out), expected, rtol=0, atol=1e-13)
    # float32: same to single precision, also for extreme controls
    out32 = sch.crank_nicolson_step(to_real(psi).float(), torch.tensor(us, dtype=torch.float32), X64.float(),
                                    DX, DT)
    np.testing.assert_allclose(to_complex(out32.double()), expected, rtol=0, atol=2e-6)


def test_rollout_with_piecewise_constant_control_matches_the_product_of_dense_steps():
    rng = np.random.default_rng(3)
    psi0 = random_states(3, seed=4)
    u = 10 * rng.standard_normal((3, 30))
    expected = []
    for p, ub in zip(psi0, u):
        for un in ub:
            p = ref_cn_step(un) @ p
        expected.append(p)
    out = sch.rollout(to_real(psi0), torch.from_numpy(u), X64, DX, DT)
    np.testing.assert_allclose(to_complex(out), np.stack(expected), rtol=0, atol=1e-12)
    traj = sch.rollout(to_real(psi0), torch.from_numpy(u), X64, DX, DT, return_trajectory=True)
    assert traj.shape == (3, 31, 2, N_INT)
    torch.testing.assert_close(traj[:, 0], to_real(psi0))
    torch.testing.assert_close(traj[:, -1], out)


def test_full_rollout_at_zero_control_is_the_exact_discrete_cn_evolution():
    # at u = 0 CN multiplies each eigencomponent by the Cayley factor (1 - i lam dt/2) / (1 + i lam dt/2) per step
    e = sch.eigenstates(POINTS).numpy()
    lam = sch.eigenvalues(POINTS, LENGTH).numpy()
    psi0 = random_states(2, seed=5)
    factor = ((1 - 0.5j * lam * DT) / (1 + 0.5j * lam * DT)) ** STEPS
    expected = ((psi0 @ e.T) * factor) @ e
    out = sch.rollout(to_real(psi0), torch.zeros(2, STEPS, dtype=torch.float64), X64, DX, DT)
    np.testing.assert_allclose(to_complex(out), expected, rtol=0, atol=1e-11)


def test_full_rollout_converges_to_expm_at_second_order():
    # psi0 = e_1 (the problem's start state), u = 0, T = 19.2. CN's phase error per step for eigenvalue lam is
    # lam dt - 2 atan(lam dt / 2) ~ lam^3 dt^3 / 12, so |psi_CN(T) - expm(-i H T) e_1| ~ lam_1^3 dt^2 T / 12
    # (0.059 at dt = 0.05): the paper's setup resolves the ground state's phase only to a few percent.
    T = STEPS * DT
    e1 = sch.eigenstates(POINTS).numpy()[0]
    exact = scipy.linalg.expm(-1j * ref_hamiltonian(0.0) * T) @ e1
    lam1 = sch.eigenvalues(POINTS, LENGTH).numpy()[0]
    errors = []
    for dt in (DT, DT / 2):
        steps = round(T / dt)
        out = sch.rollout(to_real(e1[None]), torch.zeros(1, steps, dtype=torch.float64), X64, DX, dt)
        err = np.linalg.norm(to_complex(out)[0] - exact)
        bound = lam1 ** 3 * dt ** 2 * T / 12
        assert 0.9 * bound < err < 1.01 * bound
        errors.append(err)
    assert 3.9 < errors[0] / errors[1] < 4.1



def test_rollout_with_a_varying_control_converges_to_the_product_of_matrix_exponentials():
    # exact evolution under a piecewise-constant control: psi(T) = prod_k expm(-i H(u_k) tau) psi0, tau = 0.2;
    # CN with dt = tau / k (each u_k held for k steps) converges to it at second order
    rng = np.random.default_rng(13)
    u = 3 * rng.standard_normal(5)
    e = sch.eigenstates(POINTS).numpy()
    psi0 = (e[1] + e[2]) / np.sqrt(2) + 0j                                 # a target state of the problem
    exact = psi0
    for uk in u:
        exact = scipy.linalg.expm(-1j * ref_hamiltonian(uk) * 0.2) @ exact
    errors = []
    for k in (32, 64, 128):
        out = sch.rollout(to_real(psi0[None]), torch.from_numpy(np.repeat(u, k))[None], X64, DX, 0.2 / k)
        errors.append(np.linalg.norm(to_complex(out)[0] - exact))
    assert errors[-1] < 0.01                                               # measured 4.2e-3
    assert 3.9 < errors[0] / errors[1] < 4.1 and 3.9 < errors[1] / errors[2] < 4.1   # measured 3.96, 3.98

def test_norm_is_conserved_for_random_controls():
    psi0 = to_real(random_states(4, seed=6))
    u = 30 * torch.randn(4, STEPS, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    out = sch.rollout(psi0, u, X64, DX, DT)
    np.testing.assert_allclose(sch.norm2(out).numpy(), 1.0, rtol=0, atol=1e-12)
    out32 = sch.rollout(psi0.float(), u.float(), X64.float(), DX, DT)
    np.testing.assert_allclose(sch.norm2(out32).numpy(), 1.0, rtol=0, atol=1e-4)
    assert (out32.double() - out).abs().max() < 1e-4


@pytest.mark.parametrize("u", [0.0, -3.0, 250.0])
def test_semiseparable_factors_reproduce_the_dense_inverse(u):
    # (T^{-1})_{ij} = X_min(i,j) Y_max(i,j) with T = I + i dt/2 H(u), against numpy's dense complex inverse
    xr, xi, yr, yi = sch.cn_factors(torch.tensor(u, dtype=torch.float64), X64, DX, DT)
    x, y = xr.numpy() + 1j * xi.numpy(), yr.numpy() + 1j * yi.numpy()
    i, j = np.indices((N_INT, N_INT))
    semiseparable = x[np.minimum(i, j)] * y[np.maximum(i, j)]
    dense = np.linalg.inv(np.eye(N_INT) + 0.5j * DT * ref_hamiltonian(u))
    np.testing.assert_allclose(semiseparable, dense, rtol=0, atol=1e-13 * np.abs(dense).max())


def test_inner_products_and_norms_match_numpy():
    a, b = random_states(3, seed=8), 2 * random_states(3, seed=9)
    ra, rb = to_real(a), to_real(b)
    re, im = sch.inner(ra, rb)
    expected = np.einsum("bj,bj->b", a.conj(), b)                         # <a, b> = sum_j conj(a_j) b_j
    np.testing.assert_allclose(re.numpy() + 1j * im.numpy(), expected, rtol=0, atol=1e-14)
    np.testing.assert_allclose(sch.overlap2(ra, rb).numpy(), np.abs(expected) ** 2, rtol=1e-13)
    np.testing.assert_allclose(sch.norm2(rb).numpy(), np.linalg.norm(b, axis=-1) ** 2, rtol=1e-13)
    torch.testing.assert_close(sch.as_real(torch.from_numpy(a)), ra, atol=0, rtol=0)
    np.testing.assert_array_equal(sch.as_complex(ra).numpy(), a)


def test_rollout_gradients_pass_gradcheck_and_vmap_gives_the_batched_result():
    psi0 = to_real(random_states(2, seed=10))
    u = 5 * torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    assert gradcheck(lambda p, v: sch.rollout(p, v, X64, DX, DT), (psi0.clone().requires_grad_(),
                                                                  u.clone().requires_grad_()))
    per_example = torch.func.vmap(lambda p, v: sch.rollout(p[None], v[None], X64, DX, DT)[0])(psi0, u)
    torch.testing.assert_close(per_example, sch.rollout(psi0, u, X64, DX, DT), atol=1e-15, rtol=0)


def test_bad_grids_and_shapes_are_named():
    with pytest.raises(ValueError, match="at least 3 grid points"):
        sch.spacing(2, LENGTH)
    psi = to_real(random_states(2, seed=12))
    with pytest.raises(ValueError, match=r"state must have shape \(B, 2, 14\)"):
        sch.rollout(psi[:, :, :-1], torch.zeros(2, 3, dtype=torch.float64), X64, DX, DT)
    with pytest.raises(ValueError, match="batch size 3 but the state has 2"):
        sch.crank_nicolson_step(psi, torch.zeros(3, dtype=torch.float64), X64, DX, DT)


# ---- the rollout's Jacobian in closed form ------------------------------------------------------------------------

def test_step_matrices_are_the_dense_cn_propagators():
    u = torch.tensor([[0.0, 3.0, -7.5]], dtype=torch.float64)
    C = sch.step_matrices(u, sch.interior_positions(POINTS, LENGTH), DX, DT)
    assert C.shape == (1, 3, N_INT, N_INT) and C.dtype == torch.complex128
    for k, uk in enumerate(u[0].tolist()):
        np.testing.assert_allclose(C[0, k].numpy(), ref_cn_step(uk), rtol=0, atol=1e-13)


def test_rollout_jacobian_is_the_autograd_jacobian_of_the_rollout_in_float64():
    """d psi^N / d u_k in closed form against torch.func.jacrev through :func:`rollout`, per example, to round-off;
    psi^N itself equals the rollout's."""
    torch.manual_seed(0)
    b, steps = 3, 40
    x = sch.interior_positions(POINTS, LENGTH)
    psi0 = torch.randn(b, 2, N_INT, dtype=torch.float64)
    u = 3.0 * torch.randn(b, steps, dtype=torch.float64)
    psi, J = sch.rollout_jacobian(psi0, u, x, DX, DT)
    assert J.shape == (b, 2, N_INT, steps) and not J.requires_grad
    torch.testing.assert_close(psi, sch.rollout(psi0, u, x, DX, DT), rtol=0, atol=1e-14)
    for i in range(b):
        ref = torch.func.jacrev(lambda v: sch.rollout(psi0[i:i + 1], v[None], x, DX, DT)[0])(u[i])
        assert ((J[i] - ref).abs().max() / ref.abs().max()).item() < 1e-12


def test_rollout_jacobian_keeps_float32_and_refuses_integer_controls():
    x = sch.interior_positions(POINTS, LENGTH, dtype=torch.float32)
    psi0 = torch.zeros(2, 2, N_INT)
    psi, J = sch.rollout_jacobian(psi0, torch.zeros(2, 5), x, DX, DT)
    assert psi.dtype == J.dtype == torch.float32
    with pytest.raises(ValueError, match="float32 or float64"):
        sch.step_matrices(torch.zeros(2, 5, dtype=torch.int64), x, DX, DT)
    with pytest.raises(ValueError, match="batch size"):
        sch.rollout_jacobian(psi0, torch.zeros(3, 5), x, DX, DT)
