"""problems.phiflow_heat: heat with its physics written in PhiFlow, a plugin problem named by import path."""
import json

import pytest
import torch

pytest.importorskip("phi.flow")

import physopt  # noqa: E402
from problems import get_problem  # noqa: E402
from problems.phiflow_heat import PhiFlowHeatProblem  # noqa: E402

REFERENCE = "problems.phiflow_heat:PhiFlowHeatProblem"


@pytest.fixture(scope="module")
def pair():
    small = dict(resolution=16, max_half_size=3.0)
    return PhiFlowHeatProblem(**small), get_problem("heat", unet_batch_norm=False, **small)


def test_the_phiflow_physics_is_the_plain_torch_heat_physics(pair):
    phiflow, heat = pair
    batch = heat.sample(3, torch.Generator().manual_seed(0))
    x = torch.rand(3, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(phiflow.forward(x, batch), heat.forward(x, batch), rtol=1e-13, atol=1e-14)
    a, b = phiflow.default_network(), heat.default_network()
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]   # the same U-net, no batch norm


def test_the_sip_update_is_generic_gauss_newton_through_phiflow(pair):
    """No hand-written inverse: dx solves (J^T J + 1e-4) dx = -J^T (P(x) - y*) by CG, as GaussNewtonUpdate does on the
    plain-torch twin with torch.func (1e-6 relative: 20 CG iterations, float64)."""
    phiflow, heat = pair
    batch = heat.sample(2, torch.Generator().manual_seed(1))
    x = torch.rand(2, 16, 16, dtype=torch.float64)
    dx = phiflow.inverse_update(x, batch)
    twin = physopt.GaussNewtonUpdate(lambda v: heat.forward(v, batch), damping=1e-4, max_iterations=20,
                                     derivatives="func")(x, batch.target.double())
    assert ((dx - twin).norm() / twin.norm()).item() < 1e-6
    before = (phiflow.forward(x, batch) - batch.target).norm()
    assert (phiflow.forward(x + dx, batch) - batch.target).norm() < before


def test_adam_sip_and_hig_train_it_through_physopt_compare(tmp_path, cli):
    code, out, err = cli("compare", REFERENCE, "--optimizers", "adam,sip,hig", "--iterations", "4",
                         "--param", "resolution=16", "--param", "max_half_size=3", "--evaluations", "2",
                         "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["problem"] == "phiflow-heat"
    for run in summary["runs"]:
        assert run["status"] == "ok"
        curve = [r for r in (tmp_path / "curves.csv").read_text().splitlines()[1:] if r.startswith(run["optimizer"])]
        first, last = (float(r.split(",")[4]) for r in (curve[0], curve[-1]))
        assert last < first, run["optimizer"]
