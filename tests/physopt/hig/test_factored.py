"""physopt.hig.factored: per-layer factors of a Linear network reproduce J, J J^T and J^T w; where it applies."""
import pytest
import torch
from torch import nn

from physopt.hig.dense import build_gram
from physopt.hig.factored import build, factored_gram, factored_jt_vector, linear_factors


@pytest.mark.parametrize("engine", ["expand", "vmap", "supplied"])
def test_factored_form_reproduces_the_jacobian_its_gram_matrix_and_transpose_products(setup, physics,
                                                                                      physics_jacobian,
                                                                                      dense_reference, engine):
    net, inputs, target = setup()
    J = dense_reference(net, inputs, target)
    fac = linear_factors(net, inputs, physics, target, engine=engine, chunk_size=2,
                         physics_jacobian=physics_jacobian if engine == "supplied" else None)
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


def test_factored_route_gives_the_dense_gram_routes_direction(setup, physics):
    net, inputs, target = setup(b=4)
    g = torch.randn(12, dtype=torch.float64)
    plan = dict(chunk_size=None, memory_bound=None, extra_bytes=0)
    directions = []
    for route in (build(net, inputs, physics, (target,), **plan), build_gram(net, inputs, physics, (target,), **plan)):
        w, spectrum = route.coefficients(g, kappa=-0.5, beta=0.0, truncation=1e-6, dtype=torch.float64)
        assert spectrum.route == route.name
        directions.append(route.apply_transpose(w))
    assert directions[0].keys() == directions[1].keys()
    for name in directions[0]:
        torch.testing.assert_close(directions[0][name], directions[1][name])


def test_frozen_layers_are_left_out_and_the_rest_still_factors(setup, physics, dense_reference):
    net, inputs, target = setup()
    net[0].requires_grad_(False)
    fac = linear_factors(net, inputs, physics, target)
    assert [f.weight for f in fac.factors] == ["2.weight"]
    J = dense_reference(net, inputs, target)[:, -(8 * 4 + 4):]    # columns of the trainable layer only
    torch.testing.assert_close(factored_gram(fac.factors, 3), J @ J.T)


def test_factored_form_does_not_apply_to_convolutions_or_reused_layers():
    conv = nn.Sequential(nn.Unflatten(1, (1, 4)), nn.Conv1d(1, 1, 3, padding=1), nn.Flatten()).double()
    x = torch.randn(2, 4, dtype=torch.float64)
    assert linear_factors(conv, x, lambda v, t: v, x) is None
    assert build(conv, x, lambda v, t: v, (x,), chunk_size=None, memory_bound=None, extra_bytes=0) is None

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, v):
            return self.lin(torch.tanh(self.lin(v)))

    assert linear_factors(Twice().double(), x, lambda v, t: v, x) is None
