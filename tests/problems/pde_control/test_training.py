"""Single shooting (the table's iterative baseline): the trajectory its forces give, its objective, and that Adam on
it lowers that objective while still reaching the target."""
import torch

from problems.pde_control import control_forces, split_scenes
from problems.pde_control.setup import ControlSetup
from problems.pde_control.training import shoot, shooting_loss, shooting_trajectory


def scenes(tasks=3, dtype=torch.float32):
    setup = ControlSetup()
    _, test = split_scenes(0, tasks, setup)
    return setup, test.initial.to(dtype), test.target.to(dtype)


def test_the_shooting_trajectory_adds_each_force_after_a_solver_step_and_ends_at_the_target():
    setup, initial, target = scenes()
    forces = torch.randn(initial.shape[0], setup.steps - 1, initial.shape[-1])
    u = shooting_trajectory(forces, initial, target, setup)
    assert u.shape == (initial.shape[0], setup.steps + 1, initial.shape[-1])
    assert torch.equal(u[:, 0], initial) and torch.equal(u[:, -1], target)
    for t in (0, 7, setup.steps - 2):
        torch.testing.assert_close(u[:, t + 1], setup.step(u[:, t]) + forces[:, t])
    # the forces the trajectory implies are the ones applied (the last one closes the gap to the target)
    torch.testing.assert_close(control_forces(u, setup)[:, :-1], forces, rtol=1e-4, atol=1e-4)


def test_the_objective_is_the_batch_sum_of_each_tasks_force_loss_with_a_correct_gradient():
    setup, initial, target = scenes(2, torch.float64)
    forces = (0.01 * torch.randn(2, setup.steps - 1, initial.shape[-1], dtype=torch.float64)).requires_grad_()
    each = [shooting_loss(forces[i:i + 1], initial[i:i + 1], target[i:i + 1], setup) for i in range(2)]
    torch.testing.assert_close(shooting_loss(forces, initial, target, setup), each[0] + each[1])
    small = forces[:, :4].detach().clone().requires_grad_()     # gradcheck on a few forces, the rest held
    rest = forces[:, 4:].detach()
    assert torch.autograd.gradcheck(
        lambda f: shooting_loss(torch.cat([f, rest], 1), initial, target, setup), (small,), eps=1e-6, atol=1e-6)


def test_shooting_lowers_every_tasks_objective_below_the_natural_evolution_run():
    """Its objective is L_F (squared): it spreads the one closing force of the natural run over all steps, which
    lowers L_F, not necessarily the force integral sum |F| of the table."""
    setup, initial, target = scenes()
    natural, shot = shoot(initial, target, setup, 0), shoot(initial, target, setup, 20)
    assert torch.equal(shot[:, -1], target)
    per_task = lambda u: 0.5 * control_forces(u, setup).pow(2).sum((1, 2))  # noqa: E731
    assert (per_task(shot) < 0.5 * per_task(natural)).all()
