"""The staggered incompressible solver (problems/solvers/staggered.py) against analytic solutions, finite differences
and PhiFlow's operators."""
import math
import warnings

import pytest
import torch
from torch.autograd import gradcheck

from problems.solvers import SimulationError
from problems.solvers import staggered as S

F64 = torch.float64


def random_velocity(batch=2, n=16, dx=2.0, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return S.project(torch.randn(batch, 2, n, n, generator=g, dtype=F64), dx).to(dtype)


def taylor_green(n):
    """v = (sin x cos y, -cos x sin y) on the faces of an n x n grid over [0, 2 pi]^2; div v = 0 exactly."""
    dx = 2 * math.pi / n
    (xy, xx), (yy, yx) = S.face_positions((n, n), dx, dtype=F64)
    return torch.stack((torch.sin(xx) * torch.cos(xy), -torch.cos(yx) * torch.sin(yy)))[None], dx


# ---- pressure projection ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,tol", [(F64, 1e-12), (torch.float32, 1e-5)])
def test_projection_leaves_divergence_at_round_off(dtype, tol):
    v = torch.randn(3, 2, 32, 32, generator=torch.Generator().manual_seed(1), dtype=F64).to(dtype)
    before = S.divergence(v, 2.0).abs().max()
    after = S.divergence(S.project(v, 2.0), 2.0).abs().max()
    assert before > 1 and after < tol * before


def test_projection_is_an_orthogonal_projector_that_keeps_the_mean_flow():
    g = torch.Generator().manual_seed(2)
    u, w = (torch.randn(2, 2, 16, 16, generator=g, dtype=F64) for _ in range(2))
    pu, pw = S.project(u), S.project(w)
    torch.testing.assert_close(S.project(pu), pu, atol=1e-12, rtol=0)
    torch.testing.assert_close((pu * w).sum(), (u * pw).sum(), atol=1e-10, rtol=1e-12)   # symmetric
    torch.testing.assert_close(pu.mean(dim=(-2, -1)), u.mean(dim=(-2, -1)), atol=1e-12, rtol=0)


# ---- Taylor-Green vortex ---------------------------------------------------------------------------------------

def decayed_amplitude(n, dt, nu, t_end=2.0):
    v, dx = taylor_green(n)
    w = v
    for _ in range(round(t_end / dt)):
        w, _ = S.fluid_step(w, None, dt, dx, viscosity=nu, preserve_energy=False)
    return (S.kinetic_energy(w) / S.kinetic_energy(v)).sqrt().item()


def test_taylor_green_vortex_decays_at_the_analytic_rate():
    """Amplitude exp(-2 nu t) within 1.5% at dt = 0.02; the remaining error is the first-order (in dt) splitting of
    self-advection and projection, so it halves with dt."""
    nu, t_end = 0.05, 2.0
    exact = math.exp(-2 * nu * t_end)
    fine = decayed_amplitude(32, 0.02, nu) / exact - 1
    coarse = decayed_amplitude(32, 0.04, nu) / exact - 1
    assert abs(fine) < 0.015
    assert 0.4 < fine / coarse < 0.6


def test_taylor_green_keeps_its_shape_and_stays_divergence_free():
    v, dx = taylor_green(32)
    w, _ = S.fluid_step(v, None, 0.05, dx, viscosity=0.1, preserve_energy=False)
    shape = (w * v).sum() / (w.norm() * v.norm())
    assert shape > 1 - 1e-4 and S.divergence(w, dx).abs().max() < 1e-12


def test_energy_rescale_keeps_the_kinetic_energy():
    v = random_velocity(n=16)
    w, _ = S.fluid_step(v, None, 0.5, 2.0)
    torch.testing.assert_close(S.kinetic_energy(w), S.kinetic_energy(v), atol=0, rtol=1e-12)
    assert torch.equal(S.rescale_energy(torch.zeros_like(v), torch.ones(2, dtype=F64)), torch.zeros_like(v))


# ---- advection -------------------------------------------------------------------------------------------------

def shifted_wave(n, shift_y=0.0, shift_x=0.0):
    c = S.cell_centres((n, n), 1.0, dtype=F64)
    return torch.sin(2 * math.pi * (c[1] - shift_x) / n) * torch.cos(4 * math.pi * (c[0] - shift_y) / n)


def uniform_flow(n, vx, vy):
    v = torch.zeros(1, 2, n, n, dtype=F64)
    v[:, 0], v[:, 1] = vx, vy
    return v


def test_advection_by_a_whole_number_of_cells_is_an_exact_shift():
    n = 32
    f = shifted_wave(n)[None]
    for scheme in ("semi_lagrangian", "maccormack"):
        g = f
        for _ in range(5):
            g = S.advect_centred(g, uniform_flow(n, 2.0, -1.0), 1.0, 1.0, scheme)
        torch.testing.assert_close(g[0], shifted_wave(n, -5.0, 10.0), atol=1e-12, rtol=0)


def test_maccormack_matches_the_exact_shift_of_a_smooth_field_better_than_semi_lagrangian():
    n, steps = 64, 10
    errors = {}
    for scheme in ("semi_lagrangian", "maccormack"):
        g = shifted_wave(n)[None]
        for _ in range(steps):
            g = S.advect_centred(g, uniform_flow(n, 0.7, -0.3), 1.0, 1.0, scheme)
        errors[scheme] = (g[0] - shifted_wave(n, -0.3 * steps, 0.7 * steps)).abs().max().item()
    assert errors["maccormack"] < 1e-2
    assert errors["maccormack"] < errors["semi_lagrangian"] / 5


def test_maccormack_limiter_creates_no_new_extrema():
    v = random_velocity(n=32, seed=4)
    marker = (torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(5), dtype=F64) > 0.7).to(F64)
    out = S.advect_centred(marker, 3 * v, 0.5, 2.0)
    assert out.min() >= 0 and out.max() <= 1


