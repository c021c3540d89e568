"""hig-timing: one HIG update per route and Jacobian engine, its parts and the ratios."""
import json


def test_hig_timing_reports_parts_and_route_ratios(tmp_path, cli):
    code, out, err = cli("hig-timing", "--setups", "oscillators", "--routes", "factored,gram,svd",
                         "--repeats", "1", "--out", str(tmp_path))
    assert code == 0, err
    rows = json.loads((tmp_path / "timing.json").read_text())["rows"]
    assert [(r["route"], r["engine"]) for r in rows] == [(r, e) for r in ("factored", "gram", "svd")
                                                         for e in ("vmap", "expand")] + [("adam", "-"), ("eigh", "-")]
    assert all(r["total_s"] > 0 for r in rows) and rows[0]["rows"] == 128 * 4 and rows[0]["weights"] == 2956
    assert "svd/vmap over gram/vmap: total" in out and "factored/vmap over factored/expand: total" in out
    assert (tmp_path / "timing.txt").exists() and rows[-1]["rows"] == 512      # a bare eigh of the Gram size
    assert "whole update over a bare float64 eigh" in out and "factored/expand" in out.split("bare float64 eigh")[1]
    # every update is checked against the most exact one (svd, float64, vmap) in the same run; the float64 routes
    # agree to the float32 network's precision, so their times are compared
    assert [r["reference"] for r in rows[:6]] == ["vmap/svd/float64"] * 6 and rows[4]["rel_diff"] == 0.0
    assert all(r["rel_diff"] < r["tolerance"] == 1e-3 for r in rows[:6])
    code, _, err = cli("hig-timing", "--setups", "oscilators")
    assert code == 2 and "Did you mean 'oscillators'" in err


def test_routes_whose_updates_differ_get_no_ratio():
    from physopt.timing import hig
    rows = [{"setup": "s", "route": route, "engine": "expand", "dtype": "float32", "total_s": 1.0,
             "jacobian_s": 1.0, "decomposition_s": 1.0, "reference": "expand/svd/float32", "tolerance": 1e-3,
             "rel_diff": diff} for route, diff in (("factored", 0.5), ("gram", 1e-4), ("svd", 0.0))]
    by_pair = {(q["slow"], q["fast"]): q for q in hig.ratios(rows)}
    assert by_pair["svd/expand", "gram/expand"]["agrees"] and by_pair["svd/expand", "gram/expand"]["total"] == 1.0
    assert not by_pair["svd/expand", "factored/expand"]["agrees"]
    assert by_pair["svd/expand", "factored/expand"]["total"] is None
    assert ("svd/expand over factored/expand: no ratio: updates differ from expand/svd/float32's by 0, 0.5 "
            "relative") in hig.format_rows(rows)


def test_the_earlier_engine_is_compared_with_each_other_engine_compiled_or_not(cli):
    from physopt.timing import hig
    rows = [{"setup": "s", "route": "factored", "engine": engine, "dtype": "float64", "total_s": total,
             "jacobian_s": total / 2, "decomposition_s": 0.1, "reference": "vmap/svd/float64", "tolerance": 1e-3,
             "rel_diff": 1e-9} for engine, total in (("vmap", 1.0), ("expand", 0.5), ("expand+compile", 0.25))]
    by_pair = {(q["slow"], q["fast"]): q["total"] for q in hig.ratios(rows)}
    assert by_pair["factored/vmap", "factored/expand"] == 2.0
    assert by_pair["factored/vmap", "factored/expand+compile"] == 4.0
    code, _, err = cli("hig-timing", "--setups", "oscillators", "--jacobians", "expand+compiled")
    assert code == 2 and "unknown jacobian engine 'expand+compiled'" in err and "expand+compile" in err


def test_a_compiled_engine_that_fell_back_to_eager_is_said_so():
    from physopt.timing import hig
    rows = [{"setup": "s", "route": "factored", "engine": engine, "dtype": "float64", "total_s": 1.0,
             "jacobian_s": 0.5, "decomposition_s": 0.1, "apply_s": 0.1, "reference": "vmap/svd/float64",
             "tolerance": 1e-3, "rel_diff": 0.0, "eager_fallback": engine.endswith("compile")}
            for engine in ("vmap", "expand+compile")]
    assert "torch.compile failed, these ran eagerly: s factored/expand+compile" in hig.format_rows(rows)
    assert ("float64", "svd", "expand+compile") in hig.REFERENCE_ORDER        # a run of compiled engines only


def test_a_float64_network_is_timed_against_the_float64_tolerance(tmp_path, cli):
    """--network-dtype float64: problem and network in float64, updates compared to 1e-6 (not the float32
    network's 1e-3); the supplied engine is skipped on a problem without a physics Jacobian."""
    code, _, err = cli("hig-timing", "--setups", "oscillators", "--routes", "factored", "--jacobians",
                       "expand,supplied", "--network-dtype", "float64", "--repeats", "1", "--out", str(tmp_path))
    assert code == 0, err
    rows = json.loads((tmp_path / "timing.json").read_text())["rows"]
    assert [(r["route"], r["engine"], r["network_dtype"]) for r in rows[:1]] == [("factored", "expand", "float64")]
    assert rows[0]["tolerance"] == 1e-6 and rows[1]["route"] == "adam" and rows[1]["dtype"] == "float64"
    code, _, err = cli("hig-timing", "--setups", "oscillators", "--network-dtype", "float16")
    assert code == 2 and "network dtype" in err
