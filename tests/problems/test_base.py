"""base: the Problem contract every registered problem honours (seeded sample, forward, loss, metrics, inverse update,
clear errors), and the defaults and Batch it is built on."""
import dataclasses
import math

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck

import problems
from problems import Batch, Problem, ProblemConfig, ProblemError, get_problem

SMALL = {"poisson": {"resolution": 16}, "heat": {"resolution": 16, "max_half_size": 3.0},
         "quantum-dipole": {"steps": 16}, "navier-stokes": {"resolution": 16, "dx": 8.0, "unet_levels": 3}}


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


# ---- the defaults of Problem, on a problem of its own: y = scale * x -------------------------------------------

@dataclasses.dataclass
class LineConfig(ProblemConfig):
    scale: float = 2.0
    n: int = 3


class Line(Problem):
    name = "line"
    description = "y = scale * x"
    Config = LineConfig

    @property
    def x_shape(self):
        return (self.config.n,)

    def sample_solution(self, batch_size, generator=None):
        return torch.randn(batch_size, self.config.n, generator=generator, dtype=torch.float64)

    def forward(self, x, batch):
        return self.config.scale * x

    def default_network(self):
        return nn.Linear(self.config.n, self.config.n).to(self.device, self.dtype)


class LineWithInverse(Line):
    def inverse_update(self, x, batch):
        return batch.target / self.config.scale - x


def test_default_sample_observes_the_physics_of_seeded_solutions():
    p = Line()
    batch = p.sample(4, torch.Generator().manual_seed(0))
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert batch.x_true.dtype == batch.target.dtype == batch.inputs.dtype == torch.float32
    torch.testing.assert_close(batch.x_true, x.float())
    torch.testing.assert_close(batch.target, 2 * x.float())
    assert torch.equal(batch.inputs, batch.target)


def test_default_loss_is_half_the_squared_distance_and_x_error_the_l1_distance():
    p = Line()
    x_true = torch.zeros(2, 3)
    batch = Batch(inputs=x_true, target=torch.zeros(2, 3), x_true=x_true)
    delta = torch.tensor([[1.0, 2.0, 2.0], [0.0, 0.0, -3.0]])
    assert p.loss(delta, batch).tolist() == [4.5, 4.5]
    assert p.x_error(torch.tensor([[1.0, -2.0, 2.0], [0.0, 0.0, -3.0]]), batch).tolist() == [5.0, 3.0]
    assert p.x_error(delta, batch._replace(x_true=None)) is None
    assert p.component_losses(delta, batch) == {}
    # metrics: batch means of the loss of P(x) and of the x-space error
    m = p.metrics(torch.tensor([[0.5, 1.0, 1.0], [0.0, 0.0, -1.5]]), batch)
    assert m == {"loss": 4.5, "x_error": 2.0}


def test_a_problem_has_an_inverse_update_only_where_it_defines_one():
    batch = Line().sample(2)
    assert not Line.defines_inverse() and not Line().has_inverse
    with pytest.raises(NotImplementedError, match="problem 'line' defines no SIP inverse update"):
        Line().inverse_update(batch.x_true, batch)
    assert LineWithInverse.defines_inverse() and LineWithInverse().has_inverse
    torch.testing.assert_close(LineWithInverse().inverse_update(torch.zeros(2, 3), batch), batch.x_true)


def test_config_overrides_are_typed_like_the_fields_and_unknown_fields_named():
    p = Line(scale="0.5", n="4")
    assert p.config == LineConfig(scale=0.5, n=4) and p.x_shape == (4,)
    config = LineConfig()
    assert config.replace(scale=3.0) == LineConfig(scale=3.0) and config == LineConfig()   # a new config
    with pytest.raises(ProblemError, match=r"unknown config field\(s\) \['size'\] for LineConfig; known fields: "
                                           r"\['n', 'scale'\]"):
        config.replace(size=2)


def test_a_problem_without_data_says_what_to_implement():
    class NoData(Line):
        sample_solution = Problem.sample_solution

    with pytest.raises(NotImplementedError, match="NoData must implement sample"):
        NoData().sample(1)


