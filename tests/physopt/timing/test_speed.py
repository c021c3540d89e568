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
