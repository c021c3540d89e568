"""The forced 2-D Burgers solver (problems/solvers/forced_burgers.py) against PhiFlow's operators, an analytic decaying
shear flow, the spectrum law of its random initial states, gradcheck and vmap."""
import math
import warnings

import pytest
import torch
from torch.autograd import gradcheck

from problems.solvers import SimulationError
from problems.solvers import forced_burgers as B
from problems.solvers import staggered as S

F64 = torch.float64


def random_state(batch=2, n=16, seed=0, amplitude=1.0):
    return amplitude * torch.randn(batch, 2, n, n, generator=torch.Generator().manual_seed(seed), dtype=F64)


def shear(n, length, amplitude):
    """v = (A sin(2 pi y / L), 0) on the faces of an n x n grid of side L: (v . grad) v = 0, so only diffusion acts."""
    dx = length / n
    (y, _), _ = S.face_positions((n, n), dx, dtype=F64)
    vx = amplitude * torch.sin(2 * math.pi * y / length)
    return torch.stack((vx, torch.zeros_like(vx)))[None], dx


# ---- against PhiFlow -------------------------------------------------------------------------------------------

def test_step_matches_phiflow_advection_fourier_diffusion_and_force(phiflow):
    """PhiFlow 3's diffuse.fourier works in cells (it ignores dx), so it is given nu dt / dx^2 in cell units."""
    dx, dt, nu = 0.5, 0.1, 0.1
    v, f = random_state(seed=1, amplitude=2.0), random_state(seed=2)
    flow = phiflow.flow
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        advected = flow.advect.semi_lagrangian(phiflow.staggered(v, dx), phiflow.staggered(v, dx), dt)
        diffused = flow.diffuse.fourier(advected, nu / dx ** 2, dt)
    expected = phiflow.values(diffused) + dt * f
    torch.testing.assert_close(B.burgers_step(v, dt, dx, nu, f), expected, atol=1e-12, rtol=0)


