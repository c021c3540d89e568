"""The quantum dipole problem (HIG paper Sec. 3.3) against independent references: dense complex numpy states built
here from the paper's definitions. The Schroedinger solver itself (grid, Hamiltonian, eigenstates, Crank-Nicolson) is
specified in tests/problems/solvers/test_schroedinger.py."""
import math

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from problems import Batch, ProblemError, get_problem
from problems.solvers import schroedinger as sch

POINTS = 16


def to_real(psi: np.ndarray) -> torch.Tensor:
    """complex (..., n) -> real (..., 2, n), float64."""
    return torch.from_numpy(np.stack([psi.real, psi.imag], axis=-2)).to(torch.float64)


def to_complex(psi: torch.Tensor) -> np.ndarray:
    p = psi.detach().numpy()
    return p[..., 0, :] + 1j * p[..., 1, :]


def small(steps=8, dtype=torch.float64, **kw):
    return get_problem("quantum-dipole", dtype=dtype, steps=steps, **kw)


# ---- the problem --------------------------------------------------------------------------------------------------

def test_config_and_network_match_the_paper():
    p = get_problem("quantum-dipole")
    c = p.config
    assert (c.points, c.length, c.dt, c.steps) == (16, 2.0, 0.05, 384)
    assert get_problem("quantum-dipole").benchmark.held_out_size == 1024
    assert p.x_shape == (384,) and p.benchmark.batch_size == 16
    torch.manual_seed(0)
    net = p.default_network()
    assert sum(w.numel() for w in net.parameters()) == 9484              # paper App. B.4
    assert sum(isinstance(m, torch.nn.Tanh) for m in net) == 3
    batch = p.sample(3, torch.Generator().manual_seed(0))
    assert p.predict(net, batch).shape == (3, 384)
    assert p.benchmark.hyperparameters("hig", p.config) == {"lr": 0.5, "truncation": 1e-5, "batch_size": 16}
    assert p.benchmark.hyperparameters("adam", p.config)["batch_size"] == 256
    assert set(p.benchmark.per_optimizer) == set(p.benchmark.optimizers)


def test_targets_are_normalised_real_superpositions_of_the_first_two_excited_states():
    p = get_problem("quantum-dipole", dtype=torch.float64)
    batch = p.sample(64, torch.Generator().manual_seed(1))
    assert batch.inputs.shape == batch.target.shape == (64, 28) and batch.x_true is None
    torch.testing.assert_close(batch.inputs, batch.target)
    psi = batch.target.reshape(64, 2, 14)
    assert psi[:, 1].abs().max() == 0                                     # c ~ N(0, 1) real (authors' code)
    e = sch.eigenstates(POINTS, dtype=torch.float64)
    coeff = psi[:, 0] @ e.T
    torch.testing.assert_close(coeff.square().sum(-1), torch.ones(64, dtype=torch.float64))
    assert coeff[:, [0] + list(range(3, 14))].abs().max() < 1e-14
    assert coeff[:, 1].abs().mean() > 0.3 and coeff[:, 2].abs().mean() > 0.3   # both states present


def test_loss_is_zero_at_the_target_up_to_a_global_phase_and_one_for_orthogonal_states():
    p = get_problem("quantum-dipole", dtype=torch.float64)
    batch = p.sample(5, torch.Generator().manual_seed(2))
    target = to_complex(batch.target.reshape(5, 2, 14))
    phases = np.exp(1j * np.linspace(0, 6, 5))[:, None]
    y = to_real(phases * target).reshape(5, 28)
    np.testing.assert_allclose(p.loss(y, batch).numpy(), 0.0, atol=1e-14)
    e = sch.eigenstates(POINTS).numpy()
    c = target @ e.T                                                     # coefficients on e_2, e_3
    within_span = (-c[:, 2:3] * e[1] + c[:, 1:2] * e[2]) * 1j           # orthogonal, inside span(e_2, e_3)
    np.testing.assert_allclose(p.loss(to_real(within_span).reshape(5, 28), batch).numpy(), 1.0, atol=1e-14)
    ground = np.broadcast_to(e[0], (5, 14)).astype(complex)
    np.testing.assert_allclose(p.loss(to_real(ground).reshape(5, 28), batch).numpy(), 1.0, atol=1e-14)
    # zero control leaves the ground state in place (up to a phase), which is orthogonal to every target
    np.testing.assert_allclose(p.loss(p.forward(torch.zeros(5, 384, dtype=torch.float64)), batch).numpy(), 1.0,
                               atol=1e-12)


