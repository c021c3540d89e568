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
    code, _, err = cli("hig-timing", "--setups", "oscilators")
    assert code == 2 and "Did you mean 'oscillators'" in err
