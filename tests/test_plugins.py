"""A user's own problem and optimizer, first-class in every command: a separate package declares them through entry
points (a test distribution on PYTHONPATH, found by importlib.metadata as an installed one would be), and a plain
module is named by import path or imported with --import. Each command runs through the real entry point."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PACKAGE = textwrap.dedent('''
    import torch
    import physopt
    from problems import from_functions


    def physics(x):
        return torch.exp(x)


    Ramp = from_functions(
        "ramp", sample=lambda n, g: -4 * torch.rand(n, 1, generator=g, dtype=torch.float64), physics=physics,
        network=lambda: torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)),
        inverse=physopt.NewtonUpdate(physics, max_step=1.0), register_name=False)


    class HalfSGD(torch.optim.SGD):
        """SGD at half the rate: a user's optimizer."""

        def __init__(self, params, lr=1e-2, momentum=0.0):
            super().__init__(params, lr=lr / 2, momentum=momentum)


    Öpt = Äpt = HalfSGD                 # two names that differ only in characters a file name cannot hold
''')


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A directory holding the package `fancyphys` and its distribution metadata with two entry points."""
    site = tmp_path_factory.mktemp("site")
    (site / "fancyphys").mkdir()
    (site / "fancyphys" / "__init__.py").write_text(PACKAGE)
    info = site / "fancyphys-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fancyphys\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[physopt.problems]\nramp = fancyphys:Ramp\n\n"
                                           "[physopt.optimizers]\nhalfsgd = fancyphys:HalfSGD\n")
    return site


def physopt(site: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "physopt", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_an_installed_packages_problem_and_optimizer_work_in_every_command(site, tmp_path):
    listed = physopt(site, tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    assert "ramp " in listed.stdout and "halfsgd" in listed.stdout and "from fancyphys:HalfSGD" in listed.stdout

    compared = physopt(site, tmp_path, "compare", "ramp", "--optimizers", "adam,sip,torch.optim.LBFGS,halfsgd",
                       "--preset", "quick", "--out", "cmp", "--quiet")
    assert compared.returncode == 0, compared.stderr
    assert "derived default: the problem declares no presets" in compared.stdout
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert [r["optimizer"] for r in summary["runs"]] == ["adam", "sip", "torch.optim.LBFGS", "halfsgd"]
    assert len({r["init_checksum"] for r in summary["runs"]}) == 1          # same initial weights for all four
    assert (tmp_path / "cmp" / "runs" / "torch.optim.LBFGS_seed0.json").exists()

    benched = physopt(site, tmp_path, "bench", "--problems", "ramp", "--preset", "quick", "--out", "bench",
                      "--quiet")
    assert benched.returncode == 0, benched.stderr
    assert {r["optimizer"] for r in json.loads(next((tmp_path / "bench").rglob("summary.json")).read_text())[
        "runs"]} == {"adam", "sgd", "sip"}

    speed = physopt(site, tmp_path, "speed", "--problems", "ramp", "--preset", "quick", "--repeats", "1",
                    "--out", "speed", "--quiet")                       # each case in a fresh process
    assert speed.returncode == 0, speed.stderr
    rows = json.loads((tmp_path / "speed" / "speed.json").read_text())["rows"]
    assert [r["optimizer"] for r in rows] == ["adam", "sgd", "sip"] and all(r["step_s"] for r in rows), rows

    report = physopt(site, tmp_path, "report", "cmp")
    assert report.returncode == 0, report.stderr


def test_a_module_is_named_by_import_path_or_imported_and_its_fresh_processes_import_it_too(site, tmp_path):
    (tmp_path / "my_physics.py").write_text(PACKAGE.replace('register_name=False', 'register_name=True'))
    by_path = physopt(site, tmp_path, "compare", "my_physics:Ramp", "--optimizers", "adam,torch.optim.AdamW",
                      "--hparam", "adamw.weight_decay=0.1", "--iterations", "2", "--quiet")
    assert by_path.returncode == 0, by_path.stderr
    speed = physopt(site, tmp_path, "speed", "--import", "my_physics", "--problems", "ramp", "--preset", "quick",
                    "--repeats", "1", "--quiet")
    assert speed.returncode == 0 and "sip" in speed.stdout, speed.stderr


@pytest.mark.parametrize("argv, words", [
    (["compare", "fancyphys:Missing", "--iterations", "1"], "module 'fancyphys' has no attribute 'Missing'"),
    (["compare", "nosuchpkg_xyz.mod:P", "--iterations", "1"], "no module named 'nosuchpkg_xyz'"),
    (["compare", "fancyphys:HalfSGD", "--iterations", "1"], "is the class HalfSGD, not a problems.Problem subclass"),
    (["compare", "ramp", "--optimizers", "fancyphys:Ramp", "--iterations", "1"],
     "not a torch.optim.Optimizer subclass"),
    (["compare", "ramp", "--optimizers", "halfsgd", "--hparam", "halfsgd.nesterov=true", "--iterations", "1"],
     "halfsgd has no setting 'nesterov'. Its settings: lr, momentum"),
    (["list", "--import", "nosuchpkg_xyz"], "--import nosuchpkg_xyz: importing it failed: ModuleNotFoundError"),
    # found by the adversarial probe: each was a traceback, or silently wrong
    (["compare", "ramp", "--optimizers", "torch.optim.LBFGS", "--hparam", "lbfgs.line_search_fn=wolfe",
      "--iterations", "1"], "one trial step on ramp failed: RuntimeError: only 'strong_wolfe' is supported"),
    (["tune", "ramp", "--optimizer", "torch.optim.AdamW", "--hparam", "adamw.lrr=1", "--lrs", "1e-3",
      "--iterations", "1"], "torch.optim.AdamW has no setting 'lrr'. Did you mean 'lr'?"),
    (["compare", "ramp", "--optimizers", "fancyphys:Öpt,fancyphys:Äpt", "--iterations", "1", "--out", "o"],
     "would save their runs to the same file"),
    (["list", "--import", "fancyphys/__init__.py"], "--import takes a module name, not a file path"),
])
def test_bad_plugins_are_one_clear_line_with_exit_code_2(site, tmp_path, argv, words, cli, monkeypatch):
    """In this process (the package's metadata found on sys.path as a subprocess would find it): an uncaught error
    would fail the test with its traceback."""
    import physopt.bench.methods as methods
    from problems import registry
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(registry, "_RESOLVED", {})
    monkeypatch.setattr(methods, "_RESOLVED", {})
    code, _, err = cli(*argv)
    assert code == 2 and words in err, err


def test_entry_points_in_any_case_import_path_keys_in_one_hparam_and_none_values(site, tmp_path):
    result = physopt(site, tmp_path, "compare", "RAMP", "--optimizers", "HalfSGD,fancyphys:HalfSGD,torch.optim.LBFGS",
                     "--hparam", "halfsgd.lr=0.1,fancyphys:HalfSGD.lr=0.2,lbfgs.line_search_fn=none,lbfgs.max_iter=2",
                     "--iterations", "1", "--out", "cmp", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert summary["problem"] == "ramp" and summary["optimizers"] == ["halfsgd", "fancyphys:HalfSGD",
                                                                       "torch.optim.LBFGS"]
    assert summary["hyperparameters"]["fancyphys:HalfSGD"]["lr"] == 0.2
    assert summary["hyperparameters"]["torch.optim.LBFGS"]["line_search_fn"] is None


def test_tune_with_an_import_path_optimizer_writes_one_file_and_never_replaces_it_silently(site, tmp_path):
    first = physopt(site, tmp_path, "tune", "ramp", "--optimizer", "fancyphys:HalfSGD", "--lrs", "1e-3,1e-2",
                    "--iterations", "1", "--out", "tn", "--quiet")
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in (tmp_path / "tn").iterdir()) == ["ramp_fancyphys-HalfSGD.json",
                                                                   "ramp_fancyphys-HalfSGD.txt"]
    other = physopt(site, tmp_path, "tune", "ramp", "--optimizer", "fancyphys:HalfSGD", "--lrs", "1e-3",
                    "--iterations", "1", "--out", "tn", "--quiet")
    assert other.returncode == 2 and "lr 0.01, which --lrs leaves out" in other.stderr, other.stderr


def test_the_console_script_finds_a_module_in_the_current_directory(site, tmp_path):
    """The installed `physopt` script (unlike python -m) does not put the current directory on sys.path."""
    (tmp_path / "my_physics.py").write_text(PACKAGE)
    script = tmp_path / "bin" / "physopt_script.py"
    script.parent.mkdir()
    script.write_text("import sys\nfrom physopt.cli import main\nsys.exit(main())\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]), MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, str(script), "compare", "my_physics:Ramp", "--optimizers", "adam",
                             "--iterations", "1", "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
