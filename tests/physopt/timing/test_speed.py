"""speed: time per iteration and peak memory per optimizer as ratios to Adam."""
import json

import pytest


def test_speed_table_gives_time_and_memory_ratios_to_adam(tmp_path, cli):
    code, out, _ = cli("speed", "--preset", "quick", "--problems", "exp", "--repeats", "1",
                       "--out", str(tmp_path), "--quiet")
    assert code == 0 and "vs adam" in out
    rows = json.loads((tmp_path / "speed.json").read_text())["rows"]
    assert [r["optimizer"] for r in rows] == ["adam", "sgd", "sip"]
    assert rows[0]["time_vs_adam"] == 1.0 and all(r["step_s"] > 0 and r["note"] is None for r in rows)
    assert all(r["time_vs_adam"] == pytest.approx(r["step_s"] / rows[0]["step_s"]) for r in rows)
    code, out, _ = cli("speed", "--preset", "quick", "--problems", "poisson", "--repeats", "1",
                       "--in-process", "--quiet")
    assert code == 0 and "poisson" in out and "sip" in out


def test_threads_times_every_optimizer_at_each_count_with_ratios_at_the_same_count(tmp_path, cli):
    code, out, err = cli("speed", "--preset", "quick", "--problems", "exp", "--optimizers", "adam,sgd",
                         "--threads", "1,2", "--hparam", "sgd.momentum=0.9", "--repeats", "1", "--in-process",
                         "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    saved = json.loads((tmp_path / "speed.json").read_text())
    rows = saved["rows"]
    assert [(r["optimizer"], r["threads"]) for r in rows] == [("adam", 1), ("sgd", 1), ("adam", 2), ("sgd", 2)]
    for r in rows:
        adam = next(a for a in rows if a["optimizer"] == "adam" and a["threads"] == r["threads"])
        assert r["time_vs_adam"] == pytest.approx(r["step_s"] / adam["step_s"])
    assert saved["hyperparameters"] == {"sgd": {"momentum": 0.9}} and "threads" in out


@pytest.mark.parametrize("args, message", [
    (("--threads", "0"), "--threads"),
    (("--optimizers", "adam", "--hparam", "sgd.lr=1"), "does not time"),
    (("--optimizers", "adam", "--hparam", "adam.lrr=1"), "lrr"),
    (("--optimizers", "adma"), "adma"),
])
def test_bad_speed_options_fail_before_anything_is_timed(cli, args, message):
    code, _, err = cli("speed", "--preset", "quick", "--problems", "exp", "--repeats", "1", "--quiet", *args)
    assert code == 2 and message in err
