"""Shared grid numerics against independent references: dense matrices, analytic modes, phiml's stencils."""
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch.autograd import gradcheck

from problems.solvers.grids import (dst1, laplace_dirichlet, periodic_laplace_eigenvalues, smooth_noise,
                                    solve_poisson_dirichlet, solve_poisson_periodic, spectral_diffusion)


def dense_dirichlet_laplacian(h: int, w: int, dx: float = 1.0) -> np.ndarray:
    def lap1(n):
        return sp.diags([1, -2, 1], [-1, 0, 1], shape=(n, n), dtype=float)
    return ((sp.kron(lap1(h), sp.eye(w)) + sp.kron(sp.eye(h), lap1(w))) / dx**2).toarray()


def test_dst1_equals_dense_sine_matrix(device):
    n = 9
    x = torch.randn(4, 3, n, dtype=torch.float64, device=device)
    j = np.arange(1, n + 1)
    s = np.sin(np.pi * np.outer(j, j) / (n + 1))
    np.testing.assert_allclose(dst1(x).cpu().numpy(), x.cpu().numpy() @ s, atol=1e-12)
    # along another dim, and its own inverse up to (n+1)/2
    torch.testing.assert_close(dst1(dst1(x, 1), 1), x * (3 + 1) / 2)


def test_laplace_matches_dense_matrix_and_phiml():
    h, w, dx = 6, 5, 0.5
    u = torch.randn(2, h, w, dtype=torch.float64)
    dense = dense_dirichlet_laplacian(h, w, dx)
    ref = (u.reshape(2, -1).numpy() @ dense.T).reshape(2, h, w)
    np.testing.assert_allclose(laplace_dirichlet(u, dx).numpy(), ref, atol=1e-12)
    from phiml import math as pm
    with pm.precision(64):
        t = pm.tensor(u.numpy(), pm.batch("b"), pm.spatial("y,x"))
        ref_phiml = pm.laplace(t, dx=dx, padding=0).numpy("b,y,x")
    np.testing.assert_allclose(laplace_dirichlet(u, dx).numpy(), ref_phiml, atol=1e-12)


@pytest.mark.parametrize("shape", [(8, 8), (7, 12)])
def test_poisson_solve_matches_dense_solve(shape, device):
    h, w = shape
    rhs = torch.randn(3, h, w, dtype=torch.float64, device=device)
    phi = solve_poisson_dirichlet(rhs, dx=2.0)
    dense = dense_dirichlet_laplacian(h, w, 2.0)
    ref = np.linalg.solve(dense, rhs.reshape(3, -1).cpu().numpy().T).T.reshape(3, h, w)
    np.testing.assert_allclose(phi.cpu().numpy(), ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(laplace_dirichlet(phi, 2.0), rhs, rtol=1e-10, atol=1e-10)


def test_poisson_solve_float32_accuracy():
    rhs = torch.randn(2, 64, 64)
    phi = solve_poisson_dirichlet(rhs)
    ref = solve_poisson_dirichlet(rhs.double())
    assert ((phi.double() - ref).norm() / ref.norm()) < 1e-5


def test_periodic_poisson_solve_inverts_the_5_point_laplacian():
    rhs = torch.randn(2, 12, 20, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    rhs = rhs - rhs.mean(dim=(-2, -1), keepdim=True)
    phi = solve_poisson_periodic(rhs, 0.5)
    lap = (torch.roll(phi, 1, -1) + torch.roll(phi, -1, -1) + torch.roll(phi, 1, -2) + torch.roll(phi, -1, -2)
           - 4 * phi) / 0.25
    torch.testing.assert_close(lap, rhs, atol=1e-11, rtol=0)
    assert periodic_laplace_eigenvalues((12, 20))[0, 0] == 0


def test_spectral_diffusion_decays_fourier_modes_analytically(device):
    n, amount = 32, 3.0
    y, x = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")
    for ky, kx in [(0, 1), (2, 3), (5, 0)]:
        mode = torch.cos(2 * math.pi * (ky * y + kx * x) / n + 0.3).to(device)
        decay = math.exp(-(2 * math.pi) ** 2 * (ky**2 + kx**2) / n**2 * amount)
        torch.testing.assert_close(spectral_diffusion(mode[None], amount)[0], mode * decay, atol=1e-12, rtol=1e-12)


def test_spectral_diffusion_of_a_point_source_is_the_heat_kernel():
    """Analytic reference: a unit point source diffuses into exp(-r^2 / (4t)) / (4 pi t) (periodic images and
    band-limiting are below 1e-12 for t = 3 on a 64-cell domain)."""
    n, t = 64, 3.0
    delta = torch.zeros(1, n, n, dtype=torch.float64)
    delta[0, n // 2, n // 2] = 1.0
    y, x = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")
    r2 = (y - n // 2) ** 2 + (x - n // 2) ** 2
    kernel = torch.exp(-r2 / (4 * t)) / (4 * math.pi * t)
    torch.testing.assert_close(spectral_diffusion(delta, t)[0], kernel, atol=1e-12, rtol=0)


def test_gradcheck_float64():
    rhs = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert gradcheck(solve_poisson_dirichlet, (rhs,))
    assert gradcheck(lambda u: laplace_dirichlet(u, 0.7), (rhs,))
    assert gradcheck(lambda u: spectral_diffusion(u, 0.8), (rhs,))
    assert gradcheck(lambda u: dst1(u, -2), (rhs,))


def test_vmap_and_jacrev_work_through_the_solvers():
    rhs = torch.randn(3, 4, 4, dtype=torch.float64)
    batched = torch.func.vmap(solve_poisson_dirichlet)(rhs)
    torch.testing.assert_close(batched, solve_poisson_dirichlet(rhs))
    jac = torch.func.jacrev(solve_poisson_dirichlet)(rhs[0])
    dense = np.linalg.inv(dense_dirichlet_laplacian(4, 4))
    np.testing.assert_allclose(jac.reshape(16, 16).numpy(), dense, atol=1e-12)


def test_smooth_noise_statistics_and_seed():
    a = smooth_noise(4, (32, 32), torch.Generator().manual_seed(1), low_cut=2.0)
    b = smooth_noise(4, (32, 32), torch.Generator().manual_seed(1), low_cut=2.0)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a.mean(dim=(-2, -1)), torch.zeros(4), atol=1e-6, rtol=0)
    torch.testing.assert_close(a.std(dim=(-2, -1)), torch.ones(4), atol=1e-5, rtol=0)
    spec = torch.fft.rfft2(a.double()).abs()
    assert spec[:, 0, 0].max() < 1e-4 and spec[:, 1, 1].max() < 1e-4 and spec[:, 0, 2].max() < 1e-4
