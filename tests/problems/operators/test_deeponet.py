"""deeponet: the ZCS paper's DeepONet, u_ij = <b(p_i), t(x_j)> + bias, pointwise in x, with a pairwise form."""
import pytest
import torch

from physopt.derivatives.zcs import check_pointwise
from problems.operators import DeepONet, ScalingPDE, deeponet


def test_deeponet_is_the_papers_cartesian_product_network(gen):
    net = ScalingPDE().default_network()
    sizes = [m.weight.shape[::-1] for m in net.branch if isinstance(m, torch.nn.Linear)]
    assert [tuple(s) for s in sizes] == [(50, 128), (128, 128), (128, 128)]
    assert [tuple(m.weight.shape[::-1]) for m in net.trunk if isinstance(m, torch.nn.Linear)] == [
        (2, 128), (128, 128), (128, 128)]
    p, x = torch.randn(3, 50), torch.rand(5, 2)
    u = net(p, x)
    assert u.shape == (3, 5)
    pairs = net.pairwise(p.repeat_interleave(5, 0), x.repeat(3, 1))
    torch.testing.assert_close(pairs.view(3, 5), u)
    check_pointwise(net.double(), p.double(), x.double(), generator=gen())
    with pytest.raises(ValueError, match="same width"):
        DeepONet([50, 8], [2, 16])


def test_forward_is_the_inner_product_of_branch_and_trunk_features_plus_the_bias():
    torch.manual_seed(0)
    net = deeponet(4, 2, width=6, depth=2).double()
    with torch.no_grad():
        net.bias.fill_(0.25)
    p, x = torch.randn(3, 4, dtype=torch.float64), torch.rand(5, 2, dtype=torch.float64)
    b, t = net.branch(p), net.trunk(x)
    want = torch.stack([torch.stack([torch.dot(b[i], t[j]) for j in range(5)]) for i in range(3)]) + 0.25
    torch.testing.assert_close(net(p, x), want)


def test_bad_shapes_and_sizes_raise():
    net = deeponet(4, 2, width=6, depth=1)
    with pytest.raises(ValueError, match=r"p \(M, features\) and x \(N, d\)"):
        net(torch.randn(4), torch.rand(5, 2))
    with pytest.raises(ValueError, match="as many feature rows as points"):
        net.pairwise(torch.randn(3, 4), torch.rand(5, 2))
    with pytest.raises(ValueError, match="width >= 1 and depth >= 1"):
        deeponet(4, 2, width=0)
