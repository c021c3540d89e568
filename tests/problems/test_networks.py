"""Default networks: sizes from the papers, shapes, and the mean-preserving field adapter."""
import pytest
import torch

from problems.networks import FieldNet, UNet, mlp


def n_params(net):
    return sum(p.numel() for p in net.parameters())


def test_unet_has_the_papers_size_and_keeps_the_shape():
    net = UNet(1, 1, levels=4, filters=16)
    assert 36_000 <= n_params(net) <= 40_000  # SIP paper: about 38k
    assert net(torch.randn(2, 1, 64, 64)).shape == (2, 1, 64, 64)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.randn(2, 1, 60, 64))


def test_field_net_preserves_the_input_mean():
    net = FieldNet(UNet(1, 1, levels=2, filters=4), preserve_mean=True)
    y = torch.randn(3, 16, 16) + 5.0
    x = net(y)
    assert x.shape == y.shape
    torch.testing.assert_close(x.mean(dim=(-2, -1)), y.mean(dim=(-2, -1)), atol=1e-5, rtol=0)


def test_mlp_sizes_and_bad_activation():
    net = mlp([1, 16, 64, 16, 1], "sigmoid")
    assert n_params(net) == (16 + 16) + (16 * 64 + 64) + (64 * 16 + 16) + (16 + 1)
    with pytest.raises(ValueError, match="unknown activation"):
        mlp([2, 3], "swishy")
