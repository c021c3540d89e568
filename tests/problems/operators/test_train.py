"""train: Adam on an operator problem's data-free loss, the derivative fields from any engine."""
import copy

import pytest
import torch

from problems.operators import ReactionDiffusion, ScalingPDE, train

F64 = torch.float64


@pytest.mark.parametrize("baseline", ["datavect", "funcloop"])
def test_zcs_and_baseline_training_reach_the_same_loss(baseline, gen):
    problem = ReactionDiffusion(dtype=F64, sensors=8)
    batch = problem.sample(4, 30, gen())
    torch.manual_seed(0)
    net = problem.default_network(width=16, depth=2)
    curves = {name: train(problem, copy.deepcopy(net), batch, name, steps=30, lr=3e-3) for name in ("zcs", baseline)}
    assert curves["zcs"][-1] < 0.7 * curves["zcs"][0]
    torch.testing.assert_close(torch.tensor(curves["zcs"]), torch.tensor(curves[baseline]), rtol=1e-6, atol=0)


def test_train_is_adam_on_the_loss_and_records_each_steps_loss_before_its_update(gen):
    problem = ScalingPDE(order=2, features=3, dtype=F64)
    batches = [problem.sample(2, 5, gen(s)) for s in range(3)]
    torch.manual_seed(0)
    net = problem.default_network(width=4, depth=1)
    reference = copy.deepcopy(net)
    losses = train(problem, net, lambda i: batches[i], "zcs", steps=3, lr=1e-2)
    # independent reference: a hand-written Adam loop, derivatives by another engine
    opt = torch.optim.Adam(reference.parameters(), lr=1e-2)
    want = []
    for batch in batches:
        opt.zero_grad()
        loss = problem.loss(reference, batch, "datavect")
        want.append(loss.item())
        loss.backward()
        opt.step()
    assert losses == pytest.approx(want, rel=1e-10)
    for a, b in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b)


def test_zero_steps_leave_the_network_alone(gen):
    problem = ScalingPDE(order=1, features=3)
    net = problem.default_network(width=4, depth=1)
    before = copy.deepcopy(net.state_dict())
    assert train(problem, net, problem.sample(1, 3, gen()), steps=0) == []
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_bad_steps_raise():
    with pytest.raises(ValueError, match="steps"):
        train(ScalingPDE(), ScalingPDE().default_network(width=4, depth=1), ScalingPDE().sample(1, 1), steps=-1)
    with pytest.raises(ValueError, match="lr > 0"):
        train(ScalingPDE(), ScalingPDE().default_network(width=4, depth=1), ScalingPDE().sample(1, 1), lr=0)
