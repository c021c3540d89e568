"""physopt.hig.per_example: what every route checks before differentiating, and the errors it explains."""
import pytest
import torch
from torch import nn

from physopt.hig.dense import per_example_jacobian
from physopt.hig.per_example import JacobianError, physics_output, slice_examples, trainable_parameters


def test_parameters_on_two_devices_are_refused(setup, physics):
    net, inputs, target = setup()
    net[2].to("meta")
    with pytest.raises(ValueError, match="several devices.*model.to"):
        per_example_jacobian(net, inputs, physics, target)


def test_a_model_without_trainable_weights_is_refused(setup):
    net, _, _ = setup()
    net.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        trainable_parameters(net)


def test_physics_that_is_not_differentiable_gets_a_clear_error(setup):
    net, inputs, target = setup()
    with pytest.raises(JacobianError, match="not differentiable|does not depend"):
        per_example_jacobian(net, inputs, lambda x, t: x.detach() * 2, target)
    with pytest.raises(JacobianError, match="numpy"):
        per_example_jacobian(net, inputs, lambda x, t: torch.from_numpy(x.numpy()), target)


def test_batchnorm_in_training_mode_is_explained():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    with pytest.raises(JacobianError, match="BatchNorm"):
        per_example_jacobian(net, x, lambda v, t: v, x)


def test_tensor_arguments_without_a_batch_dimension_are_refused(setup, physics):
    net, inputs, target = setup()
    with pytest.raises(ValueError, match="closure"):
        per_example_jacobian(net, inputs, physics, target[0])


def test_physics_must_keep_the_batch_dimension(setup):
    net, inputs, target = setup()
    with pytest.raises(ValueError, match="leading dimension is the batch size 5"):
        physics_output(net, inputs, lambda x, t: x.sum(), (target,))


def test_arguments_are_sliced_per_example_through_nested_containers():
    t = torch.arange(6.0).reshape(3, 2)
    args = ({"a": t, "k": 3}, [t, "name"])
    part = slice_examples(args, 1, 2)
    assert part[0]["k"] == 3 and part[1][1] == "name"
    torch.testing.assert_close(part[0]["a"], t[1:2])
    torch.testing.assert_close(part[1][0], t[1:2])