def test_predict_checks_the_networks_output():
    p = Line()
    batch = p.sample(2, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    net = p.default_network()
    torch.testing.assert_close(p.predict(net, batch), net(batch.inputs))
    with pytest.raises(ProblemError, match=r"line: prediction has shape \(2, 2\), expected \(2, 3\)"):
        p.predict(nn.Linear(3, 2), batch)
    with pytest.raises(ProblemError, match="must be a torch.Tensor, got list"):
        p.check_prediction([[0.0] * 3] * 2, batch)


def test_batch_moves_floating_tensors_and_maps_over_present_fields():
    batch = Batch(inputs=torch.arange(6).reshape(2, 3), target=torch.zeros(2, 3, dtype=torch.float64))
    moved = batch.to(dtype=torch.float32)
    assert moved.inputs.dtype == torch.int64 and moved.target.dtype == torch.float32 and moved.x_true is None
    assert batch.vmap_dims() == Batch(0, 0, None) and batch.vmap_dims(1) == Batch(1, 1, None)
    assert batch.batch_size == 2


def test_every_problems_physics_checks_the_shape_of_x_against_x_shape_and_the_batch():
    from problems import list_problems
    for name in list_problems():
        p = get_problem(name, **SMALL.get(name, {}))
        batch = p.sample(2, torch.Generator().manual_seed(0))
        wrong = torch.zeros(3, *p.x_shape)
        with pytest.raises(ProblemError, match=r"the physics got x of shape \(3, .*expected \(2, "):
            p.forward(wrong, batch)


def test_a_cuda_device_without_cuda_is_refused_where_the_problem_is_made():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ProblemError, match="0 CUDA device.*device='cpu'"):
        get_problem("exp", device="cuda")


@pytest.mark.parametrize("method, override, call, words", [
    ("loss", lambda self, y, batch: (y - batch.target).pow(2).mean(), lambda p, x, b: p.loss(p.forward(x, b), b),
     r"line: loss\(\) must return one value per example, shape \(4,\).*got shape \(\)"),
    ("x_error", lambda self, x, batch: (x - batch.x_true).abs(), lambda p, x, b: p.x_error(x, b),
     r"line: x_error\(\) must return one value per example, shape \(4,\).*got shape \(4, 3\)"),
    ("forward", lambda self, x, batch: x.sum(), lambda p, x, b: p.forward(x, b),
     r"line: the physics must return a real floating-point tensor with the batch dimension first, shape \(4, ...\)"),
    ("forward", lambda self, x, batch: (x > 0).int(), lambda p, x, b: p.forward(x, b),
     r"the physics must return a real floating-point.*dtype torch.int32"),
    ("inverse_update", lambda self, x, batch: x[:, :2], lambda p, x, b: p.inverse_update(x, b),
     r"line: inverse_update\(\) must return the update dx in x's shape \(4, 3\); got shape \(4, 2\)"),
    ("sample", lambda self, n, g=None: (torch.zeros(n, 3), torch.zeros(n, 3)), None,
     r"line: sample\(4\) must return a problems.Batch.*got tuple"),
    ("sample", lambda self, n, g=None: Batch(torch.zeros(n, 3), torch.zeros(n + 1, 3)), None,
     r"line: sample\(4\) must return a problems.Batch.*4 examples each; got shapes \[\(4, 3\), \(5, 3\), None\]"),
])
def test_a_hand_written_problem_whose_methods_return_the_wrong_shape_is_named(method, override, call, words):
    """Every subclass's loss, x_error, forward, inverse_update and sample are checked on what they return (shapes
    and dtypes only: nothing is read from the device), so a mistake is named where it is made."""
    broken = type("Broken", (LineWithInverse,), {method: override})()
    if call is None:
        with pytest.raises(ProblemError, match=words):
            broken.sample(4, torch.Generator().manual_seed(0))
        return
    batch = LineWithInverse().sample(4, torch.Generator().manual_seed(0))
    with pytest.raises(ProblemError, match=words):
        call(broken, batch.x_true, batch)