def test_restriction_matches_phiflow_downsample2x(phiflow):
    v = random_state(seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        once = phiflow.values(phiflow.flow.field.downsample2x(phiflow.staggered(v, 1.0)))
        twice = phiflow.values(phiflow.flow.field.downsample2x(phiflow.flow.field.downsample2x(
            phiflow.staggered(v, 1.0))))
    torch.testing.assert_close(B.downsample2x(v), once, atol=1e-14, rtol=0)
    torch.testing.assert_close(B.restrict(v, 4), twice, atol=1e-14, rtol=0)
    assert torch.equal(B.restrict(v, 1), v)


# ---- analytic solutions ------------------------------------------------------------------------------------------

def test_shear_flow_decays_at_the_exact_rate():
    """v_x = A sin(2 pi y / L) is steady under advection (it moves along x, constant in x) and decays like
    exp(-nu (2 pi / L)^2 t): semi-Lagrangian advection reproduces it exactly and the diffusion is exact per mode."""
    n, length, nu, dt = 32, 32.0, 0.1, 0.1
    v, dx = shear(n, length, 1.5)
    u = v
    for _ in range(50):
        u = B.burgers_step(u, dt, dx, nu)
    decay = math.exp(-nu * (2 * math.pi / length) ** 2 * 50 * dt)
    torch.testing.assert_close(u, v * decay, atol=1e-12, rtol=0)


def test_constant_force_drives_the_shear_flow_to_its_steady_state_at_first_order_in_dt():
    """With f = (B sin(2 pi y / L), 0): v_x(t) = [A - B / lam] e^{-lam t} + B / lam, lam = nu (2 pi / L)^2. Adding the
    force after the exact diffusion is first order in dt: halving dt halves the error."""
    n, length, nu, t_end = 16, 16.0, 0.1, 4.0
    v, dx = shear(n, length, 1.0)
    force, _ = shear(n, length, 0.5)
    lam = nu * (2 * math.pi / length) ** 2
    exact = (1.0 - 0.5 / lam) * math.exp(-lam * t_end) + 0.5 / lam
    errors = []
    for steps in (40, 80, 160):
        u = v
        for _ in range(steps):
            u = B.burgers_step(u, t_end / steps, dx, nu, force)
        errors.append((u - v * exact).abs().max().item())
    assert errors[0] > 1e-3
    assert errors[0] / errors[1] == pytest.approx(2.0, rel=0.05)
    assert errors[1] / errors[2] == pytest.approx(2.0, rel=0.05)


# ---- random initial states and forcing --------------------------------------------------------------------------

def test_random_velocity_has_the_randfreq_variance_and_spectrum():
    h = w = 64
    v = B.random_velocity(64, (h, w), torch.Generator().manual_seed(0))
    k = torch.sqrt(torch.fft.fftfreq(h, dtype=F64)[:, None] ** 2 + torch.fft.fftfreq(w, dtype=F64)[None, :] ** 2)
    weight2 = ((1 / (k + 1)) ** 16).sum().item()
    variance = 2.0 ** 2 * 8 ** 2 * (h + w) / 2 * weight2 / (h * w) ** 2
    assert v.shape == (64, 2, h, w) and v.dtype == F64
    assert v.var().item() == pytest.approx(variance, rel=0.05)
    # mean power of a mode follows (1 + |k|)^(-16), up to the half carried by the real part
    power = (torch.fft.fft2(v).abs() ** 2).mean(dim=(0, 1))
    ratio = power[0, 16] / power[0, 1]
    assert ratio.item() == pytest.approx(((1 + 1 / 64) / (1 + 16 / 64)) ** 16, rel=0.25)


def test_random_velocity_is_reproducible_from_its_generator():
    a = B.random_velocity(2, (8, 8), torch.Generator().manual_seed(5), dtype=torch.float32)
    b = B.random_velocity(2, (8, 8), torch.Generator().manual_seed(5), dtype=torch.float32)
    assert a.dtype == torch.float32 and torch.equal(a, b)


def test_wave_forcing_is_drawn_from_the_authors_ranges_and_travels():
    forcing = B.WaveForcing.draw(500, torch.Generator().manual_seed(0))
    magnitude = forcing.wavevector.norm(dim=-1)
    angle = torch.atan2(forcing.wavevector[..., 1], forcing.wavevector[..., 0])
    assert forcing.wavevector.shape == (500, 20, 2)
    assert 0.8 <= magnitude.min() and magnitude.max() <= 1.6
    assert 0 <= angle.min() and angle.max() <= math.pi
    assert forcing.amplitude.abs().max() <= 0.15 and forcing.omega.abs().max() <= 0.4
    assert 0 <= forcing.phase.min() and forcing.phase.max() <= 2 * math.pi
    # one wave: f(x, t) = a sin(k . x + phi + omega t) at each component's faces
    one = B.WaveForcing(forcing.wavevector[:1, :1], forcing.amplitude[:1, :1], forcing.phase[:1, :1],
                        forcing.omega[:1, :1])
    f = one.field(2.5, (8, 8), 0.5)
    (xy, xx), (yy, yx) = S.face_positions((8, 8), 0.5, dtype=F64)
    (kx, ky), (ax, ay) = one.wavevector[0, 0], one.amplitude[0, 0]
    shift = one.phase[0, 0] + one.omega[0, 0] * 2.5
    torch.testing.assert_close(f[0, 0], ax * torch.sin(kx * xx + ky * xy + shift))
    torch.testing.assert_close(f[0, 1], ay * torch.sin(kx * yx + ky * yy + shift))


# ---- autograd and torch.func --------------------------------------------------------------------------------------

def test_gradients_match_finite_differences_in_float64():
    v = random_state(batch=1, n=6, seed=4).requires_grad_()
    f = random_state(batch=1, n=6, seed=5).requires_grad_()
    assert gradcheck(lambda v, f: B.burgers_step(v, 0.3, 1.0, 0.1, f), (v, f))
    assert gradcheck(lambda v: B.restrict(v, 2), (v,))


def test_step_works_under_vmap_and_jacrev():
    v = random_state(batch=3, n=8, seed=6)
    step = lambda x: B.burgers_step(x, 0.1, 1.0, 0.1)  # noqa: E731
    torch.testing.assert_close(torch.func.vmap(step)(v), step(v))
    jac = torch.func.jacrev(step)(v[0])
    assert jac.shape == (2, 8, 8, 2, 8, 8) and torch.isfinite(jac).all()


# ---- bad input ---------------------------------------------------------------------------------------------------

def test_a_state_of_the_wrong_shape_is_rejected_with_the_expected_layout():
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, H, W\)"):
        B.burgers_step(torch.zeros(2, 3, 8, 8), 0.1, 1.0, 0.1)
    with pytest.raises(ValueError, match="same staggered faces"):
        B.burgers_step(torch.zeros(1, 2, 8, 8), 0.1, 1.0, 0.1, force=torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="even"):
        B.downsample2x(torch.zeros(1, 2, 6, 5))
    with pytest.raises(ValueError, match="power of two"):
        B.restrict(torch.zeros(1, 2, 12, 12), 3)


def test_nan_bad_dt_and_bad_viscosity_are_rejected():
    with pytest.raises(SimulationError, match="NaN"):
        B.burgers_step(torch.full((1, 2, 8, 8), float("nan")), 0.1, 1.0, 0.1)
    with pytest.raises(ValueError, match="dt"):
        B.burgers_step(torch.zeros(1, 2, 8, 8), -0.1, 1.0, 0.1)
    with pytest.raises(ValueError, match="viscosity"):
        B.burgers_step(torch.zeros(1, 2, 8, 8), 0.1, 1.0, -1.0)
