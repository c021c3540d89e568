"""physopt.hig.dense: the stacked per-example Jacobian against plain autograd, and the gram/svd routes over it."""
import pytest
import torch
from torch import nn

from physopt.hig.dense import build_gram, build_svd, per_example_jacobian

ENGINES = ["expand", "vmap"]


@pytest.mark.parametrize("engine", ENGINES)
def test_stacked_jacobian_matches_dense_autograd_example_major(setup, physics, dense_reference, engine):
    net, inputs, target = setup()
    st = per_example_jacobian(net, inputs, physics, target, engine=engine)
    torch.testing.assert_close(st.J, dense_reference(net, inputs, target), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(st.y, physics(net(inputs), target))
    assert st.chunk_size == 5 and st.J.shape == (15, sum(p.numel() for p in net.parameters()))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_convolutional_network_with_image_outputs_gets_the_autograd_jacobian(engine, dense_reference):
    """Not only nn.Linear: a conv net whose output x is (b, 1, 4) feeds a physics with a per-example argument."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Unflatten(1, (1, 6)), nn.Conv1d(1, 2, 3), nn.Tanh(), nn.Conv1d(2, 1, 1)).double()
    inputs, scale = torch.randn(4, 6, dtype=torch.float64), torch.rand(4, dtype=torch.float64) + 0.5

    def physics(x, s):                                   # (b, 1, 4) -> (b, 2), nonlinear
        return torch.stack([torch.sin(x).sum((1, 2)) * s, (x ** 2).mean((1, 2))], -1)

    st = per_example_jacobian(net, inputs, physics, scale, engine=engine, chunk_size=3)
    torch.testing.assert_close(st.J, dense_reference(net, inputs, scale, physics), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("engine", ENGINES)
def test_chunks_change_nothing_but_the_chunk_size(setup, physics, engine):
    net, inputs, target = setup(b=7)
    full = per_example_jacobian(net, inputs, physics, target, engine=engine).J
    for chunk in (1, 3):
        st = per_example_jacobian(net, inputs, physics, target, chunk_size=chunk, engine=engine)
        assert st.chunk_size == chunk
        torch.testing.assert_close(st.J, full)


def test_unflatten_splits_a_weight_vector_per_parameter_in_named_order(setup, physics):
    net, inputs, target = setup()
    st = per_example_jacobian(net, inputs, physics, target)
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    parts = st.unflatten(flat)
    assert list(parts) == [n for n, _ in net.named_parameters()]
    for name, p in net.named_parameters():
        torch.testing.assert_close(parts[name], p.detach())


def test_gram_and_svd_routes_apply_the_half_inverse_of_the_dense_svd(setup, physics, dense_reference):
    """apply_transpose(coefficients(g)) = max(S)^beta V S^kappa U^T g, with U, S, V from a dense SVD of J."""
    net, inputs, target = setup(b=2)                       # 6 rows x 68 weights: wide
    J = dense_reference(net, inputs, target)
    g = torch.randn(J.shape[0], dtype=torch.float64)
    U, s, Vh = torch.linalg.svd(J, full_matrices=False)
    for kappa, beta in ((-0.5, 0.0), (-1.0, 0.0), (-0.5, -0.5)):
        expected = s[0] ** beta * (Vh.T @ (s ** kappa * (U.T @ g)))
        for build in (build_gram, build_svd):
            route = build(net, inputs, physics, (target,), chunk_size=None, memory_bound=None, extra_bytes=0)
            w, spectrum = route.coefficients(g, kappa=kappa, beta=beta, truncation=0.0, dtype=torch.float64)
            got = torch.cat([v.reshape(-1) for v in route.apply_transpose(w).values()])
            assert spectrum.route == route.name and spectrum.kept == 6
            torch.testing.assert_close(got, expected)