# ---- marker mass -----------------------------------------------------------------------------------------------

def test_marker_mass_is_conserved():
    v = 5 * random_velocity(n=32, seed=6)
    marker = (torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(7), dtype=F64) > 0.8).to(F64)
    m = marker
    for _ in range(8):
        v, m = S.fluid_step(v, m, 0.25, 2.0, conserve_mass=True)
    torch.testing.assert_close(m.sum(dim=(-2, -1)), marker.sum(dim=(-2, -1)), atol=0, rtol=1e-12)
    # uniform flow: bilinear weights sum to one, so semi-Lagrangian advection conserves mass by itself
    shifted = S.advect_centred(marker, uniform_flow(32, 0.37, -1.21), 1.0, 1.0, "semi_lagrangian")
    torch.testing.assert_close(shifted.sum(dim=(-2, -1)), marker.sum(dim=(-2, -1)), atol=0, rtol=1e-12)


def test_centre_of_mass_of_a_single_cell_is_its_centre():
    m = torch.zeros(1, 8, 8, dtype=F64)
    m[0, 2, 5] = 3.0
    torch.testing.assert_close(S.centre_of_mass(m, 2.0), torch.tensor([[5.0, 11.0]], dtype=F64))


# ---- derivatives -----------------------------------------------------------------------------------------------

def test_gradients_match_finite_differences_in_float64():
    v = random_velocity(batch=1, n=8, dx=2.0, seed=8).requires_grad_()
    marker = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(9), dtype=F64).requires_grad_()

    def two_steps(v, m):
        for _ in range(2):
            v, m = S.fluid_step(S.project(v, 2.0), m, 0.25, 2.0)
        return v, m

    assert gradcheck(two_steps, (v, marker), eps=1e-6, atol=1e-6)


def test_step_works_under_vmap_and_jacrev():
    v = random_velocity(batch=3, n=8, seed=10)
    m = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(11), dtype=F64)

    def marker_after(vi, mi):
        return S.fluid_step(vi, mi, 0.25, 2.0)[1]

    torch.testing.assert_close(torch.func.vmap(marker_after)(v, m), marker_after(v, m))
    jac = torch.func.vmap(torch.func.jacrev(marker_after))(v, m)
    reference = torch.autograd.functional.jacobian(lambda x: marker_after(x, m[:1]), v[:1])
    torch.testing.assert_close(jac[0], reference[0, :, :, 0], atol=1e-12, rtol=0)


