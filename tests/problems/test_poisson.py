"""The Poisson problems (SIP paper Sec. 3.5, here at 16x16; HIG paper Sec. 3.2, 8x8): the exact SIP inverse update
against the 5-point Laplacian it inverts."""
import torch

from problems import get_problem
from problems.solvers.grids import laplace_dirichlet


def test_poisson_inverse_update_is_exact():
    p = get_problem("poisson", dtype=torch.float64, resolution=16)
    batch = p.sample(3, torch.Generator().manual_seed(0))
    x = torch.randn(3, *p.x_shape, dtype=torch.float64)
    torch.testing.assert_close(x + p.inverse_update(x, batch), batch.x_true)
    torch.testing.assert_close(laplace_dirichlet(batch.target), batch.x_true)


def test_poisson_hig_is_the_papers_8x8_setup_with_an_exact_inverse():
    p = get_problem("poisson-hig", dtype=torch.float64)
    torch.manual_seed(0)
    assert sum(w.numel() for w in p.default_network().parameters()) == 41_408      # HIG paper Sec. 3.2
    batch = p.sample(6, torch.Generator().manual_seed(0))
    assert batch.inputs.shape == (6, 8, 8)
    torch.testing.assert_close(batch.inputs.mean(dim=(-2, -1)), torch.zeros(6, dtype=torch.float64))
    # the target is reached by the ground truth, and the SIP update lands on it from anywhere
    torch.testing.assert_close(laplace_dirichlet(batch.x_true), batch.target)
    x = torch.randn(6, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(x + p.inverse_update(x, batch), batch.x_true)
