"""The quantum dipole problem (HIG paper Sec. 3.3) and its Schroedinger pieces, each against an independent reference:
dense complex numpy / scipy matrices built here from the equations, not from the module under test."""
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch.autograd import gradcheck

from problems import Batch, get_problem
from problems import schroedinger as sch

POINTS, LENGTH, DT, STEPS = 16, 2.0, 0.05, 384
N_INT = POINTS - 2
DX = LENGTH / (POINTS - 1)


# ---- independent references (numpy, complex, dense) -----------------------------------------------------------------

def ref_hamiltonian(u: float) -> np.ndarray:
    """H(u) = -D2 + u diag(x), D2 = tridiag(1, -2, 1) / dx^2 on the 14 interior points x_j = j dx."""
    d2 = (np.diag(-2.0 * np.ones(N_INT)) + np.diag(np.ones(N_INT - 1), 1) + np.diag(np.ones(N_INT - 1), -1)) / DX ** 2
    x = DX * np.arange(1, N_INT + 1)
    return -d2 + u * np.diag(x)


def ref_cn_step(u: float, dt: float = DT) -> np.ndarray:
    """The exact Crank-Nicolson propagator (I + i dt/2 H)^{-1} (I - i dt/2 H), dense complex."""
    h, eye = ref_hamiltonian(u), np.eye(N_INT)
    return np.linalg.solve(eye + 0.5j * dt * h, eye - 0.5j * dt * h)


def to_real(psi: np.ndarray) -> torch.Tensor:
    """complex (..., n) -> real (..., 2, n), float64."""
    return torch.from_numpy(np.stack([psi.real, psi.imag], axis=-2)).to(torch.float64)


def to_complex(psi: torch.Tensor) -> np.ndarray:
    p = psi.detach().numpy()
    return p[..., 0, :] + 1j * p[..., 1, :]


