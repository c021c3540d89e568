"""The half-inversion kernels against dense references (numpy SVD / pseudo-inverse in float64)."""
import numpy as np
import pytest
import torch

from physopt.hig.decompositions import (HalfInversionError, half_inverse, half_inverse_gram, half_inverse_svd,
                                        truncated_power)


def jacobian_with_spectrum(rows, cols, s, seed=0):
    """J = U diag(s) V^T with random orthonormal U, V: a Jacobian whose singular values are known."""
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(rows, len(s), generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(cols, len(s), generator=g, dtype=torch.float64))
    return (U * s) @ V.T, torch.randn(rows, generator=g, dtype=torch.float64)


def numpy_half_inverse(J, g, kappa, beta, tau):
    U, s, Vt = np.linalg.svd(J.numpy(), full_matrices=False)
    keep = s > tau * s.max()
    coeff = np.where(keep, np.abs(s) ** kappa, 0.0) * s.max() ** beta
    return torch.from_numpy(Vt.T @ (coeff * (U.T @ g.numpy())))


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("kappa", [-0.5, -1.0, 1.0])
def test_gram_and_svd_routes_give_the_same_update_with_truncation_active(kappa):
    s = torch.logspace(0, -9, 120, dtype=torch.float64)          # tau = 1e-6 drops a third of them
    J, g = jacobian_with_spectrum(120, 700, s)
    gram, sg = half_inverse_gram(J, g, kappa=kappa, truncation=1e-6)
    svd, ss = half_inverse_svd(J, g, kappa=kappa, truncation=1e-6)
    assert sg.kept == ss.kept == int((s > 1e-6).sum()) < 120
    assert rel(gram, svd) < 1e-4
    assert rel(svd, numpy_half_inverse(J, g, kappa, 0.0, 1e-6)) < 1e-8


def test_gauss_newton_is_the_truncated_pseudo_inverse_and_kappa_one_is_the_gradient():
    J, g = jacobian_with_spectrum(30, 80, torch.logspace(0, -3, 30, dtype=torch.float64), seed=1)
    gn, _ = half_inverse(J, g, kappa=-1.0, truncation=0.0)
    torch.testing.assert_close(gn, torch.from_numpy(np.linalg.pinv(J.numpy()) @ g.numpy()))
    gd, _ = half_inverse(J, g, kappa=1.0, truncation=0.0)
    torch.testing.assert_close(gd, J.T @ g)


def test_beta_rescales_by_the_largest_singular_value():
    J, g = jacobian_with_spectrum(20, 50, torch.linspace(5.0, 0.1, 20, dtype=torch.float64), seed=2)
    plain, spec = half_inverse(J, g, kappa=-0.5, beta=0.0)
    scaled, _ = half_inverse(J, g, kappa=-0.5, beta=-0.5)
    torch.testing.assert_close(scaled, plain * spec.singular_values[0] ** -0.5)
    torch.testing.assert_close(scaled, numpy_half_inverse(J, g, -0.5, -0.5, 1e-6))


def test_truncated_directions_get_no_update():
    # rank-5 J: the update lies in the row space of J, whatever g is
    J, g = jacobian_with_spectrum(12, 40, torch.tensor([3.0, 2, 1, 0.5, 0.1], dtype=torch.float64), seed=3)
    upd, spec = half_inverse(J, g, route="gram")
    assert spec.kept == 5
    row_space = torch.linalg.svd(J, full_matrices=False)[2][:5]
    torch.testing.assert_close(row_space.T @ (row_space @ upd), upd)
    assert truncated_power(torch.tensor([1.0, 1e-7]), -0.5, 1e-6).tolist() == [1.0, 0.0]


def test_auto_route_picks_gram_for_wide_and_svd_for_tall_jacobians():
    wide, g = jacobian_with_spectrum(10, 30, torch.ones(10, dtype=torch.float64))
    tall, g2 = jacobian_with_spectrum(30, 10, torch.ones(10, dtype=torch.float64))
    assert half_inverse(wide, g)[1].route == "gram"
    assert half_inverse(tall, g2)[1].route == "svd"
    with pytest.raises(ValueError, match="Invalid route"):
        half_inverse(wide, g, route="qr")
    with pytest.raises(ValueError, match="shape"):
        half_inverse(wide, g[:-1])


def test_non_finite_jacobian_is_refused():
    J, g = jacobian_with_spectrum(5, 9, torch.ones(5, dtype=torch.float64))
    J[0, 0] = float("nan")
    for route in ("gram", "svd"):
        with pytest.raises(HalfInversionError, match="NaN"):
            half_inverse(J, g, route=route)


def test_a_failed_low_precision_decomposition_is_retried_in_float64(monkeypatch):
    J, g = jacobian_with_spectrum(8, 20, torch.linspace(1, 0.1, 8, dtype=torch.float64))
    expected, _ = half_inverse(J, g)
    real_eigh = torch.linalg.eigh

    def eigh_failing_in_float32(a, *args, **kw):
        if a.dtype == torch.float32:
            raise torch.linalg.LinAlgError("simulated non-convergence")
        return real_eigh(a, *args, **kw)

    monkeypatch.setattr(torch.linalg, "eigh", eigh_failing_in_float32)
    got, spec = half_inverse(J.float(), g.float(), route="gram", dtype=torch.float32)
    assert spec.dtype == torch.float64
    assert rel(got, expected) < 1e-5

    monkeypatch.setattr(torch.linalg, "eigh", lambda a, *x, **k: (a.diagonal() * float("nan"), a))
    with pytest.raises(HalfInversionError, match="float32, torch.float64"):
        half_inverse(J.float(), g.float(), route="gram", dtype=torch.float32)


def test_why_the_decomposition_defaults_to_float64():
    """J J^T squares the condition number: in float32 the Gram route loses singular values below ~sqrt(eps) max(S),
    which HIG's tau = 1e-6 still inverts, so the float32 update is dominated by noise; float64 is not."""
    J, g = jacobian_with_spectrum(256, 1500, torch.logspace(0, -9, 256, dtype=torch.float64), seed=4)
    ref, _ = half_inverse_svd(J, g, truncation=1e-6)
    in64, _ = half_inverse_gram(J.float(), g.float(), truncation=1e-6, dtype=torch.float64)
    in32, _ = half_inverse_gram(J.float(), g.float(), truncation=1e-6, dtype=torch.float32)
    exact32, _ = half_inverse_svd(J.float().double(), g.float().double(), truncation=1e-6)
    assert rel(in64.double(), exact32) < 1e-4       # float64 decomposition of the float32 Jacobian: exact
    assert rel(in32.double(), ref) > 0.3            # float32 decomposition: mostly noise


@pytest.mark.parametrize("kwargs, match", [({"kappa": float("nan")}, "Invalid kappa"), ({"beta": float("inf")},
                                           "Invalid beta"), ({"truncation": 1.0}, "Invalid truncation")])
def test_non_finite_exponents_and_a_truncation_that_drops_everything_are_refused(kwargs, match):
    J, g = jacobian_with_spectrum(5, 9, torch.ones(5, dtype=torch.float64))
    with pytest.raises(ValueError, match=match):
        half_inverse(J, g, **kwargs)
