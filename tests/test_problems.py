"""Every registered problem honours the Problem contract; each physics and SIP update against a reference."""
import math

import pytest
import torch
from torch.autograd import gradcheck

import problems
from problems import Batch, ProblemError, get_problem
from problems.grids import laplace_dirichlet, spectral_diffusion
from problems.heat import damped_inverse_diffusion, soft_rectangles

SMALL = {"poisson": {"resolution": 16}, "heat": {"resolution": 16, "max_half_size": 3.0}, "quantum-dipole": {"steps": 16},
         "navier-stokes": {"resolution": 16, "dx": 8.0, "unet_levels": 3}}


def make(name, device="cpu", dtype=torch.float32, **kw):
    return get_problem(name, device=device, dtype=dtype, **{**SMALL.get(name, {}), **kw})


@pytest.mark.parametrize("name", problems.list_problems())
class TestContract:
    def test_sample_is_seeded_and_shaped(self, name, device):
        p = make(name, device)
        a = p.sample(5, torch.Generator().manual_seed(3))
        b = p.sample(5, torch.Generator().manual_seed(3))
        assert isinstance(a, Batch) and a.batch_size == 5
        for ta, tb in zip(a, b):
            if ta is not None:
                assert ta.device.type == device.type and ta.dtype == torch.float32
                torch.testing.assert_close(ta, tb)
        if a.x_true is not None:
            assert tuple(a.x_true.shape) == (5, *p.x_shape)
            torch.testing.assert_close(p.forward(a.x_true, a), a.target, atol=1e-5, rtol=1e-4)

    def test_default_network_predicts_x_shape_and_losses_per_example(self, name, device):
        p = make(name, device)
        batch = p.sample(4, torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        x = p.predict(p.default_network(), batch)
        assert tuple(x.shape) == (4, *p.x_shape) and x.device.type == device.type
        assert p.loss(p.forward(x, batch), batch).shape == (4,)
        m = p.metrics(x.detach(), batch)
        assert set(m) == {"loss", "x_error"} and math.isfinite(m["loss"])

    def test_forward_gradcheck_float64(self, name):
        p = make(name, dtype=torch.float64)
        batch = p.sample(2, torch.Generator().manual_seed(1))
        x = (batch.x_true if batch.x_true is not None else torch.randn(2, *p.x_shape, dtype=torch.float64))
        x = (x + 0.1 * torch.randn_like(x)).requires_grad_()
        # navier-stokes: 512 inputs through 8 steps; the full Jacobian costs minutes, so check random projections
        assert gradcheck(lambda v: p.forward(v, batch), (x,), eps=1e-6, atol=1e-5, fast_mode=name == "navier-stokes")

    def test_forward_is_vmap_safe(self, name):
        p = make(name, dtype=torch.float64)
        batch = p.sample(3, torch.Generator().manual_seed(2))
        x = torch.randn(3, *p.x_shape, dtype=torch.float64)
        per_example = torch.func.vmap(lambda xi, bi: p.forward(xi[None], Batch(*(t[None] if t is not None else None
                                                                               for t in bi)))[0],
                                      in_dims=(0, batch.vmap_dims()))(x, batch)
        torch.testing.assert_close(per_example, p.forward(x, batch))

    def test_inverse_update_reduces_the_loss(self, name):
        p = make(name, dtype=torch.float64)
        if not p.has_inverse:
            pytest.skip(f"{name} defines no SIP inverse update")
        batch = p.sample(8, torch.Generator().manual_seed(4))
        x = (batch.x_true if batch.x_true is not None else torch.zeros(8, *p.x_shape, dtype=torch.float64))
        x = x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        if name == "navier-stokes":  # its update models the uniform motion and the vortex only: start far away
            x = torch.zeros_like(x)
        dx = p.inverse_update(x, batch)
        before = p.loss(p.forward(x, batch), batch)
        after = p.loss(p.forward(x + dx, batch), batch)
        assert dx.shape == x.shape and torch.isfinite(dx).all()
        assert after.mean() < 0.5 * before.mean()

    def test_bad_predictions_get_clear_errors(self, name):
        p = make(name)
        batch = p.sample(2, torch.Generator().manual_seed(0))
        wrong = torch.zeros(2, *[s + 1 for s in p.x_shape])
        with pytest.raises(ProblemError, match=f"{name}: prediction has shape"):
            p.metrics(wrong, batch)
        if p.has_inverse:
            with pytest.raises(ProblemError, match=f"{name}: prediction has shape"):
                p.inverse_update(wrong, batch)
        with pytest.raises(ProblemError, match="batch size"):
            p.metrics(torch.zeros(3, *p.x_shape), batch)
        with pytest.raises(ProblemError, match="floating"):
            p.metrics(torch.zeros(2, *p.x_shape, dtype=torch.long), batch)

    def test_prediction_on_another_device_is_rejected(self, name):
        p = make(name)
        batch = p.sample(2, torch.Generator().manual_seed(0))
        with pytest.raises(ProblemError, match="net.to"):
            p.metrics(torch.zeros(2, *p.x_shape, device="meta"), batch)

    def test_config_overrides_are_checked(self, name):
        with pytest.raises(ProblemError, match="unknown config field"):
            get_problem(name, no_such_field=1)


def test_unknown_problem_name_suggests_the_closest():
    with pytest.raises(KeyError, match="Did you mean 'poisson'"):
        get_problem("poison")


def test_poisson_inverse_update_is_exact():
    p = make("poisson", dtype=torch.float64)
    batch = p.sample(3, torch.Generator().manual_seed(0))
    x = torch.randn(3, *p.x_shape, dtype=torch.float64)
    torch.testing.assert_close(x + p.inverse_update(x, batch), batch.x_true)
    torch.testing.assert_close(laplace_dirichlet(batch.target), batch.x_true)


def test_heat_damped_inverse_recovers_low_frequencies_and_is_bounded():
    n, amount = 32, 2.0
    y, x = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")
    low = torch.cos(2 * math.pi * 2 * x / n)[None]
    torch.testing.assert_close(damped_inverse_diffusion(spectral_diffusion(low, amount), amount), low, atol=1e-9,
                               rtol=0)
    # white noise: the exact inverse would amplify the highest mode by exp((2 pi)^2 * 0.5 * amount) ~ 1e17; the damped
    # one treats modes as noise once they need more gain than about 1 / noise_level
    noise = torch.randn(1, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for level in (1e-2, 1e-6):
        out = damped_inverse_diffusion(noise, amount, noise_level=level)
        assert torch.isfinite(out).all() and out.norm() < 10 / level * noise.norm()


def test_heat_rectangles_are_within_bounds_and_counted():
    x = soft_rectangles(64, 64, torch.Generator().manual_seed(0))
    assert x.min() >= 0 and x.shape == (64, 64, 64)
    assert (x.reshape(64, -1).max(-1).values > 0).all()


def test_rotated_sine_preimage_is_exact_and_nearest():
    p = make("rotated-sine", dtype=torch.float64, xi=32.0, phi=45.0)
    batch = p.sample(50, torch.Generator().manual_seed(0))
    x = torch.randn(50, 2, dtype=torch.float64)
    pre = p.nearest_preimage(x, batch.target)
    torch.testing.assert_close(p.forward(pre, batch), batch.target)
    d = p.x_error(x, batch)
    # any other branch / period is at least as far
    a = p._map
    for shift in (-2 * math.pi, 2 * math.pi):
        other_hat = pre @ a.T + torch.tensor([shift, 0.0], dtype=torch.float64)
        other = torch.linalg.solve(a, other_hat.unsqueeze(-1)).squeeze(-1)
        assert ((x - other).norm(dim=-1) >= d - 1e-9).all()


def test_poisson_hig_is_the_papers_8x8_setup_with_an_exact_inverse():
    p = make("poisson-hig", dtype=torch.float64)
    torch.manual_seed(0)
    assert sum(w.numel() for w in p.default_network().parameters()) == 41_408      # HIG paper Sec. 3.2
    batch = p.sample(6, torch.Generator().manual_seed(0))
    assert batch.inputs.shape == (6, 8, 8)
    torch.testing.assert_close(batch.inputs.mean(dim=(-2, -1)), torch.zeros(6, dtype=torch.float64))
    # the target is reached by the ground truth, and the SIP update lands on it from anywhere
    torch.testing.assert_close(laplace_dirichlet(batch.x_true), batch.target)
    x = torch.randn(6, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(x + p.inverse_update(x, batch), batch.x_true)


def test_hig_toy_scales_the_second_component_by_gamma():
    p = make("hig-toy", dtype=torch.float64, gamma=0.01)
    batch = p.sample(64, torch.Generator().manual_seed(0))
    x = batch.inputs[:, 0]
    torch.testing.assert_close(batch.target, torch.stack([torch.sin(6 * x), torch.cos(9 * x)], -1))
    f = torch.randn(64, 2, dtype=torch.float64)
    expected = 0.5 * (f[:, 0] - batch.target[:, 0]) ** 2 + 0.5 * (0.01 * f[:, 1] - batch.target[:, 1]) ** 2
    torch.testing.assert_close(p.loss(p.forward(f, batch), batch), expected)            # HIG paper Eq. 4
    torch.manual_seed(0)
    assert sum(w.numel() for w in p.default_network().parameters()) == 1 * 7 + 7 + 7 * 2 + 2
    with pytest.raises(ValueError, match="gamma must be > 0"):
        get_problem("hig-toy", gamma=0.0)
