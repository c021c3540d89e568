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


def test_navier_stokes_inference_against_the_iterative_solver(tmp_path, cli):
    code, out, _ = cli("ns-inference", "--train-iterations", "1", "--batch", "2",
                       "--solver-iterations", "2", "--repeats", "1", "--out", str(tmp_path))
    assert code == 0 and "ms per problem and iteration" in out
    result = json.loads((tmp_path / "inference.json").read_text())
    assert result["network"]["problems_per_second"] > 0 and len(result["solver"]["trace"]) == 2
    errors = [t["x_error"] for t in result["solver"]["trace"]]
    assert errors[1] < errors[0]
