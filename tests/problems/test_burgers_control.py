"""burgers-control: the PDE-control task behind the Problem interface, so `physopt compare` trains its schemes and
losses with any optimizer (named by import path until its standard-preset benchmark is in results/)."""
import pytest
import torch

from physopt.bench.compare import compare
from problems import ProblemError, get_problem
from problems.pde_control import control_forces, force_integral
from problems.solvers import burgers as bu

BURGERS = "problems.burgers_control:BurgersControlProblem"


def test_forward_gradcheck_and_vmap_in_float64():
    p = get_problem(BURGERS, dtype=torch.float64, steps=4)
    batch = p.sample(2, torch.Generator().manual_seed(1))
    x = (0.5 * torch.randn(2, 3, 32, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda v: p.forward(v, batch), (x,), eps=1e-6, atol=1e-5)
    per_example = torch.func.vmap(lambda xi, inp, tgt: p.forward(xi[None], type(batch)(inp[None], tgt[None]))[0])(
        x.detach(), batch.inputs, batch.target)
    torch.testing.assert_close(per_example, p.forward(x.detach(), batch))


def test_the_physics_gives_the_forces_of_the_trajectory_from_the_initial_state_to_the_target():
    p = get_problem(BURGERS, dtype=torch.float64, steps=8)
    batch = p.sample(3, torch.Generator().manual_seed(0))
    x = torch.randn(3, 7, 32, dtype=torch.float64)
    forces = p.forward(x, batch)
    assert forces.shape == (3, 8, 32)
    torch.testing.assert_close(forces[:, 0], x[:, 0] - bu.burgers_step(batch.inputs[:, 0]))
    torch.testing.assert_close(forces[:, -1], batch.inputs[:, 1] - bu.burgers_step(x[:, -1]))
    torch.testing.assert_close(p.loss(forces, batch), 0.1 * 0.5 * forces.pow(2).sum((1, 2)))
    torch.testing.assert_close(p.x_error(x, batch), force_integral(forces))
    assert batch.x_true is None                         # the forced run is not the least-force solution


def test_supervised_targets_are_the_ground_truth_states_and_the_metric_stays_the_force_integral():
    p = get_problem(BURGERS, dtype=torch.float64, steps=8, loss="supervised")
    batch = p.sample(2, torch.Generator().manual_seed(0))
    assert batch.x_true.shape == (2, 7, 32)
    torch.testing.assert_close(p.forward(batch.x_true, batch), batch.target)
    trajectory = torch.cat([batch.inputs[:, :1], batch.x_true, batch.inputs[:, 1:]], 1)
    torch.testing.assert_close(p.x_error(batch.x_true, batch), force_integral(control_forces(
        trajectory, p.setup)))


def test_the_gauss_newton_update_lowers_the_force_of_the_network_s_plan():
    p = get_problem(BURGERS, steps=4)
    batch = p.sample(4, torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    x = p.predict(p.default_network(), batch).detach()
    before = p.loss(p.forward(x, batch), batch)
    after = p.loss(p.forward(x + p.inverse_update(x, batch), batch), batch)
    assert (after < 0.5 * before).all()


@pytest.mark.parametrize("scheme, optimizers", [("cfe-chain", ["adam"]), ("refined", ["adam"]),
                                                ("staggered", ["adam", "sip", "hig"])])
def test_compare_trains_the_schemes_with_adam_sip_and_hig(scheme, optimizers, tmp_path):
    p = get_problem(BURGERS, scheme=scheme, steps=2)
    summary = compare(p, optimizers, iterations=2, batch_size=2, evaluations=1, held_out_size=4, out=tmp_path)
    assert [r["optimizer"] for r in summary["runs"]] == optimizers
    assert all(r["status"] == "ok" for r in summary["runs"])


def test_bad_configs_and_inputs_say_what_to_use():
    with pytest.raises(ProblemError, match="unknown scheme 'chain'; choose one of cfe-chain, staggered, refined"):
        get_problem(BURGERS, scheme="chain")
    with pytest.raises(ProblemError, match="unknown loss 'l1'; choose one of physics, supervised"):
        get_problem(BURGERS, loss="l1")
    with pytest.raises(ProblemError, match="power of two.*steps=12"):
        get_problem(BURGERS, steps=12)
    assert get_problem(BURGERS, steps=12, scheme="cfe-chain").x_shape == (11, 32)
    with pytest.raises(ProblemError, match="stability limit"):
        get_problem(BURGERS, dt=6.0)
    net = get_problem(BURGERS, steps=4).default_network()
    with pytest.raises(ProblemError, match=r"takes \(batch, 2, 32\)"):
        net(torch.zeros(3, 32))
