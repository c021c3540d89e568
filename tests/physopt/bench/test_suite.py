"""bench: every problem at a preset with its canonical optimizers, resumable per run."""


def test_bench_runs_every_problem_and_an_interrupted_bench_resumes(tmp_path, cli):
    out_dir = tmp_path / "results"
    code, out, _ = cli("bench", "--preset", "quick", "--out", str(out_dir), "--quiet")
    assert code == 0
    from problems import list_problems
    for name in list_problems():
        assert (out_dir / "quick-cpu" / name / "summary.json").exists()
        assert f"## quick-cpu/{name} (cpu)" in (out_dir / "README.md").read_text()
    runs = sorted((out_dir / "quick-cpu" / "poisson" / "runs").glob("*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in runs}
    runs[-1].unlink()                                     # as if the bench had been interrupted before this run
    code, _, err = cli("bench", "--preset", "quick", "--problems", "poisson", "--out", str(out_dir))
    assert code == 0 and err.count("already finished") == len(runs) - 1
    assert runs[-1].exists()
    assert all(p.stat().st_mtime_ns == stamps[p] for p in runs[:-1])


def test_bench_checks_every_problems_directory_before_anything_trains(tmp_path, cli):
    out_dir = tmp_path / "bench"
    assert cli("bench", "--preset", "quick", "--problems", "exp", "--out", str(out_dir), "--quiet")[0] == 0
    exp_runs = out_dir / "quick-cpu" / "exp" / "runs"
    bad = next(exp_runs.glob("*.json"))
    bad.write_text("{")
    code, _, err = cli("bench", "--preset", "quick", "--problems", "hig-toy,exp", "--out", str(out_dir), "--quiet")
    assert code == 2 and "is not a complete run file" in err
    assert not (out_dir / "quick-cpu" / "hig-toy").exists()           # hig-toy comes first, yet nothing trained


def test_bench_writes_nowhere_near_the_committed_results_by_default(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("bench", "--preset", "quick", "--problems", "exp", "--quiet")[0] == 0
    assert (tmp_path / "runs" / "bench" / "quick-cpu" / "exp" / "summary.json").exists()
    assert not (tmp_path / "results").exists()