def test_low_and_high_energy_losses_follow_the_paper_definition():
    p = get_problem("quantum-dipole", dtype=torch.float64)
    e = sch.eigenstates(POINTS).numpy()
    target = (e[1] + e[2]) / math.sqrt(2)
    batch = Batch(to_real(target[None] + 0j).reshape(1, 28), to_real(target[None] + 0j).reshape(1, 28))
    # psi(T) = e_2 (times a phase): LE = (1/sqrt2 - 1)^2, HE = (1/sqrt2 - 0)^2
    comp = p.component_losses(to_real(1j * e[1][None]).reshape(1, 28), batch)
    assert set(comp) == {"le_loss", "he_loss"}
    np.testing.assert_allclose(comp["le_loss"].numpy(), (1 / math.sqrt(2) - 1) ** 2, atol=1e-14)
    np.testing.assert_allclose(comp["he_loss"].numpy(), 0.5, atol=1e-14)
    # phases of the components do not matter
    comp = p.component_losses(to_real((e[1] - 1j * e[2])[None] / math.sqrt(2)).reshape(1, 28), batch)
    np.testing.assert_allclose(comp["le_loss"].numpy(), 0.0, atol=1e-14)
    np.testing.assert_allclose(comp["he_loss"].numpy(), 0.0, atol=1e-14)


def test_metrics_report_loss_and_no_x_error():
    p = small()
    batch = p.sample(3, torch.Generator().manual_seed(3))
    m = p.metrics(torch.zeros(3, 8, dtype=torch.float64), batch)
    assert m["x_error"] is None and m["loss"] == pytest.approx(1.0, abs=1e-12)


def test_loss_gradient_wrt_controls_passes_gradcheck():
    p = small(steps=8)
    batch = p.sample(2, torch.Generator().manual_seed(4))
    u = (3 * torch.randn(2, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))).requires_grad_()
    assert gradcheck(lambda v: p.loss(p.forward(v, batch), batch), (u,), eps=1e-6, atol=1e-7)


def test_per_example_jacobians_under_vmap_match_the_batched_jacobian():
    p = small(steps=8)
    batch = p.sample(3, torch.Generator().manual_seed(6))
    u = torch.randn(3, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    per_example = torch.func.vmap(torch.func.jacrev(lambda ui: p.forward(ui[None], None)[0]))(u)   # (3, 28, 8)
    full = torch.autograd.functional.jacobian(lambda v: p.forward(v, batch), u)                     # (3, 28, 3, 8)
    assert per_example.shape == (3, 28, 8)
    for i in range(3):
        torch.testing.assert_close(per_example[i], full[i, :, i])
        others = [j for j in range(3) if j != i]
        assert full[i][:, others].abs().max() == 0


def test_jacobian_wrt_network_weights_under_vmap_jacrev():
    p = small(steps=8, dtype=torch.float32)
    torch.manual_seed(0)
    net = p.default_network()
    params = {k: v.detach() for k, v in net.named_parameters()}
    batch = p.sample(4, torch.Generator().manual_seed(8))

    def y_of(prm, inp):
        return p.forward(torch.func.functional_call(net, prm, (inp[None],)), None)[0]

    jac = torch.func.vmap(torch.func.jacrev(y_of), in_dims=(None, 0))(params, batch.inputs)
    assert jac["6.weight"].shape == (4, 28, 8, 20)
    # row 5 of example 2 against plain autograd
    grads = torch.autograd.grad(p.forward(net(batch.inputs[2:3]), None)[0, 5], list(net.parameters()))
    for (name, _), g in zip(net.named_parameters(), grads):
        torch.testing.assert_close(jac[name][2, 5], g, rtol=1e-4, atol=1e-6)


def test_the_supplied_physics_jacobian_is_the_autograd_jacobian():
    """physics_jacobian: y as forward gives it and dy/dx (B, 28, steps) equal to vmap(jacrev(forward)) in float64;
    only problems that have one in closed form define it (the others raise NotImplementedError)."""
    p = small(steps=8)
    batch = p.sample(3, torch.Generator().manual_seed(6))
    u = torch.randn(3, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    y, J = p.physics_jacobian(u, batch)
    ref = torch.func.vmap(torch.func.jacrev(lambda ui: p.forward(ui[None], None)[0]))(u)
    torch.testing.assert_close(y, p.forward(u, batch), rtol=0, atol=1e-14)
    torch.testing.assert_close(J, ref, rtol=1e-12, atol=1e-13)
    assert type(p).defines_physics_jacobian() and not type(get_problem("oscillators")).defines_physics_jacobian()
    with pytest.raises(NotImplementedError, match="no physics Jacobian"):
        get_problem("oscillators").physics_jacobian(torch.zeros(1, *get_problem("oscillators").x_shape), None)
    with pytest.raises(ProblemError, match="shape"):
        p.physics_jacobian(torch.zeros(3, 7, dtype=torch.float64), None)
