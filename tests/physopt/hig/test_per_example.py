"""physopt.hig.per_example: what every route checks before differentiating, and the errors it explains."""
import pytest
import torch
from torch import nn

from physopt.hig.dense import per_example_jacobian
from physopt.hig.per_example import (JacobianError, expanded_chunks, physics_output, repeat_examples, resolve_engine,
                                     slice_examples, trainable_parameters)


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


@pytest.mark.parametrize("engine", ["expand", "vmap"])
def test_physics_that_is_not_differentiable_gets_a_clear_error(setup, engine):
    net, inputs, target = setup()
    with pytest.raises(JacobianError, match="not differentiable|does not depend"):
        per_example_jacobian(net, inputs, lambda x, t: x.detach() * 2, target, engine=engine)
    with pytest.raises(JacobianError, match="numpy"):
        per_example_jacobian(net, inputs, lambda x, t: torch.from_numpy(x.numpy()), target, engine=engine)


def test_the_expand_engine_reads_row_k_of_each_example_off_copy_k():
    """One backward with cotangent e_k on copy k of every example: the rows of each example's own Jacobian, here
    of y_i = (x_i0 x_i1, x_i1^2, 3 x_i0 t_i) against the hand-written derivatives."""
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 4.0]], dtype=torch.float64)
    t = torch.tensor([2.0, -1.0, 7.0], dtype=torch.float64)

    def forward(x_rep, t_rep):
        x_rep = x_rep.clone().requires_grad_(True)
        y = torch.stack([x_rep[:, 0] * x_rep[:, 1], x_rep[:, 1] ** 2, 3 * x_rep[:, 0] * t_rep], -1)
        return y, [x_rep]

    chunks = list(expanded_chunks(forward, x, (t,), chunk_size=2, m=3))
    assert [(a, b) for a, b, _, _ in chunks] == [(0, 2), (2, 3)]
    rows = torch.cat([g for _, _, (g,), _ in chunks])
    expected = torch.stack([torch.stack([torch.stack([x1, x0]), torch.stack([0 * x0, 2 * x1]),
                                         torch.stack([3 * ti, 0 * ti])]) for (x0, x1), ti in zip(x, t)])
    torch.testing.assert_close(rows.view(3, 3, 2), expected, rtol=0, atol=0)
    torch.testing.assert_close(torch.cat([y for *_, y in chunks]), forward(x, t)[0].detach())


def test_repeat_examples_repeats_each_example_in_place_through_containers():
    t = torch.arange(3.0)
    rep = repeat_examples(({"a": t, "k": 3}, [t]), 2)
    assert rep[0]["k"] == 3
    torch.testing.assert_close(rep[0]["a"], torch.tensor([0.0, 0, 1, 1, 2, 2]))


def test_a_physics_that_drops_examples_of_a_larger_batch_is_named_for_the_expand_engine(setup):
    net, inputs, target = setup()
    with pytest.raises(JacobianError, match="(?s)batch of 20, expected \\(20, ...\\).*any batch size"):
        per_example_jacobian(net, inputs, lambda x, t: x[:1] * t[:1, :1], target, engine="expand")


def test_an_unknown_engine_is_named(setup, physics):
    net, inputs, target = setup()
    with pytest.raises(ValueError, match="engine.*expand"):
        per_example_jacobian(net, inputs, physics, target, engine="forward")


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_the_supplied_engine_pulls_the_physics_jacobian_back_through_the_network(setup, physics, physics_jacobian,
                                                                               dense_reference, chunk_size):
    """J_i = (dy_i/dx_i)(dx_i/dtheta) with dy/dx from the physics itself: the autograd Jacobian of the whole batch;
    ``auto`` takes it when a physics Jacobian is given."""
    net, inputs, target = setup()
    assert resolve_engine("auto", supplied=True) == "supplied" and resolve_engine("auto") == "expand"
    stacked = per_example_jacobian(net, inputs, physics, target, physics_jacobian=physics_jacobian,
                                   chunk_size=chunk_size)
    torch.testing.assert_close(stacked.J, dense_reference(net, inputs, target), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(stacked.y, physics(net(inputs), target))


def test_a_supplied_physics_jacobian_of_the_wrong_kind_is_named(setup, physics, physics_jacobian):
    net, inputs, target = setup()
    with pytest.raises(ValueError, match="jacobian='supplied' needs the physics' own Jacobian"):
        per_example_jacobian(net, inputs, physics, target, engine="supplied")
    with pytest.raises(JacobianError, match=r"J of shape \(5, 3, 2, 2\), expected \(5, 3, 4\)"):
        per_example_jacobian(net, inputs, physics, target,
                             physics_jacobian=lambda x, t: (physics(x, t), physics_jacobian(x, t)[1].view(5, 3, 2, 2)))
    with pytest.raises(JacobianError, match="y of shape \\(5, 2\\)"):
        per_example_jacobian(net, inputs, physics, target,
                             physics_jacobian=lambda x, t: (physics(x, t)[:, :2], physics_jacobian(x, t)[1][:, :2]))
    with pytest.raises(JacobianError, match="expected a pair"):
        per_example_jacobian(net, inputs, physics, target, physics_jacobian=lambda x, t: physics(x, t))


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
