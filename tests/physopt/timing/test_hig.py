"""hig-timing: one HIG update per route, its parts and the route ratios."""
import json


def test_hig_timing_reports_parts_and_route_ratios(tmp_path, cli):
    code, out, err = cli("hig-timing", "--setups", "oscillators", "--routes", "factored,gram,svd",
                         "--repeats", "1", "--out", str(tmp_path))
    assert code == 0, err
    rows = json.loads((tmp_path / "timing.json").read_text())["rows"]
    assert [r["route"] for r in rows] == ["factored", "gram", "svd", "adam"]
    assert all(r["total_s"] > 0 for r in rows) and rows[0]["rows"] == 128 * 4 and rows[0]["weights"] == 2956
    assert "svd/gram: total" in out and (tmp_path / "timing.txt").exists()
    # every route's update is checked against the most exact one (svd, float64) in the same run; the float64 routes
    # agree to the float32 network's precision, so their times are compared
    assert [r["reference"] for r in rows[:3]] == ["svd/float64"] * 3 and rows[2]["rel_diff"] == 0.0
    assert all(r["rel_diff"] < r["tolerance"] == 1e-3 for r in rows[:3])
    code, _, err = cli("hig-timing", "--setups", "oscilators")
    assert code == 2 and "Did you mean 'oscillators'" in err


def test_routes_whose_updates_differ_get_no_ratio():
    from physopt.timing import hig
    rows = [{"setup": "s", "route": route, "dtype": "float32", "total_s": 1.0, "decomposition_s": 1.0,
             "reference": "svd/float32", "tolerance": 1e-3, "rel_diff": diff}
            for route, diff in (("factored", 0.5), ("gram", 1e-4), ("svd", 0.0))]
    by_pair = {(q["slow"], q["fast"]): q for q in hig.ratios(rows)}
    assert by_pair["svd", "gram"]["agrees"] and by_pair["svd", "gram"]["total"] == 1.0
    assert not by_pair["svd", "factored"]["agrees"] and by_pair["svd", "factored"]["total"] is None
    assert "svd/factored: no ratio: updates differ from svd/float32's by 0, 0.5 relative" in hig.format_rows(rows)
