"""zcs-bench: training steps of ZCS vs FuncLoop vs DataVect on the scaling PDE, varied one size at a time, from the
same weights and data, with the ratios to ZCS of one run."""
import json

import pytest

from physopt.timing import zcs


def test_settings_vary_one_size_at_a_time_around_the_centre_without_duplicates():
    assert zcs.settings((1, 2), (10, 20), (1, 3), (2, 20, 3)) == [
        (1, 20, 3), (2, 20, 3), (2, 10, 3), (2, 20, 1)]


def row(engine, step_s, peak, m=2, n=10, order=1, loss=0.5):
    return {"engine": engine, "m": m, "n": n, "order": order, "step_s": step_s, "peak_bytes": peak,
            "first_loss": loss}


def test_ratios_divide_each_baseline_by_zcs_at_the_same_setting():
    rows = [row("zcs", 0.5, 100), row("funcloop", 2.0, 400), row("datavect", 1.0, None, loss=0.5 * (1 + 1e-5)),
            row("zcs", 1.0, 10, n=20), row("funcloop", None, None, n=20)]      # skipped: no ratio
    assert zcs.ratios(rows) == [
        {"m": 2, "n": 10, "order": 1, "baseline": "funcloop", "rel_diff": 0.0, "agrees": True, "time": 4.0,
         "memory": 4.0},
        {"m": 2, "n": 10, "order": 1, "baseline": "datavect", "rel_diff": pytest.approx(1e-5), "agrees": True,
         "time": 2.0, "memory": None}]
    text = zcs.format_rows(rows)
    assert "M=2   N=10    P=1  funcloop/zcs: time 4x, memory 4x" in text
    assert "datavect/zcs: time 2x, memory -" in text


def test_a_baseline_whose_loss_differs_from_zcs_gets_no_ratio():
    rows = [row("zcs", 0.5, 100), row("funcloop", 2.0, 400, loss=0.6), row("datavect", 1.0, 100)]
    (funcloop, datavect) = zcs.ratios(rows)
    assert not funcloop["agrees"] and funcloop["time"] is None and funcloop["rel_diff"] == pytest.approx(0.2)
    assert datavect["agrees"] and datavect["time"] == 2.0
    text = zcs.format_rows(rows)
    assert "funcloop/zcs: no ratio: its loss differs from ZCS's by 0.2 relative" in text
    assert text == zcs.format_rows(rows)                     # formatting twice (checkpoints) changes nothing


def test_every_engine_starts_from_the_same_weights_and_data_and_slow_settings_are_skipped():
    rows = zcs.run(ms=(1, 2), ns=(4,), ps=(1,), center=(1, 4, 1), repeats=1, isolate=False)
    assert [(r["engine"], r["m"]) for r in rows] == [(e, m) for m in (1, 2) for e in zcs.ENGINE_NAMES]
    for m in (1, 2):
        losses = [r["first_loss"] for r in rows if r["m"] == m]
        assert max(losses) - min(losses) <= 1e-5 * max(losses)
        assert all(r["step_s"] > 0 and r["note"] is None for r in rows)
    skipped = zcs.run(ms=(1, 2), ns=(4,), ps=(1,), center=(1, 4, 1), engines=["zcs"], repeats=1, isolate=False,
                      max_step_s=0.0)
    assert skipped[0]["step_s"] is not None and skipped[1]["step_s"] is None
    assert skipped[1]["note"].startswith("skipped")


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        zcs.run(repeats=0)
    with pytest.raises(ValueError, match="unknown engine"):
        zcs.run(engines=["autograd"])


def test_the_subcommand_writes_its_table(tmp_path, cli):
    code, out, err = cli("zcs-bench", "--ms", "1", "--ns", "4", "--ps", "1", "--center", "1,4,1", "--repeats", "1",
                         "--in-process", "--device", "cpu", "--out", str(tmp_path))
    assert code == 0, err
    assert "ratios to ZCS" in out and (tmp_path / "timing.txt").exists()
    payload = json.loads((tmp_path / "timing.json").read_text())
    assert [r["engine"] for r in payload["rows"]] == list(zcs.ENGINE_NAMES)
    assert [q["baseline"] for q in payload["ratios"]] == ["funcloop", "datavect"]
