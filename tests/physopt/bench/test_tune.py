"""tune: learning rates from short runs on a validation set of their own, recorded."""
import json

import pytest


def test_tune_picks_the_best_learning_rate_and_records_it(tmp_path, cli):
    code, out, _ = cli("tune", "exp", "--optimizer", "adam", "--lrs", "1e-6,1e-2", "--iterations", "60",
                       "--batch-size", "16", "--device", "cpu", "--out", str(tmp_path), "--quiet")
    assert code == 0 and "best lr for adam on exp: 0.01" in out
    assert "physopt compare exp --optimizers adam --hparam adam.lr=0.01" in out     # the suggestion runs as is
    result = json.loads((tmp_path / "exp_adam.json").read_text())
    assert result["best_lr"] == 0.01 and [r["lr"] for r in result["rows"]] == [1e-6, 1e-2]
    assert result["rows"][1]["score"] < result["rows"][0]["score"] and result["command"].startswith("physopt tune")
    assert result["validation_seed"] != 2_147_483_647          # not the held-out set that compare reports


def test_the_settings_a_learning_rate_tuning_held_fixed_are_recorded_and_suggested_with_the_best_rate(tmp_path, cli):
    from physopt.bench.study import settings_from_file
    code, out, err = cli("tune", "exp", "--optimizer", "adam", "--lrs", "1e-3,1e-2", "--hparam",
                         "adam.lr_schedule=cosine", "--iterations", "4", "--batch-size", "8", "--device", "cpu",
                         "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    best = json.loads((tmp_path / "exp_adam.json").read_text())["best_lr"]
    assert f"--hparam adam.lr={best:g} --hparam adam.lr_schedule=cosine)" in out
    assert settings_from_file(tmp_path / "exp_adam.json") == {"adam": {"lr_schedule": "cosine", "lr": best}}


@pytest.mark.parametrize("argv,message", [
    (["tune", "exp", "--optimizer", "adam", "--lrs", "1e-3"], "--iterations"),
    (["tune", "exp", "--optimizer", "adam", "--lrs", "fast", "--iterations", "1"], "comma-separated numbers"),
    (["tune", "exp", "--optimizer", "adam", "--lrs", "-1", "--iterations", "1"],
     "Invalid lr: -1.0; it must be a finite number > 0"),
    (["tune", "exp", "--optimizer", "adamm", "--lrs", "1e-3", "--iterations", "1"], "adam"),
])
def test_tune_bad_input_gets_a_clear_error(cli, argv, message):
    code, _, err = cli(*argv, "--out", "")
    assert code == 2 and message in err


def test_a_shorter_tuning_never_replaces_a_recorded_one_without_force(tmp_path, cli):
    args = ["tune", "exp", "--optimizer", "adam", "--lrs", "1e-3,1e-2", "--iterations", "3", "--out", str(tmp_path),
            "--quiet"]
    assert cli(*args)[0] == 0
    recorded = (tmp_path / "exp_adam.json").read_bytes()
    code, _, err = cli(*[a if a != "3" else "1" for a in args])
    assert code == 2 and "iterations 3 (here 1)" in err and "--force" in err
    assert (tmp_path / "exp_adam.json").read_bytes() == recorded
    assert cli(*[a if a != "3" else "1" for a in args], "--force")[0] == 0
    assert json.loads((tmp_path / "exp_adam.json").read_text())["iterations"] == 1


def test_a_longer_grid_reuses_the_recorded_candidates_and_trains_only_the_new_rates(tmp_path, cli):
    args = ["tune", "exp", "--optimizer", "adam", "--iterations", "3", "--batch-size", "8", "--device", "cpu",
            "--out", str(tmp_path), "--quiet"]
    assert cli(*args, "--lrs", "1e-3,1e-2")[0] == 0
    first = {r["lr"]: r for r in json.loads((tmp_path / "exp_adam.json").read_text())["rows"]}
    code, out, err = cli(*args, "--lrs", "1e-4,1e-3,1e-2")
    assert code == 0, err
    result = json.loads((tmp_path / "exp_adam.json").read_text())
    assert [r["lr"] for r in result["rows"]] == [1e-4, 1e-3, 1e-2] and result["complete"] is True
    for lr in (1e-3, 1e-2):                         # the same rows (a retrained one would differ in its wall time)
        row = next(r for r in result["rows"] if r["lr"] == lr)
        assert row["wall_time_s"] == first[lr]["wall_time_s"] and row["from_commit"] == result["provenance"][
            "git_commit"]
    assert "from_commit" not in result["rows"][0]   # trained by this command
    assert result["best_lr"] == min(result["rows"], key=lambda r: r["score"])["lr"]


def test_a_grid_that_leaves_recorded_rates_out_or_other_settings_are_refused_and_the_file_kept(tmp_path, cli):
    args = ["tune", "exp", "--optimizer", "adam", "--iterations", "2", "--device", "cpu", "--out", str(tmp_path),
            "--quiet"]
    assert cli(*args, "--lrs", "1e-3,1e-2")[0] == 0
    recorded = (tmp_path / "exp_adam.json").read_bytes()
    code, _, err = cli(*args, "--lrs", "1e-2,1e-1")
    assert code == 2 and "lr 0.001, which --lrs leaves out" in err and "--force" in err
    code, _, err = cli(*args, "--lrs", "1e-3,1e-2", "--hparam", "adam.lr_schedule=cosine")
    assert code == 2 and "hyperparameters" in err and "cosine" in err
    code, _, err = cli(*args, "--lrs", "1e-3,1e-2", "--batch-size", "4")
    assert code == 2 and "'batch_size': 4" in err
    assert (tmp_path / "exp_adam.json").read_bytes() == recorded


def test_an_interrupted_tuning_keeps_its_finished_candidates_and_the_same_command_finishes_it(tmp_path, cli,
                                                                                             monkeypatch):
    import physopt.bench.tune as tune_module
    from physopt.bench.study import settings_from_file
    real, calls = tune_module.train_run, []

    def crash_on_the_second(*a, **k):
        calls.append(k["hyperparameters"]["lr"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(tune_module, "train_run", crash_on_the_second)
    args = ["tune", "exp", "--optimizer", "adam", "--lrs", "1e-3,1e-2", "--iterations", "2", "--device", "cpu",
            "--out", str(tmp_path), "--quiet"]
    code, _, err = cli(*args)
    assert code == 130 and "run the same command again to resume" in err
    partial = json.loads((tmp_path / "exp_adam.json").read_text())
    assert partial["complete"] is False and [r["lr"] for r in partial["rows"]] == [1e-3]
    unfinished = (tmp_path / "exp_adam.txt").read_text()
    assert "1 of 2 candidates so far" in unfinished and "best lr so far for adam on exp: 0.001" in unfinished
    assert "physopt compare" not in unfinished              # no rate is suggested before the tuning is finished
    with pytest.raises(ValueError, match="unfinished"):     # its best so far is no tuning result
        settings_from_file(tmp_path / "exp_adam.json")
    code, out, err = cli(*args)
    assert code == 0, err
    assert calls == [1e-3, 1e-2, 1e-2]                       # only the missing rate trained the second time
    assert settings_from_file(tmp_path / "exp_adam.json")["adam"]["lr"] in (1e-3, 1e-2)
