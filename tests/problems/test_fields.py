"""fields: problems whose unknown x is a resolution^2 scalar field, with the SIP paper's U-net as default network."""
import torch

from problems import HeatProblem, PoissonProblem
from problems.fields import FieldConfig, FieldProblem
from problems.networks import FieldNet, UNet


class Identity(FieldProblem):
    name = "identity-field"
    description = "P(x) = x on a grid"
    Config = FieldConfig

    def forward(self, x, batch):
        return x


class MeanPreserving(Identity):
    preserve_mean = True


def test_config_defaults_are_the_sip_papers_grid_and_unet():
    c = FieldConfig()
    assert (c.resolution, c.dx, c.unet_levels, c.unet_filters) == (64, 1.0, 4, 16)


def test_x_is_a_square_grid_of_the_configured_resolution():
    assert Identity(resolution=8).x_shape == (8, 8)
    assert PoissonProblem(resolution=16).x_shape == (16, 16)


def test_default_network_is_the_configured_unet_on_the_problems_device_and_dtype():
    p = Identity(resolution=8, unet_levels=2, unet_filters=4, dtype=torch.float64)
    torch.manual_seed(0)
    net = p.default_network()
    reference = UNet(1, 1, 2, 4)            # built independently: the same layers, the same shapes
    assert isinstance(net, FieldNet) and not net.preserve_mean
    assert {k: v.shape for k, v in net.net.state_dict().items()} == {k: v.shape for k, v in
                                                                     reference.state_dict().items()}
    assert all(w.dtype == torch.float64 and w.device.type == "cpu" for w in net.parameters())
    y = torch.randn(3, 8, 8, dtype=torch.float64)
    assert net(y).shape == (3, 8, 8)


def test_preserve_mean_shifts_the_output_to_the_inputs_mean():
    assert MeanPreserving.preserve_mean and HeatProblem.preserve_mean and not PoissonProblem.preserve_mean
    p = MeanPreserving(resolution=8, unet_levels=2, unet_filters=4, dtype=torch.float64)
    torch.manual_seed(0)
    net = p.default_network()
    assert net.preserve_mean
    y = torch.randn(3, 8, 8, dtype=torch.float64) + 5.0
    torch.testing.assert_close(net(y).mean(dim=(-2, -1)), y.mean(dim=(-2, -1)))

