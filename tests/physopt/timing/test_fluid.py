"""ns-step-bench and ns-inference: the fluid step against PhiFlow, the network against the iterative solver."""
import json

import pytest


def test_navier_stokes_step_bench_compares_with_phiflow(tmp_path, cli):
    pytest.importorskip("phi")
    code, out, _ = cli("ns-step-bench", "--batch", "2", "--resolution", "16", "--repeats", "1",
                       "--out", str(tmp_path))
    assert code == 0 and "PhiFlow / physopt (forward step, same run):" in out
    rows = json.loads((tmp_path / "step_timing.json").read_text())["rows"]
    assert {r["implementation"] for r in rows} == {"physopt", "phiflow"} and all(r["seconds"] > 0 for r in rows)
    phiflow = next(r for r in rows if r["implementation"] == "phiflow")
    # the baseline's output is checked in the same run: projected (divergence-free) and close to physopt's step
    assert phiflow["max_divergence_phiflow"] < 1e-3 and phiflow["note"] == ""
    assert phiflow["velocity_rel_diff"] < 0.1 and phiflow["solve"]["abs_tol"] == 1e-4
    assert "PhiFlow's output checked in this run" in out


def test_a_baseline_that_does_not_project_is_flagged(monkeypatch):
    """PhiFlow's default rank deficiency leaves this periodic system un-projected; the check must say so."""
    pytest.importorskip("phi")
    from physopt.timing import fluid
    monkeypatch.setitem(fluid.PHIFLOW_SOLVE, "rank_deficiency", None)
    phiflow = fluid.step_timing(batch=4, resolution=16, repeats=1, backward=False)[-1]
    assert phiflow["max_divergence_phiflow"] > 1e-3 and "NOT divergence-free" in phiflow["note"]


def test_navier_stokes_inference_against_the_iterative_solver(tmp_path, cli):
    code, out, _ = cli("ns-inference", "--train-iterations", "1", "--batch", "2",
                       "--solver-iterations", "2", "--repeats", "1", "--out", str(tmp_path))
    assert code == 0 and "ms per problem and iteration" in out
    result = json.loads((tmp_path / "inference.json").read_text())
    assert result["network"]["problems_per_second"] > 0 and len(result["solver"]["trace"]) == 2
    errors = [t["x_error"] for t in result["solver"]["trace"]]
    assert errors[1] < errors[0]
