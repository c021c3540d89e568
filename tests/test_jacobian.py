"""Per-example Jacobians: against a dense autograd Jacobian, chunked, factored, memory-bounded, with clear errors."""
import pytest
import torch
from torch import nn
from torch.func import functional_call

from physopt.jacobian import (JacobianError, MemoryBoundError, linear_factors, per_example_jacobian)
from physopt.linalg import factored_gram, factored_jt_vector


def physics(x, target):
    """A small nonlinear 'solver' with very different scales per output."""
    return torch.stack([10 * torch.sin(x[:, 0]), x[:, 1] * x[:, 2], 0.01 * x[:, 3]], dim=-1)


def setup(seed=0, b=5):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 4)).double()
    inputs = torch.randn(b, 3, dtype=torch.float64)
    target = torch.randn(b, 3, dtype=torch.float64)
    return net, inputs, target


def dense_reference(net, inputs, target):
    """d(all outputs)/d(all weights) of the whole batch with torch.autograd.functional.jacobian: (b*|y|, |theta|)."""
    names = [n for n, _ in net.named_parameters()]

    def y_of(*ps):
        return physics(functional_call(net, dict(zip(names, ps)), (inputs,)), target).reshape(-1)

    blocks = torch.autograd.functional.jacobian(y_of, tuple(net.parameters()))
    return torch.cat([j.reshape(j.shape[0], -1) for j in blocks], dim=1)


def test_stacked_jacobian_matches_dense_autograd_example_major():
    net, inputs, target = setup()
    st = per_example_jacobian(net, inputs, physics, target)
    torch.testing.assert_close(st.J, dense_reference(net, inputs, target))
    torch.testing.assert_close(st.y, physics(net(inputs), target))
    assert st.chunk_size == 5 and st.J.shape == (15, sum(p.numel() for p in net.parameters()))


def test_chunks_change_nothing_but_the_chunk_size():
    net, inputs, target = setup(b=7)
    full = per_example_jacobian(net, inputs, physics, target).J
    for chunk in (1, 3):
        st = per_example_jacobian(net, inputs, physics, target, chunk_size=chunk)
        assert st.chunk_size == chunk
        torch.testing.assert_close(st.J, full)


def test_memory_bound_shrinks_the_chunk_and_refuses_what_cannot_fit():
    net, inputs, target = setup(b=64)
    n = sum(p.numel() for p in net.parameters())
    j_bytes = 64 * 3 * n * 8
    roomy = per_example_jacobian(net, inputs, physics, target, memory_bound=2 ** 30)
    tight = per_example_jacobian(net, inputs, physics, target, memory_bound=j_bytes + 40_000)
    assert roomy.chunk_size == 64 and 1 <= tight.chunk_size < 64
    torch.testing.assert_close(tight.J, roomy.J)
    with pytest.raises(MemoryBoundError, match="lower the batch size"):
        per_example_jacobian(net, inputs, physics, target, memory_bound=j_bytes // 2)


def test_factored_form_reproduces_the_jacobian_its_gram_matrix_and_transpose_products():
    net, inputs, target = setup()
    J = dense_reference(net, inputs, target)
    fac = linear_factors(net, inputs, physics, target)
    assert fac is not None and len(fac.factors) == 2
    # dy_i/dW = D_i (x) a_i and dy_i/db = D_i, rebuilt row by row
    m = 3
    rebuilt = []
    for f in fac.factors:
        a = f.A.repeat_interleave(m, 0)                                   # (b*m, in)
        rebuilt += [(f.D[:, :, None] * a[:, None, :]).reshape(len(a), -1), f.D]
    torch.testing.assert_close(torch.cat(rebuilt, 1), J)
    torch.testing.assert_close(factored_gram(fac.factors, m), J @ J.T)
    w = torch.randn(J.shape[0], dtype=torch.float64)
    flat = torch.cat([v.reshape(-1) for v in factored_jt_vector(fac.factors, w, m).values()])
    torch.testing.assert_close(flat, J.T @ w)


def test_factored_form_does_not_apply_to_convolutions_or_reused_layers():
    conv = nn.Sequential(nn.Unflatten(1, (1, 4)), nn.Conv1d(1, 1, 3, padding=1), nn.Flatten()).double()
    x = torch.randn(2, 4, dtype=torch.float64)
    assert linear_factors(conv, x, lambda v, t: v, x) is None

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, v):
            return self.lin(torch.tanh(self.lin(v)))

    assert linear_factors(Twice().double(), x, lambda v, t: v, x) is None


def test_parameters_on_two_devices_are_refused():
    net, inputs, target = setup()
    net[2].to("meta")
    with pytest.raises(ValueError, match="several devices.*model.to"):
        per_example_jacobian(net, inputs, physics, target)


def test_physics_that_is_not_differentiable_gets_a_clear_error():
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


def test_tensor_arguments_without_a_batch_dimension_are_refused():
    net, inputs, target = setup()
    with pytest.raises(ValueError, match="closure"):
        per_example_jacobian(net, inputs, physics, target[0])
