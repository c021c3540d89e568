"""The toy problems: the rotated sine's nearest preimage (SIP paper Sec. 3.4) and the HIG toy's loss (HIG paper
Sec. 2.1, Eq. 4)."""
import math

import pytest
import torch

from problems import get_problem


def test_rotated_sine_preimage_is_exact_and_nearest():
    p = get_problem("rotated-sine", dtype=torch.float64, xi=32.0, phi=45.0)
    batch = p.sample(50, torch.Generator().manual_seed(0))
    x = torch.randn(50, 2, dtype=torch.float64)
    pre = p.nearest_preimage(x, batch.target)
    torch.testing.assert_close(p.forward(pre, batch), batch.target)
    d = p.x_error(x, batch)
    # any other branch / period is at least as far
    a = p._map
    for shift in (-2 * math.pi, 2 * math.pi):
        other_hat = pre @ a.T + torch.tensor([shift, 0.0], dtype=torch.float64)
        other = torch.linalg.solve(a, other_hat.unsqueeze(-1)).squeeze(-1)
        assert ((x - other).norm(dim=-1) >= d - 1e-9).all()


def test_hig_toy_scales_the_second_component_by_gamma():
    p = get_problem("hig-toy", dtype=torch.float64, gamma=0.01)
    batch = p.sample(64, torch.Generator().manual_seed(0))
    x = batch.inputs[:, 0]
    torch.testing.assert_close(batch.target, torch.stack([torch.sin(6 * x), torch.cos(9 * x)], -1))
    f = torch.randn(64, 2, dtype=torch.float64)
    expected = 0.5 * (f[:, 0] - batch.target[:, 0]) ** 2 + 0.5 * (0.01 * f[:, 1] - batch.target[:, 1]) ** 2
    torch.testing.assert_close(p.loss(p.forward(f, batch), batch), expected)            # HIG paper Eq. 4
    torch.manual_seed(0)
    assert sum(w.numel() for w in p.default_network().parameters()) == 1 * 7 + 7 + 7 * 2 + 2
    with pytest.raises(ValueError, match="gamma must be a finite number > 0"):
        get_problem("hig-toy", gamma=0.0)
