"""The SOL_n loss, rollouts, the MAE metric and window batches (problems/solver_in_the_loop/training.py)."""
import pytest
import torch

from problems import ProblemError
from problems.solver_in_the_loop import (Correction, ForcedBurgers, corrected_step, data_statistics, improvement,
                                         rollout, rollout_error, simulate, unrolled_loss, window_batches)

SMALL = ForcedBurgers(reference_resolution=32, source_resolution=8, warmup=3, frames=8)


@pytest.fixture(scope="module")
def sims():
    return simulate(SMALL, [0, 1], dtype=torch.float64)


def small_correction(sims):
    torch.manual_seed(0)
    sv, sf = data_statistics(sims)
    return Correction(sv, sf, features=4, blocks=1, kernel=3).double()


def test_statistics_are_per_component_stds_of_magnitudes(sims):
    sv, sf = data_statistics(sims)
    expected = torch.stack([sims.velocity[:, :, c].abs().flatten().std(unbiased=False) for c in range(2)])
    torch.testing.assert_close(sv, expected.float())
    assert sf.shape == (2,) and (sf > 0).all()


def test_one_step_loss_without_correction_is_the_scaled_source_error(sims):
    v, f = sims.windows(torch.tensor([0, 1]), torch.tensor([0, 2]), steps=1)
    sv = torch.tensor([0.5, 2.0], dtype=torch.float64)
    zero = lambda s, force: torch.zeros_like(s)  # noqa: E731
    expected = 0.5 * (((v[:, 1] - SMALL.step(v[:, 0], f[:, 0])) / sv.reshape(2, 1, 1)) ** 2).sum()
    torch.testing.assert_close(unrolled_loss(SMALL, zero, v, f, sv, steps=1), expected)


def test_the_look_ahead_loss_averages_every_intermediate_state(sims):
    net = small_correction(sims)
    v, f = sims.windows(torch.tensor([0]), torch.tensor([1]), steps=3)
    sv = torch.ones(2, dtype=torch.float64)
    s, terms = v[:, 0], []
    for k in range(3):
        s = corrected_step(SMALL, s, f[:, k], net)
        terms.append(0.5 * ((v[:, k + 1] - s) ** 2).sum())
    torch.testing.assert_close(unrolled_loss(SMALL, net, v, f, sv, steps=3), sum(terms) / 3)


def test_checkpointed_steps_give_bitwise_the_same_gradients(sims):
    """Recomputation is a memory setting only (so it is not part of a trained mode's identity)."""
    net = small_correction(sims)
    v, f = sims.windows(torch.tensor([0, 1]), torch.tensor([0, 1]), steps=4)
    sv = torch.ones(2, dtype=torch.float64)
    grads = []
    for ckpt in (False, True):
        net.zero_grad()
        unrolled_loss(SMALL, net, v, f, sv, steps=4, checkpoint_steps=ckpt).backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    assert torch.equal(grads[0], grads[1]) and grads[0].abs().sum() > 0


def test_sip_look_ahead_is_supervised_training_on_the_models_own_rollout(sims):
    """SIP_n: the same value as SOL_n, and the gradient of per-step targets c*_k = T r_{t+k} - P_s(s~_{k-1}) computed
    along the corrected rollout without gradients (an independent construction)."""
    net = small_correction(sims)
    v, f = sims.windows(torch.tensor([0, 1]), torch.tensor([0, 2]), steps=3)
    sv = torch.tensor([0.5, 2.0], dtype=torch.float64)
    sigma = sv.reshape(2, 1, 1)
    with torch.no_grad():
        states, s = [], v[:, 0]
        for k in range(3):
            states.append(s)
            s = corrected_step(SMALL, s, f[:, k], net)
    net.zero_grad()
    proxy = 0
    for k, previous in enumerate(states):
        p = SMALL.step(previous, f[:, k])
        target = v[:, k + 1] - p
        proxy = proxy + 0.5 * (((target - net(p, f[:, k])) / sigma) ** 2).sum()
    (proxy / 3).backward()
    expected = torch.cat([q.grad.flatten() for q in net.parameters()])
    for ckpt in (False, True):
        net.zero_grad()
        loss = unrolled_loss(SMALL, net, v, f, sv, steps=3, detach_states=True, checkpoint_steps=ckpt)
        torch.testing.assert_close(loss, unrolled_loss(SMALL, net, v, f, sv, steps=3))
        loss.backward()
        torch.testing.assert_close(torch.cat([q.grad.flatten() for q in net.parameters()]), expected)
    net.zero_grad()
    unrolled_loss(SMALL, net, v, f, sv, steps=3).backward()
    assert not torch.allclose(torch.cat([q.grad.flatten() for q in net.parameters()]), expected)   # SOL_3 differs


def test_source_rollout_error_and_improvement(sims):
    s, errors = sims.velocity[:, 0], []
    for j in range(1, 6):
        s = SMALL.step(s, sims.condition[:, j - 1])
        errors.append((s - sims.velocity[:, j]).abs().mean(dim=(1, 2, 3)))
    src = rollout_error(SMALL, sims, steps=5)
    torch.testing.assert_close(src, torch.stack(errors, 1).mean(1))
    assert (src > 0).all()
    states = rollout(SMALL, sims.velocity[:, 0], sims.condition[:, :5])
    assert states.shape == (2, 5, 2, 8, 8)
    torch.testing.assert_close(improvement(src / 4, src), torch.full_like(src, 0.75))
    with pytest.raises(ProblemError, match="cannot roll out 8 steps from 8 stored frames"):
        rollout_error(SMALL, sims, steps=8)


def test_an_epoch_covers_every_window_once(sims):
    seen = torch.cat([torch.stack(b, 1) for b in window_batches(sims, 3, 2, torch.Generator().manual_seed(0))])
    assert len(seen) == 2 * (8 - 3)
    assert len({tuple(x) for x in seen.tolist()}) == len(seen)
    assert int(seen[:, 1].max()) + 3 <= 7
    with pytest.raises(ProblemError, match="look-ahead <= 7"):
        next(window_batches(sims, 8, 2, torch.Generator()))


def test_bad_windows_are_rejected(sims):
    with pytest.raises(ProblemError, match="windows must be"):
        unrolled_loss(SMALL, lambda s, f: s, torch.zeros(2, 2, 2, 8, 8), torch.zeros(2, 2, 2, 8, 8),
                      torch.ones(2), steps=3)