# ---- bad input -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(16, 16), (2, 3, 16, 16)])
def test_velocity_of_the_wrong_shape_is_rejected(shape):
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, H, W\)"):
        S.check_velocity(torch.zeros(shape))


def test_velocity_on_another_grid_is_rejected():
    with pytest.raises(ValueError, match="resolution=8"):
        S.check_velocity(torch.zeros(1, 2, 8, 8), (16, 16))


def test_a_time_step_that_breaks_the_cfl_bound_is_rejected_or_warned():
    v = uniform_flow(16, 1.0, 0.0)
    with pytest.raises(SimulationError, match="half the domain"):
        S.check_cfl(v, dt=8.0, dx=1.0)
    with pytest.warns(S.CFLWarning, match="smaller dt"):
        assert S.check_cfl(v, dt=5.0, dx=1.0, max_cfl=4.0) == pytest.approx(5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert S.check_cfl(v, dt=0.5, dx=1.0) == pytest.approx(0.5)
    for dt in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="dt must be"):
            S.check_cfl(v, dt=dt, dx=1.0)
    with pytest.raises(ValueError, match="NaN"):
        S.check_cfl(torch.full((1, 2, 4, 4), float("nan")), dt=0.1, dx=1.0)


def test_unknown_advection_scheme_is_named():
    with pytest.raises(ValueError, match="maccormack"):
        S.advect_centred(torch.zeros(1, 4, 4), torch.zeros(1, 2, 4, 4), 0.1, 1.0, scheme="rk4")


def test_solver_runs_on_the_device_in_float32(device):
    v = random_velocity(n=16, dtype=torch.float32).to(device)
    m = torch.rand(2, 16, 16, device=device)
    w, out = S.fluid_step(v, m, 0.25, 2.0)
    assert w.device.type == device.type and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert S.divergence(w, 2.0).abs().max() < 1e-4 * v.abs().max()


# ---- PhiFlow as an independent reference -----------------------------------------------------------------------

def test_divergence_and_projection_match_phiflow(phiflow):
    dx = 2.0
    v = torch.randn(2, 2, 16, 16, generator=torch.Generator().manual_seed(12), dtype=F64)
    div = phiflow.flow.field.divergence(phiflow.staggered(v, dx)).values.native("b,y,x")
    torch.testing.assert_close(div, S.divergence(v, dx), atol=1e-13, rtol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        projected, _ = phiflow.flow.fluid.make_incompressible(
            phiflow.staggered(v, dx), solve=phiflow.flow.Solve("CG", 1e-12, 1e-12, max_iterations=5000))
    torch.testing.assert_close(phiflow.values(projected), S.project(v, dx), atol=1e-10, rtol=0)


def test_advection_matches_phiflow(phiflow):
    """Semi-Lagrangian (marker and velocity) and MacCormack (marker) agree with PhiFlow to round-off. PhiFlow 3.4's
    MacCormack limiter on staggered grids reads its stencil at centred offsets (its Field.closest_values returns
    before the staggered branch), so staggered MacCormack is compared without that limiter difference here."""
    dx, dt = 2.0, 0.25
    v = 3 * random_velocity(n=16, seed=13)
    m = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(14), dtype=F64)
    pv, pm = phiflow.staggered(v, dx), phiflow.centred(m, dx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sl_m = phiflow.flow.advect.semi_lagrangian(pm, pv, dt).values.native("b,y,x")
        mc_m = phiflow.flow.advect.mac_cormack(pm, pv, dt).values.native("b,y,x")
        sl_v = phiflow.values(phiflow.flow.advect.semi_lagrangian(pv, pv, dt))
    torch.testing.assert_close(sl_m, S.advect_centred(m, v, dt, dx, "semi_lagrangian"), atol=1e-12, rtol=0)
    torch.testing.assert_close(mc_m, S.advect_centred(m, v, dt, dx), atol=1e-12, rtol=0)
    torch.testing.assert_close(sl_v, S.advect_velocity(v, dt, dx, "semi_lagrangian"), atol=1e-12, rtol=0)