def random_states(b: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    psi = rng.standard_normal((b, N_INT)) + 1j * rng.standard_normal((b, N_INT))
    return psi / np.linalg.norm(psi, axis=-1, keepdims=True)


X64 = sch.interior_positions(POINTS, LENGTH)


def small(steps=8, dtype=torch.float64, **kw):
    return get_problem("quantum-dipole", dtype=dtype, steps=steps, **kw)


# ---- grid, Hamiltonian and eigenstates -------------------------------------------------------------------------------

def test_grid_matches_the_paper():
    assert sch.spacing(POINTS, LENGTH) == pytest.approx(2 / 15)          # "dx = 0.133, 16 discretization points"
    np.testing.assert_allclose(X64.numpy(), DX * np.arange(1, 15), rtol=0, atol=1e-15)
    np.testing.assert_allclose(sch.hamiltonian(0.7, POINTS, LENGTH).numpy(), ref_hamiltonian(0.7), rtol=1e-14)
    assert STEPS * DT == pytest.approx(19.2)                              # "up to a time of 19.2"


def test_eigenstates_are_orthonormal_eigenvectors_of_the_discrete_hamiltonian():
    e = sch.eigenstates(POINTS).numpy()               # rows e_1 .. e_14
    lam = sch.eigenvalues(POINTS, LENGTH).numpy()
    h = ref_hamiltonian(0.0)
    residual = np.abs(e @ h - lam[:, None] * e).max()  # H symmetric: (H e_k)^T = e_k^T H
    assert residual < 1e-12 * lam.max()
    np.testing.assert_allclose(e @ e.T, np.eye(N_INT), rtol=0, atol=1e-14)
    np.testing.assert_allclose(lam, np.linalg.eigvalsh(h), rtol=1e-12)
    assert np.all(np.diff(lam) > 0) and np.all(e[0] > 0)                # ascending; e_1 is the nodeless ground state


# ---- Crank-Nicolson -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("u", [0.0, 1.0, -7.5, 40.0])
def test_one_step_matches_the_dense_cn_propagator(u):
    psi = random_states(5, seed=1)
    expected = psi @ ref_cn_step(u).T
    out = sch.crank_nicolson_step(to_real(psi), torch.full((5,), u, dtype=torch.float64), X64, DX, DT)
    np.testing.assert_allclose(to_complex(out), expected, rtol=0, atol=1e-13)


def test_one_step_with_a_different_control_per_example():
    psi = random_states(4, seed=2)
    us = [0.0, 3.0, -20.0, 500.0]
    expected = np.stack([ref_cn_step(u) @ p for u, p in zip(us, psi)])
    out = sch.crank_nicolson_step(to_real(psi), torch.tensor(us, dtype=torch.float64), X64, DX, DT)
    np.testing.assert_allclose(to_complex(out), expected, rtol=0, atol=1e-13)
    # float32: same to single precision, also for extreme controls
    out32 = sch.crank_nicolson_step(to_real(psi).float(), torch.tensor(us, dtype=torch.float32), X64.float(),
                                    DX, DT)
    np.testing.assert_allclose(to_complex(out32.double()), expected, rtol=0, atol=2e-6)


def test_rollout_with_piecewise_constant_control_matches_the_product_of_dense_steps():
    rng = np.random.default_rng(3)
    psi0 = random_states(3, seed=4)
    u = 10 * rng.standard_normal((3, 30))
    expected = []
    for p, ub in zip(psi0, u):
        for un in ub:
            p = ref_cn_step(un) @ p
        expected.append(p)
    out = sch.rollout(to_real(psi0), torch.from_numpy(u), X64, DX, DT)
    np.testing.assert_allclose(to_complex(out), np.stack(expected), rtol=0, atol=1e-12)
    traj = sch.rollout(to_real(psi0), torch.from_numpy(u), X64, DX, DT, return_trajectory=True)
    assert traj.shape == (3, 31, 2, N_INT)
    torch.testing.assert_close(traj[:, 0], to_real(psi0))
    torch.testing.assert_close(traj[:, -1], out)


def test_full_rollout_at_zero_control_is_the_exact_discrete_cn_evolution():
    # at u = 0 CN multiplies each eigencomponent by the Cayley factor (1 - i lam dt/2) / (1 + i lam dt/2) per step
    e = sch.eigenstates(POINTS).numpy()
    lam = sch.eigenvalues(POINTS, LENGTH).numpy()
    psi0 = random_states(2, seed=5)
    factor = ((1 - 0.5j * lam * DT) / (1 + 0.5j * lam * DT)) ** STEPS
    expected = ((psi0 @ e.T) * factor) @ e
    out = sch.rollout(to_real(psi0), torch.zeros(2, STEPS, dtype=torch.float64), X64, DX, DT)
    np.testing.assert_allclose(to_complex(out), expected, rtol=0, atol=1e-11)


def test_full_rollout_converges_to_expm_at_second_order():
    # psi0 = e_1 (the problem's start state), u = 0, T = 19.2. CN's phase error per step for eigenvalue lam is
    # lam dt - 2 atan(lam dt / 2) ~ lam^3 dt^3 / 12, so |psi_CN(T) - expm(-i H T) e_1| ~ lam_1^3 dt^2 T / 12
    # (0.059 at dt = 0.05): the paper's setup resolves the ground state's phase only to a few percent.
    T = STEPS * DT
    e1 = sch.eigenstates(POINTS).numpy()[0]
    exact = scipy.linalg.expm(-1j * ref_hamiltonian(0.0) * T) @ e1
    lam1 = sch.eigenvalues(POINTS, LENGTH).numpy()[0]
    errors = []
    for dt in (DT, DT / 2):
        steps = round(T / dt)
        out = sch.rollout(to_real(e1[None]), torch.zeros(1, steps, dtype=torch.float64), X64, DX, dt)
        err = np.linalg.norm(to_complex(out)[0] - exact)
        bound = lam1 ** 3 * dt ** 2 * T / 12
        assert 0.9 * bound < err < 1.01 * bound
        errors.append(err)
    assert 3.9 < errors[0] / errors[1] < 4.1


def test_norm_is_conserved_for_random_controls():
    psi0 = to_real(random_states(4, seed=6))
    u = 30 * torch.randn(4, STEPS, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    out = sch.rollout(psi0, u, X64, DX, DT)
    np.testing.assert_allclose(sch.norm2(out).numpy(), 1.0, rtol=0, atol=1e-12)
    out32 = sch.rollout(psi0.float(), u.float(), X64.float(), DX, DT)
    np.testing.assert_allclose(sch.norm2(out32).numpy(), 1.0, rtol=0, atol=1e-4)
    assert (out32.double() - out).abs().max() < 1e-4


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
