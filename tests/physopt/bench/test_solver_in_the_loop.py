"""physopt solver-in-the-loop: reference data cached once, every mode trained once per seed and saved, a stopped
training run continuing to the same weights as an uninterrupted one, the table beside the paper's numbers."""
import dataclasses
import json
import shutil

import pytest
import torch

from physopt.bench import solver_in_the_loop as sil
from physopt.bench.solver_in_the_loop import PLANS, modes, run_table, table_markdown


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("sol")
    lines = []
    table = run_table(out, "quick", seeds=(0,), command="physopt solver-in-the-loop --plan quick", log=lines.append)
    return out, table, lines


def test_every_mode_trains_once_and_the_table_is_written(quick):
    out, table, lines = quick
    assert modes(PLANS["quick"]) == ["NON", "SOL_3", "SIP_3", "PRE"]
    assert {p.stem for p in (out / "seed0").glob("*.pt")} == {"NON", "SOL_3", "SIP_3", "PRE"}
    assert sum("trained," in line for line in lines) == 4
    assert sum("simulated" in line for line in lines) == 2
    n_test = len(PLANS["quick"].scenario.test_seeds)
    assert len(table["source_mae"]) == n_test and all(v > 0 for v in table["source_mae"])
    assert all(len(table["mae"]["0"][m]) == n_test for m in table["modes"])
    saved = json.loads((out / "table1.json").read_text())
    assert saved["mae"] == table["mae"]
    text = (out / "table1.md").read_text()
    assert "| SRC (no correction) |" in text and "| SOL_3 |" in text and "0.248 +- 0.019" in text
    assert "Interim" not in text
    assert (out / "rollout.png").stat().st_size > 5_000 and (out / "training.png").stat().st_size > 5_000


def test_a_rerun_loads_data_and_weights_and_gives_the_same_table(quick):
    out, table, _ = quick
    lines = []
    again = run_table(out, "quick", seeds=(0,), log=lines.append)
    assert not any("trained" in line or "simulated" in line for line in lines)
    assert again["mae"] == table["mae"] and again["source_mae"] == table["source_mae"]


def test_a_stopped_run_continues_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    plan = PLANS["quick"]
    data = sil.Data(tmp_path / "data", plan, lambda m: None)
    reference, _ = sil.train_mode(tmp_path / "whole", plan, data, "SOL_3", 0, lambda m: None)
    calls = {"n": 0}
    real = sil.unrolled_loss

    def stop_at_the_fourth_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sil, "unrolled_loss", stop_at_the_fourth_batch)
    with pytest.raises(KeyboardInterrupt):
        sil.train_mode(tmp_path / "split", plan, data, "SOL_3", 0, lambda m: None, checkpoint_every_s=0.0)
    assert (tmp_path / "split" / "SOL_3.partial.pt").exists()
    monkeypatch.setattr(sil, "unrolled_loss", real)
    lines = []
    resumed, history = sil.train_mode(tmp_path / "split", plan, data, "SOL_3", 0, lines.append)
    assert any("continues at epoch 1, batch 3" in line for line in lines)
    assert not (tmp_path / "split" / "SOL_3.partial.pt").exists()
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_unknown_modes_and_weights_of_another_plan_are_refused(quick, tmp_path):
    out, _, _ = quick
    with pytest.raises(ValueError, match="unknown mode"):
        run_table(tmp_path, "quick", mode_names=["SOL_99"], log=lambda m: None)
    other = sil.SolPlan(scenario=PLANS["quick"].scenario, epochs=2, batch=2, look_aheads=(1,), pre=False,
                        features=4, blocks=1, kernel=3)
    with pytest.raises(ValueError, match="another plan"):
        run_table(out, other, seeds=(0,), log=lambda m: None)
    fewer = dataclasses.replace(PLANS["quick"], look_aheads=(1,), sip_look_aheads=(), pre=False, checkpoint_from=1)
    lines = []          # a plan listing fewer modes, or recomputing other steps, reuses the weights of its modes
    run_table(out, fewer, seeds=(0,), log=lines.append)
    assert not any("trained" in line for line in lines)


def copy_of(quick, tmp_path):
    """The quick fixture's weights in a directory of this test's own (the cached data linked, not copied)."""
    out = tmp_path / "sol"
    shutil.copytree(quick[0], out, ignore=shutil.ignore_patterns("data"))
    (out / "data").symlink_to(quick[0] / "data")
    return out


def test_weights_saved_with_the_older_identity_that_held_checkpoint_from_still_load(quick, tmp_path):
    out = copy_of(quick, tmp_path)
    saved = torch.load(out / "seed0" / "NON.pt", weights_only=False)
    saved["identity"]["plan"]["checkpoint_from"] = 8
    torch.save(saved, out / "seed0" / "NON.pt")
    lines = []
    table = run_table(out, "quick", seeds=(0,), mode_names=["NON"], log=lines.append)
    assert not any("trained" in line for line in lines) and table["mae"]["0"]["NON"] == quick[1]["mae"]["0"]["NON"]
    saved["identity"]["plan"]["lr"] = 1.0                       # a setting that does change training still counts
    torch.save(saved, out / "seed0" / "NON.pt")
    with pytest.raises(ValueError, match="another plan"):
        run_table(out, "quick", seeds=(0,), mode_names=["NON"], log=lambda m: None)


