"""Forces of a trajectory, the force and jerk losses and the force integral, against direct per-step computations
and autograd in float64."""
import torch
from torch.autograd import gradcheck

from problems.pde_control.data import sample_scenes
from problems.pde_control.losses import control_forces, force_integral, force_loss, jerk_loss
from problems.pde_control.setup import ControlSetup
from problems.solvers import burgers as bu

F64 = torch.float64


def scenes(steps=32, batch=4):
    return sample_scenes(batch, torch.Generator().manual_seed(3), ControlSetup(steps=steps), F64)


def test_an_unforced_run_needs_no_force_and_the_ground_truth_needs_about_its_constant_force():
    u0 = scenes().initial
    free = bu.rollout(u0, 32)
    assert control_forces(free).abs().max() < 1e-12
    gt = scenes()
    forces = control_forces(gt.trajectory)
    # F_t = Solver[u_t + f] - Solver[u_t]: close to f (the step is near the identity for small f)
    rel = (forces - gt.force[:, None]).norm() / gt.force[:, None].expand_as(forces).norm()
    assert rel < 0.5


def test_losses_and_metric_match_a_step_by_step_computation():
    gt = scenes()
    u = gt.trajectory + 0.01 * torch.randn(gt.trajectory.shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    forces = control_forces(u)
    f_loss, j_loss, integral = 0.0, 0.0, torch.zeros(4, dtype=F64)
    previous = None
    for t in range(32):
        f = u[:, t + 1] - bu.burgers_step(u[:, t])
        f_loss += 0.5 * (f ** 2).sum().item() / 4
        integral += f.abs().sum(-1)
        if previous is not None:
            j_loss += 0.5 * ((f - bu.advect_semi_lagrangian(previous, u[:, t], 1.0)) ** 2).sum().item() / 4
        previous = f
    assert abs(force_loss(forces).item() - f_loss) < 1e-10 * f_loss
    assert abs(jerk_loss(forces, u).item() - j_loss) < 1e-10 * j_loss
    torch.testing.assert_close(force_integral(forces), integral)


def test_gradcheck_of_the_force_loss_through_the_solver_in_float64():
    setup = ControlSetup(resolution=8, steps=3)
    u = (0.5 * torch.randn(2, 4, 8, generator=torch.Generator().manual_seed(1), dtype=F64)).requires_grad_()
    assert gradcheck(lambda u: force_loss(control_forces(u, setup)) + jerk_loss(control_forces(u, setup), u, setup),
                     (u,), eps=1e-7, atol=1e-6)
