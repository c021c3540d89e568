"""report: results/README.md regenerated from the summary files and the benchmark outputs."""
import json


def test_report_includes_benchmark_outputs(tmp_path, cli):
    (tmp_path / "hig-timing").mkdir()
    (tmp_path / "hig-timing" / "timing.txt").write_text("setup route\nposs gram 1.0\n")
    (tmp_path / "navier-stokes").mkdir()
    (tmp_path / "navier-stokes" / "inference.txt").write_text("solver / network 123x\n")
    (tmp_path / "navier-stokes" / "step_timing.txt").write_text("PhiFlow / physopt 45x\n")
    code, out, _ = cli("report", str(tmp_path))
    assert code == 0
    text = (tmp_path / "README.md").read_text()
    assert "## Timing: hig-timing" in text and "poss gram 1.0" in text
    assert "## Inference vs iterative solver: navier-stokes" in text and "solver / network 123x" in text
    assert "## Simulation step timing: navier-stokes" in text and "PhiFlow / physopt 45x" in text


def test_report_overview_orders_optimizers_as_the_files_do(tmp_path, cli):
    def run_entry(opt, seed, x_error, status="ok"):
        return {"optimizer": opt, "seed": seed, "iterations": 10, "wall_time_s": 1.0, "status": status,
                "hyperparameters": {"lr": 1e-3}, "final": {"loss": 1.0, "x_error": x_error}}
    summary = {"problem": "toy", "device": "cpu", "torch": "x", "batch_size": 4, "seeds": [0, 1], "iterations": 10,
               "runs": [run_entry("adam", 0, 4.0), run_entry("adam", 1, 2.0), run_entry("sip", 0, 1.0),
                        run_entry("sip", 1, 3.0), run_entry("sgd", 0, 8.0), run_entry("sgd", 1, 8.0, "diverged: step 7: NaN")]}
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "summary.json").write_text(json.dumps(summary))
    assert cli("report", str(tmp_path))[0] == 0
    row = next(line for line in (tmp_path / "README.md").read_text().splitlines() if line.startswith("| [toy]"))
    assert "sip 2 < adam 3 < sgd 8" in row                # means over seeds, best first
    assert "sip 1.5x (1/2)" in row and "sgd 0.375x (0/2)" in row  # below Adam in seed 0 only; never
    assert "| sgd (1 of 2 diverged) |" in (tmp_path / "README.md").read_text()


def test_report_includes_markdown_tables_under_their_own_headings(tmp_path, cli):
    (tmp_path / "pde-control").mkdir()
    (tmp_path / "pde-control" / "table1.md").write_text("# PDE control\n\n| scheme | force |\n|---|---|\n| refined | 14 |\n")
    (tmp_path / "sol").mkdir()
    (tmp_path / "sol" / "table1.md").write_text("# Solver-in-the-Loop\n\n| mode | MAE |\n|---|---|\n| NON | 0.2 |\n")
    code, _, _ = cli("report", str(tmp_path))
    text = (tmp_path / "README.md").read_text()
    assert code == 0 and "## PDE control: pde-control" in text and "## Solver-in-the-Loop: sol" in text
    assert "| refined | 14 |" in text and "| NON | 0.2 |" in text and "# PDE control\n" not in text
