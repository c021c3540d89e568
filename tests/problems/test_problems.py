"""Every registered problem honours the Problem contract (sample, forward, loss, metrics, inverse update, errors),
and the registry finds them by name. Each problem's own physics is specified in tests/problems/test_<module>.py."""
import math

import pytest
import torch
from torch.autograd import gradcheck

import problems
from problems import Batch, ProblemError, get_problem

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