def test_markdown_reports_the_seed_spread_for_several_seeds(quick):
    _, table, _ = quick
    two = dict(table, seeds=[0, 1], mae={"0": table["mae"]["0"], "1": table["mae"]["0"]})
    text = table_markdown(two)
    assert "standard deviation of the 2 seed means" in text


def test_markdown_checks_the_final_epoch_figure_with_the_mean_of_the_last_epochs(quick):
    _, table, _ = quick
    history = {"test_mae": [0.9, 0.5, 0.1, 0.2, 0.3]}              # last 3 epochs: mean 0.2
    two = dict(table, seeds=[0, 1], modes=["NON"], mae={"0": table["mae"]["0"], "1": table["mae"]["0"]},
               training={"0": {"NON": history}, "1": {"NON": {"test_mae": [0.4]}}})
    assert sil.last_epochs_mae(history) == pytest.approx(0.2) and sil.last_epochs_mae(None) is None
    row = next(line for line in table_markdown(two).splitlines() if line.startswith("| NON |"))
    assert "| 0.300: 0.200 / 0.400 |" in row                    # mean over seeds, then per seed


def test_the_wake_flow_runs_through_the_same_pipeline(tmp_path):
    lines = []
    table = run_table(tmp_path, "wake-quick", seeds=(0,), log=lines.append)
    assert table["scenario"] == "WakeFlow" and table["paper_sol"] == 32
    assert {p.stem for p in (tmp_path / "seed0").glob("*.pt")} == {"NON", "SOL_3", "PRE"}
    assert all(v > 0 for v in table["source_mae"])
    text = (tmp_path / "table1.md").read_text()
    assert "Solver-in-the-Loop, wake flow" in text and "0.146 +- 0.004" in text


def test_the_command_takes_modes_in_any_case_and_names_unknown_ones(cli, tmp_path):
    code, out, _ = cli("solver-in-the-loop", "--plan", "quick", "--modes", "non,SOL_3", "--quiet", "--out",
                       str(tmp_path))
    assert code == 0 and "| NON |" in out and "| SOL_3 |" in out and "| PRE |" not in out
    code, _, err = cli("solver-in-the-loop", "--plan", "quick", "--modes", "SOL_99", "--out", str(tmp_path))
    assert code == 2 and "unknown mode 'SOL_99'" in err and "SOL_3" in err


def test_src_alone_measures_the_uncorrected_source_without_training(cli, tmp_path):
    code, out, _ = cli("solver-in-the-loop", "--plan", "quick", "--modes", "SRC", "--quiet", "--out", str(tmp_path))
    assert code == 0 and "| SRC (no correction) |" in out and "| NON |" not in out
    assert not (tmp_path / "seed0").exists() and (tmp_path / "table1.md").exists()


def test_the_paper_plans_are_the_authors_settings_and_the_cpu_plans_cut_only_net_and_epochs():
    assert modes(PLANS["paper"]) == ["NON", "SOL_4", "PRE"] and modes(PLANS["wake-paper"]) == ["NON", "SOL_32", "PRE"]
    paper, cpu = PLANS["paper"], PLANS["cpu"]
    assert (paper.epochs, paper.batch, paper.lr, paper.pre_epochs, paper.pre_batch, paper.pre_lr) == \
        (100, 5, 1e-4, 400, 32, 1e-3)
    assert (paper.features, paper.blocks, paper.kernel, paper.zero_output) == (32, 5, 5, False)
    cut = {"epochs", "pre_epochs", "look_aheads", "sip_look_aheads", "features", "blocks", "kernel", "zero_output",
           "checkpoint_from"}                                      # the last: memory only, no recomputation
    for name, base in (("cpu", "paper"), ("wake-cpu", "wake-paper")):
        a, b = PLANS[name], PLANS[base]
        assert {f for f in a.__dataclass_fields__ if getattr(a, f) != getattr(b, f)} <= cut


def test_pre_follows_the_authors_learning_rate_steps():
    plan = PLANS["paper"]
    rates = [sil.pre_learning_rate(plan, e) for e in (1, 80, 81, 121, 161, 181, 400)]
    assert rates == pytest.approx([1e-3, 1e-3, 1e-4, 1e-5, 1e-6, 5e-7, 5e-7])
    assert sil.pre_learning_rate(PLANS["cpu"], 50) == 1e-3


def test_trained_only_tables_what_is_trained_and_marks_the_rest(quick, tmp_path, cli):
    out = copy_of(quick, tmp_path)
    (out / "seed0" / "PRE.pt").unlink()                      # PRE of seed 0 not trained yet; seed 1 nothing
    lines = []
    table = run_table(out, "quick", seeds=(0, 1), log=lines.append, train=False)
    assert not any("trained," in line for line in lines) and not (out / "seed1").exists()
    assert not (out / "seed0" / "PRE.pt").exists()
    assert table["mae"]["0"].keys() == {"NON", "SOL_3", "SIP_3"} and "1" not in table["mae"]
    text = table_markdown(table)
    non = sum(table["mae"]["0"]["NON"]) / len(table["mae"]["0"]["NON"])
    assert f"| NON | {non:.3f} +- " in text and f"| {non:.3f} / - |" in text
    assert "| PRE | - | - / - | - |" in text and "Interim: '-' marks a seed" in text
    code, printed, _ = cli("solver-in-the-loop", "--plan", "quick", "--seeds", "0,1", "--trained-only", "--quiet",
                           "--out", str(out))
    assert code == 0 and "| SOL_3 |" in printed and not (out / "seed1").exists()
