"""tangentprop-bench: n-TangentProp against nested autograd, rows and speed-ups of one run."""
import pytest

from physopt.timing import tangentprop


def test_rows_agree_across_methods_and_slow_orders_are_skipped():
    rows = tangentprop.run(orders=(1, 3), width=8, depth=2, batch=8, repeats=1, isolate=False)
    assert [(r["order"], r["method"]) for r in rows] == [(n, m) for n in (1, 3) for m in tangentprop.METHODS]
    for n in (1, 3):
        losses = [r["loss"] for r in rows if r["order"] == n]
        assert max(losses) - min(losses) <= 1e-5 * max(losses)
    assert len(tangentprop.ratios(rows)) == 4
    assert "autograd/recurrence" in tangentprop.format_rows(rows)
    skipped = tangentprop.run(orders=(1, 2), width=4, depth=1, batch=4, methods=["autograd"], repeats=1,
                              max_step_s=0.0, isolate=False)
    assert skipped[0]["step_s"] is not None and skipped[1]["note"].startswith("skipped")
    with pytest.raises(ValueError, match="unknown method"):
        tangentprop.run(orders=(1,), methods=["zcs"])
    with pytest.raises(ValueError, match="orders >= 1"):
        tangentprop.run(orders=(0, 1))


def test_each_method_and_order_runs_in_a_fresh_process_from_the_same_weights():
    rows = tangentprop.run(orders=(2,), width=4, depth=1, batch=4, repeats=1)
    assert [r["method"] for r in rows] == list(tangentprop.METHODS) and all(r["note"] is None for r in rows)
    in_process = tangentprop.run(orders=(2,), width=4, depth=1, batch=4, repeats=1, isolate=False)
    assert [r["loss"] for r in rows] == pytest.approx([r["loss"] for r in in_process], rel=1e-6)
    assert all(q["agrees"] for q in tangentprop.ratios(rows))


def test_a_route_whose_loss_differs_from_autograd_gets_no_speed_up():
    rows = tangentprop.run(orders=(1,), width=4, depth=1, batch=4, repeats=1, isolate=False)
    rows[0]["loss"] *= 1.01                                    # recurrence: a wrong jet
    recurrence, faa_di_bruno = tangentprop.ratios(rows)
    assert not recurrence["agrees"] and recurrence["speedup"] is None and faa_di_bruno["agrees"]
    assert "autograd/recurrence    no speed-up: its loss differs from autograd's by 0.01 relative" in \
        tangentprop.format_rows(rows)


def test_quick_subcommand_writes_its_table(tmp_path, cli):
    code, out, _ = cli("tangentprop-bench", "--quick", "--out", str(tmp_path))
    assert code == 0 and "speed-up" in out and (tmp_path / "timing.txt").exists()
    code, _, err = cli("tangentprop-bench", "--quick", "--orders", "1-9", "--out", str(tmp_path))
    assert code == 2 and "--quick sets the sizes itself; drop --orders or drop --quick" in err
