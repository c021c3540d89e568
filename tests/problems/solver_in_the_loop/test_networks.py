"""The correction network (problems/solver_in_the_loop/networks.py)."""
import pytest
import torch

from problems import ProblemError
from problems.solver_in_the_loop import Correction, ResidualConvNet


def test_the_authors_layout_has_12_convolutions_of_32_features():
    net = ResidualConvNet(4)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 12 and all(c.kernel_size == (5, 5) for c in convs)
    expected = (4 * 32 * 25 + 32) + 10 * (32 * 32 * 25 + 32) + (32 * 2 * 25 + 2)
    assert sum(p.numel() for p in net.parameters()) == expected == 261_154
    assert all(not c.bias.detach().any() for c in convs)
    assert net(torch.randn(3, 4, 16, 16)).shape == (3, 2, 16, 16)


def test_correction_scales_inputs_and_output_by_the_data_statistics():
    torch.manual_seed(0)
    sv, sf = torch.tensor([2.0, 0.5]), torch.tensor([0.1, 0.3])
    scaled, plain = Correction(sv, sf), Correction(torch.ones(2), torch.ones(2))
    plain.net.load_state_dict(scaled.net.state_dict())
    s, f = torch.randn(2, 2, 8, 8), torch.randn(2, 2, 8, 8)
    expected = plain(s, f) * sv.reshape(2, 1, 1)
    torch.testing.assert_close(scaled(s * sv.reshape(2, 1, 1), f * sf.reshape(2, 1, 1)), expected)


def test_bad_input_is_named():
    forced = Correction(torch.ones(2), torch.ones(2))
    with pytest.raises(ProblemError, match=r"\(batch, 2, n, n\)"):
        forced(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8))
    with pytest.raises(ProblemError, match="needs the force"):
        forced(torch.zeros(2, 2, 8, 8))
    unforced = Correction(torch.ones(2), condition=None)
    assert unforced(torch.zeros(1, 2, 8, 8)).shape == (1, 2, 8, 8)


def test_the_wake_layout_sees_the_cells_and_a_constant_re_channel():
    torch.manual_seed(0)
    net = Correction(torch.tensor([0.5, 0.5]), torch.tensor([2e6]), condition="scalar", padded=True, features=4,
                     blocks=1, kernel=3)
    state = torch.randn(2, 2, 9, 5)
    out = net(state, torch.tensor([1.6e5, 3.2e5]))
    assert out.shape == state.shape
    assert out[:, :, -1, :].abs().max() == 0 and out[:, :, :, -1].abs().max() == 0     # padded back with zeros
    changed = state.clone()
    changed[:, :, -1, :] = 99.0                                                         # the dropped faces
    torch.testing.assert_close(net(changed, torch.tensor([1.6e5, 3.2e5])), out)
    assert not torch.allclose(net(state, torch.tensor([5e6, 5e6])), out)
    with pytest.raises(ProblemError, match="one condition value per example"):
        net(state, torch.tensor([1.0]))
    with pytest.raises(ValueError, match="unknown condition kind"):
        Correction(torch.ones(2), torch.ones(1), condition="vector")


def test_a_zero_output_net_starts_as_the_source_solver_and_still_learns():
    torch.manual_seed(0)
    net = Correction(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 1.0]), features=4, blocks=1, kernel=3,
                     zero_output=True)
    state, force = torch.randn(2, 2, 8, 8), torch.randn(2, 2, 8, 8)
    assert net(state, force).abs().max() == 0                                   # C = 0: the uncorrected source
    net(state, force).sub(1).pow(2).sum().backward()
    assert net.net.out.weight.grad.abs().max() > 0                              # the last layer gets a gradient
    default = Correction(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 1.0]), features=4, blocks=1, kernel=3)
    assert default(state, force).abs().max() > 0                                # Glorot (Keras' default) otherwise
