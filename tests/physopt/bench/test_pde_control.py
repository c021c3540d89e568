"""physopt pde-control: every stage trained once and saved, a rerun loads instead of training, the table and figure
written beside the paper's numbers, and a stage file from another plan refused."""
import dataclasses
import json
import shutil

import pytest
import torch

from physopt.bench import pde_control
from physopt.bench.pde_control import PAPER_TABLE1, PLANS, ROWS, run_table, table_markdown

STAGES = {"op2-supervised", "op4-supervised", "op8-supervised", "op16-supervised", "op32-supervised",
          "staggered-diff-physics", "refined-diff-physics", "cfe-supervised", "cfe-chain-diff-physics"}


@pytest.fixture(scope="module")
def quick_table(tmp_path_factory):
    out = tmp_path_factory.mktemp("pde-control")
    lines = []
    data = run_table(out, "quick", seeds=(0,), command="physopt pde-control --plan quick", log=lines.append)
    return out, data, lines


def test_every_stage_trains_once_and_is_saved(quick_table):
    out, data, lines = quick_table
    assert {p.stem for p in (out / "seed0").glob("*.pt")} == STAGES
    assert sum("trained" in line for line in lines) == len(STAGES)
    rows = data["force_integral"]["0"]
    assert set(rows) == {key for key, _ in ROWS if not key.startswith("shooting")} | {"shooting/2", "shooting/4"}
    assert len(rows) == len(ROWS)
    assert all(len(v) == PLANS["quick"].held_out and all(x > 0 for x in v) for v in rows.values())
    assert (out / "fig4.png").stat().st_size > 10_000


def test_a_rerun_loads_every_stage_and_gives_the_same_table(quick_table):
    out, data, _ = quick_table
    lines = []
    again = run_table(out, "quick", seeds=(0,), command="physopt pde-control --plan quick", log=lines.append)
    assert not any("trained" in line for line in lines) and sum("loaded" in line for line in lines) == len(STAGES)
    assert again["force_integral"] == data["force_integral"]


def test_the_table_shows_the_papers_numbers_and_the_json_the_per_task_values(quick_table):
    out, data, _ = quick_table
    text = (out / "table1.md").read_text()
    assert "| refined, diff. physics |" in text and "14.2 +- 0.7" in text and "iterative optim., 4 its" in text
    stored = json.loads((out / "table1.json").read_text())
    assert stored["force_integral"] == data["force_integral"] and stored["paper"]["shooting/300"]["force"] == 10.2
    assert table_markdown(stored) == text
    assert set(PAPER_TABLE1) <= {key for key, _ in ROWS}


def test_the_table_says_when_its_times_are_cuda_graph_replays(quick_table):
    _, data, _ = quick_table
    assert pde_control.GRAPHS_NOTE not in table_markdown(data) and not data["inference_graphs"]
    graphed = {**data, "inference_ms": {"cfe-chain/supervised": 0.01}, "inference_graphs": True}
    assert pde_control.GRAPHS_NOTE in table_markdown(graphed)


def test_the_ground_truth_row_is_the_force_of_the_data_generators_runs(quick_table):
    from problems.pde_control import control_forces, force_integral, split_scenes
    _, data, _ = quick_table
    _, test = split_scenes(0, PLANS["quick"].held_out)
    expected = force_integral(control_forces(test.trajectory)).tolist()
    assert data["force_integral"]["0"]["ground-truth"] == pytest.approx(expected)
    applied = (32 * test.force.abs().sum(-1)).tolist()
    assert data["force_integral"]["0"]["ground-truth/applied"] == pytest.approx(applied)


def test_a_stage_file_from_another_plan_is_refused(quick_table):
    out, _, _ = quick_table
    other = dataclasses.replace(PLANS["quick"], supervised_lr=0.5)
    with pytest.raises(ValueError, match="trained with another plan; use another --out"):
        run_table(out, other, seeds=(0,), log=lambda m: None)


def test_a_later_stage_trained_from_other_weights_is_refused(quick_table, tmp_path, monkeypatch):
    out, _, _ = quick_table
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "seed0" / "op2-supervised.pt").unlink()
    original = pde_control.derived_seed                 # op2 retrained on other batches: other weights
    monkeypatch.setattr(pde_control, "derived_seed", lambda seed, name: original(seed, name) + 1)
    with pytest.raises(ValueError, match="op4-supervised.pt was trained from other starting weights"):
        run_table(copy, "quick", seeds=(0,), log=lambda m: None)


def test_the_table_has_an_ops_column_where_the_run_counted_operations(quick_table):
    _, data, _ = quick_table
    assert "| ops |" not in table_markdown(data) and pde_control.OPS_NOTE not in table_markdown(data)
    counted = {**data, "inference_ops": {"cfe-chain/supervised": 12345}}
    text = table_markdown(counted)
    assert pde_control.OPS_NOTE in text and "| inference ms | ops | paper: force |" in text
    assert "| CFE chain, supervised |" in text and "| 12,345 |" in text
    rows = [line.replace("\\|", "") for line in text.splitlines() if line.startswith("|")]
    assert len({row.count("|") for row in rows}) == 1 and rows[0].count("|") == 8      # every row has 7 cells
    assert "32 sum_x \\|f\\| (the authors' count)" in text        # a | inside a label is escaped
