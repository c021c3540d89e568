"""tangentprop-bench: n-TangentProp against nested autograd, rows and speed-ups of one run."""
import pytest

from physopt.timing import tangentprop


def test_rows_agree_across_methods_and_slow_orders_are_skipped():
    rows = tangentprop.run(orders=(1, 3), width=8, depth=2, batch=8, repeats=1)
    assert [(r["order"], r["method"]) for r in rows] == [(n, m) for n in (1, 3) for m in tangentprop.METHODS]
    for n in (1, 3):
        losses = [r["loss"] for r in rows if r["order"] == n]
        assert max(losses) - min(losses) <= 1e-5 * max(losses)
    assert len(tangentprop.ratios(rows)) == 4
    assert "autograd/recurrence" in tangentprop.format_rows(rows)
    skipped = tangentprop.run(orders=(1, 2), width=4, depth=1, batch=4, methods=["autograd"], repeats=1,
                              max_step_s=0.0)
    assert skipped[0]["step_s"] is not None and skipped[1]["note"].startswith("skipped")
    with pytest.raises(ValueError, match="unknown method"):
        tangentprop.run(orders=(1,), methods=["zcs"])


def test_quick_subcommand_writes_its_table(tmp_path, cli):
    code, out, _ = cli("tangentprop-bench", "--quick", "--out", str(tmp_path))
    assert code == 0 and "speed-up" in out and (tmp_path / "timing.txt").exists()
