"""The paper's 1-D residual U-net: its lengths per level, padding and upsampling as the authors' layers define them,
the OP per time span and the CFE's inputs, and clear errors for wrong shapes."""
import pytest
import torch

from problems import ProblemError
from problems.pde_control.networks import (ControlForceEstimator, ObservationPredictors, ResidualBlock1d,
                                           ResidualUNet1d, upsample_channels_last)
from problems.pde_control.setup import ControlSetup


def test_the_encoder_halves_63_cells_down_to_1_and_the_output_has_the_input_length():
    net = ResidualUNet1d(2)
    lengths = []
    for blocks in net.down_blocks:
        blocks.register_forward_hook(lambda m, i, o: lengths.append(o.shape[1]))     # channels-last (B, L, C)
    out = net(torch.randn(3, 2, 32))
    assert lengths == [31, 15, 7, 3, 1] and out.shape == (3, 32)
    assert [c.out_channels for c in net.down] == [4, 8, 16, 16, 16]
    assert len(net.bottom) == 3 and all(len(b) == 2 for b in net.up_blocks) and net.out.out_channels == 1


def test_the_output_depends_only_on_the_input_and_is_not_trivially_constant():
    torch.manual_seed(0)
    net = ResidualUNet1d(2)
    x = torch.randn(4, 2, 32)
    out = net(x)
    torch.testing.assert_close(net(x[1:2]), out[1:2])             # no coupling across the batch
    assert out.std() > 1e-3


def test_a_residual_block_is_the_identity_plus_a_branch_with_edge_padding():
    block = ResidualBlock1d(1, kernel=3)
    with torch.no_grad():
        block.conv1.weight.copy_(torch.tensor([[[1.0, 0.0, 0.0]]]))  # reads the left neighbour
        block.conv1.bias.zero_()
        block.conv2.weight.copy_(torch.tensor([[[0.0, 1.0, 0.0]]]))
        block.conv2.bias.zero_()
    x = torch.tensor([[1.0, 2.0, 3.0]])[..., None]                # channels-last (B, L, C)
    # left neighbour with the edge repeated: [1, 1, 2]; y = lrelu(x + [1, 1, 2])
    torch.testing.assert_close(block(x), torch.tensor([[2.0, 3.0, 5.0]])[..., None])


def reference_forward(net: ResidualUNet1d, x: torch.Tensor) -> torch.Tensor:
    """The same U-net written with torch's own layers, channels-first: F.conv1d, F.pad(replicate), F.interpolate."""
    F = torch.nn.functional

    def conv(c, y, pad=(0, 0)):
        return F.conv1d(F.pad(y, pad, mode="replicate") if any(pad) else y, c.weight, c.bias, stride=c.stride)

    def block(b, y):
        h = F.leaky_relu(conv(b.conv1, y, b.pad), 0.2)
        return F.leaky_relu(y + conv(b.conv2, h, b.pad), 0.2)

    y = F.pad(x, (0, 31))
    skips = [y]
    for c, blocks in zip(net.down, net.down_blocks):
        y = F.relu(conv(c, y))
        for b in blocks:
            y = block(b, y)
        skips.append(y)
    y = skips.pop()
    for b in net.bottom:
        y = block(b, y)
    for i, skip in enumerate(reversed(skips)):
        y = F.interpolate(y, scale_factor=2, mode="linear", align_corners=False)
        y = torch.cat([y, skip[..., :y.shape[-1]]], 1)
        if i < len(net.up):
            y = F.relu(conv(net.up[i], y, (0, 1)))
            for b in net.up_blocks[i]:
                y = block(b, y)
        else:
            y = conv(net.out, y, (0, 1))
    return y[:, 0]


@pytest.mark.parametrize("in_channels", [2, 3])
def test_the_channels_last_forward_equals_torch_conv1d_layers(in_channels):
    torch.manual_seed(1)
    net = ResidualUNet1d(in_channels).double()
    x = torch.randn(5, in_channels, 32, dtype=torch.float64)
    torch.testing.assert_close(net(x), reference_forward(net, x), rtol=1e-12, atol=1e-12)
    x = x.requires_grad_()
    g1, = torch.autograd.grad(net(x).pow(2).sum(), x)
    g2, = torch.autograd.grad(reference_forward(net, x).pow(2).sum(), x)
    torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)


def test_decoder_upsampling_matches_the_authors_linear_2x_rule():
    # the authors' upsample2x: out[2i] = 0.25 t[i-1] + 0.75 t[i], out[2i+1] = 0.75 t[i] + 0.25 t[i+1], edges repeated
    t = torch.tensor([[[1.0, 5.0, 2.0]]])
    padded = torch.cat([t[..., :1], t, t[..., -1:]], -1)[0, 0]
    expected = []
    for i in range(3):
        expected += [0.25 * padded[i] + 0.75 * padded[i + 1], 0.75 * padded[i + 1] + 0.25 * padded[i + 2]]
    out = upsample_channels_last(t.transpose(1, 2))
    torch.testing.assert_close(out[0, :, 0], torch.stack(expected))


def test_one_observation_predictor_per_span_and_the_cfe_reads_the_clock():
    ops = ObservationPredictors(ControlSetup(steps=8))
    assert sorted(int(k) for k in ops.nets) == [2, 4, 8]
    a, b = torch.randn(2, 32), torch.randn(2, 32)
    assert not torch.allclose(ops(2, a, b), ops(4, a, b))
    with pytest.raises(ProblemError, match=r"no observation predictor for a span of 16.*\[2, 4, 8\]"):
        ops(16, a, b)
    cfe = ControlForceEstimator()
    assert not torch.allclose(cfe(a, b, 0), cfe(a, b, 5))


def test_wrong_shapes_are_refused_with_the_expected_shape():
    with pytest.raises(ProblemError, match=r"\(batch, 2, N\) with N divisible by 32"):
        ResidualUNet1d(2)(torch.randn(3, 2, 30))
    with pytest.raises(ProblemError, match="32 cells"):
        ObservationPredictors()(2, torch.randn(3, 30), torch.randn(3, 30))
