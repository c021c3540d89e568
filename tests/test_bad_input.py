"""Bad input, one table per entry point (the way torch tests its optimizers' error inputs): each case names the
error type and the words its one-line message must contain. CLI cases exit with code 2 and print no traceback;
nothing trains and nothing is written before the error."""
import math
import subprocess
import sys

import pytest
import torch
from torch import nn

import physopt
from problems import ProblemError, get_problem


def physics(x, *args):
    return x * torch.tensor([1.0, 0.01])


def loss(y, target):
    return 0.5 * (y - target).pow(2).sum(-1)


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 2))


API_CASES = [
    # (what, call, error type, words in the message)
    ("SIP lr 0", lambda: physopt.SIP(net().parameters(), inverse=lambda x: x, lr=0.0), ValueError, "Invalid lr: 0.0"),
    ("SIP lr nan", lambda: physopt.SIP(net().parameters(), inverse=lambda x: x, lr=math.nan), ValueError,
     "Invalid lr: nan"),
    ("SIP inverse not callable", lambda: physopt.SIP(net().parameters(), inverse="newton"), TypeError, "callable"),
    ("SIP base an instance", lambda: physopt.SIP(net().parameters(), inverse=lambda x: x,
                                                 base=torch.optim.Adam(net().parameters())), TypeError,
     "Optimizer class"),
    ("SIP reduction", lambda: physopt.SIP(net().parameters(), inverse=lambda x: x, reduction="max"), ValueError,
     "Invalid reduction: 'max'; choose one of 'mean', 'sum'"),
    ("HIG given parameters", lambda: physopt.HIG(net().parameters(), physics, loss), TypeError, "nn.Module"),
    ("HIG lr -1", lambda: physopt.HIG(net(), physics, loss, lr=-1), ValueError, "Invalid lr: -1"),
    ("HIG truncation 1", lambda: physopt.HIG(net(), physics, loss, truncation=1.0), ValueError,
     "Invalid truncation: 1.0; it must be a finite number >= 0 and < 1"),
    ("HIG kappa nan", lambda: physopt.HIG(net(), physics, loss, kappa=math.nan), ValueError, "Invalid kappa: nan"),
    ("HIG route", lambda: physopt.HIG(net(), physics, loss, route="qr"), ValueError, "Invalid route: 'qr'"),
    ("HIG memory_bound", lambda: physopt.HIG(net(), physics, loss, memory_bound=0), ValueError,
     "Invalid memory_bound: 0"),
    ("HIG chunk_size", lambda: physopt.HIG(net(), physics, loss, chunk_size=1.5), ValueError,
     "Invalid chunk_size: 1.5"),
    ("HIG max_loss_increase", lambda: physopt.HIG(net(), physics, loss, max_loss_increase=0.5), ValueError,
     "Invalid max_loss_increase: 0.5; it must be a finite number >= 1 or None"),
    ("GaussNewton lr", lambda: physopt.GaussNewton(net(), physics, loss, lr=math.inf), ValueError, "Invalid lr: inf"),
    ("half_inverse kappa", lambda: physopt.half_inverse(torch.eye(2), torch.ones(2), kappa=math.nan), ValueError,
     "Invalid kappa"),
    ("half_inverse shapes", lambda: physopt.half_inverse(torch.eye(2), torch.ones(3)), ValueError, "shape"),
    ("NewtonUpdate physics", lambda: physopt.NewtonUpdate(3), TypeError, "callable"),
    ("NewtonUpdate max_step", lambda: physopt.NewtonUpdate(torch.exp, max_step=0), ValueError,
     "Invalid max_step: 0; it must be a finite number > 0 or None"),
    ("GaussNewtonUpdate damping", lambda: physopt.GaussNewtonUpdate(torch.exp, damping=-1), ValueError,
     "Invalid damping: -1"),
    ("GaussNewtonUpdate max_iterations", lambda: physopt.GaussNewtonUpdate(torch.exp, max_iterations=2.5),
     ValueError, "Invalid max_iterations: 2.5; it must be an integer >= 1"),
    ("GaussNewtonUpdate target shape", lambda: physopt.GaussNewtonUpdate(torch.sin)(torch.zeros(2, 3),
                                                                                   torch.zeros(2, 4)),
     ValueError, "target"),
    ("get_problem name", lambda: get_problem("poison"), ValueError, "Did you mean 'poisson'?"),
    ("get_problem field", lambda: get_problem("poisson", resolutoin=8), ProblemError, "unknown config field"),
    ("get_problem resolution 0", lambda: get_problem("poisson", resolution=0), ProblemError,
     "resolution must be an integer >= 1, got 0 (a field of PoissonConfig)"),
    ("get_problem resolution 2.5", lambda: get_problem("poisson", resolution=2.5), ProblemError,
     "must be an integer >= 1, got 2.5"),
    ("get_problem dx 0", lambda: get_problem("heat", dx=0.0), ProblemError, "dx must be a finite number > 0, got 0.0 (a field of HeatConfig)"),
    ("get_problem dt nan", lambda: get_problem("oscillators", dt=math.nan), ProblemError, "finite"),
    ("sample 0", lambda: get_problem("poisson", resolution=8).sample(0), ProblemError,
     "sample() takes an integer batch size >= 1, got 0"),
    ("sample 2.5", lambda: get_problem("exp").sample(2.5), ProblemError, "integer batch size >= 1, got 2.5"),
    ("sample generator", lambda: get_problem("heat", resolution=8).sample(2, "abc"), ProblemError,
     "takes a torch.Generator"),
    ("hig_direction chunk_size", lambda: physopt.hig_direction(net(), torch.ones(3, 2), physics, loss, torch.ones(3, 2),
                                                               chunk_size=0), ValueError, "Invalid chunk_size: 0"),
    ("hig_direction dtype", lambda: physopt.hig_direction(net(), torch.ones(3, 2), physics, loss, torch.ones(3, 2),
                                                          dtype=torch.float16), ValueError, "Invalid dtype"),
    ("hig_direction empty batch", lambda: physopt.hig_direction(net(), torch.ones(0, 2), physics, loss,
                                                                torch.ones(0, 2)), ValueError,
     "at least one example"),
    ("half_inverse overflow", lambda: physopt.half_inverse(torch.tensor([[1.0, 0], [0, 1e-100]], dtype=torch.float64),
                                                           torch.ones(2, dtype=torch.float64), kappa=-5,
                                                           truncation=0), physopt.HalfInversionError, "overflowed"),
    ("get_problem hidden", lambda: get_problem("poisson-hig", hidden=(64, 0)), ProblemError, ">= 1, got 0"),
]


@pytest.mark.parametrize("what, call, error, words", API_CASES, ids=[c[0] for c in API_CASES])
def test_the_api_refuses_bad_input_with_a_clear_message(what, call, error, words):
    with pytest.raises(error) as caught:
        call()
    assert words in str(caught.value)


CLI_CASES = [
    # (argv, words in the one-line error)
    (["compare", "poison", "--iterations", "1"], "Did you mean 'poisson'?"),
    (["compare", "exp", "--iterations", "1", "--optimizers", "adamw"], "unknown optimizer 'adamw'"),
    (["compare", "exp", "--iterations", "1", "--hparam", "adam.lrr=1", "--optimizers", "adam"],
     "unexpected keyword argument 'lrr'"),
    (["compare", "exp", "--iterations", "1", "--hparam", "adam.lr=abc", "--optimizers", "adam"], "Invalid lr: 'abc'"),
    (["compare", "exp", "--iterations", "1", "--optimizers", "adam", "--hparam", "sip.lr=1"],
     "not among the optimizers compared here"),
    (["compare", "exp", "--iterations", "1", "--seeds", "0,0"], "seeds must be distinct"),
    (["compare", "exp", "--iterations", "1", "--optimizers", "adam,adam"], "optimizers must be distinct"),
    (["compare", "exp", "--iterations", "0"], "--iterations"),
    (["compare", "exp", "--time-budget", "inf"], "must be a finite number > 0"),
    (["compare", "exp", "--iterations", "1", "--evaluations", "0"], "--evaluations"),
    (["compare", "poisson", "--iterations", "1", "--param", "resolution=0"], "must be an integer >= 1, got 0"),
    (["compare", "poisson", "--iterations", "1", "--param", "resolution=-3"], "must be an integer >= 1, got -3"),
    (["compare", "poisson", "--iterations", "1", "--param", "resolution=2.5"], "must be an integer >= 1, got 2.5"),
    (["compare", "poisson", "--iterations", "1", "--param", "resolution=abc"], "takes a number, got 'abc'"),
    (["compare", "exp", "--iterations", "1", "--device", "gpu"], "is not a device"),
    (["compare", "exp", "--iterations", "1", "--device", "meta"], "is not a device physopt trains on"),
    (["compare", "exp", "--iterations", "1", "--device", "cpu:5"], "is not a device physopt trains on"),
    (["compare", "exp", "--iterations", "1", "--optimizers", ",,,"], "is empty"),
    (["compare", "exp", "--iterations", "1", "--preset", ""], "unknown preset"),
    (["bench", "--preset", "quick", "--problems", ",,"], "is empty"),
    (["compare", "oscillators", "--iterations", "1", "--optimizers", "hig", "--hparam", "hig.memory_bound=10"],
     "more than memory_bound"),
    (["compare", "exp", "--iterations", "1", "--out", "{file}"], "is a file, not a directory"),
    (["bench", "--preset", "quick", "--problems", "exp", "--out", ""], "give --out a directory"),
    (["bench", "--preset", "tiny"], "unknown preset"),
    (["bench", "--preset", "quick", "--problems", "poison"], "Did you mean 'poisson'?"),
    (["tune", "exp", "--optimizer", "adam", "--lrs", "-1", "--iterations", "1", "--out", ""], "Invalid lr: -1.0"),
    (["tune", "exp", "--optimizer", "adam", "--lrs", "1e-3", "--out", ""], "give --iterations"),
    (["report", "{missing}"], "is not a directory"),
    (["report", "{empty}"], "holds no summary.json"),
    (["speed", "--out", "{file}"], "is a file, not a directory"),
    (["hig-timing", "--setups", "poison"], "Did you mean 'poisson-hig'?"),
    (["zcs-bench", "--engines", "fast"], "unknown engine"),
    (["tangentprop-bench", "--orders", "a-b"], "--orders"),
    (["ns-step-bench", "--batch", "0"], "--batch"),
    (["ns-inference", "--train-iterations", "-1"], "--train-iterations"),
]


def _fill(argv, tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir(exist_ok=True)
    return [a.format(file=tmp_path / "file", missing=tmp_path / "missing", empty=tmp_path / "empty") for a in argv]


@pytest.mark.parametrize("argv, words", CLI_CASES, ids=[" ".join(c[0][:4]) for c in CLI_CASES])
def test_every_command_refuses_bad_input_with_exit_code_2_and_one_line(cli, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(*_fill(argv, tmp_path), "--quiet") if argv[0] in ("compare", "bench", "tune") else \
        cli(*_fill(argv, tmp_path))
    assert code == 2, err
    assert words in err and "Traceback" not in err
    assert not [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]   # nothing trained, nothing written


@pytest.mark.parametrize("argv, words", [CLI_CASES[2], CLI_CASES[10], CLI_CASES[15]], ids=["hparam", "param", "memory"])
def test_the_real_entry_point_prints_one_line_and_no_traceback(tmp_path, argv, words):
    proc = subprocess.run([sys.executable, "-m", "physopt", *_fill(argv, tmp_path), "--quiet"], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("physopt")] and words in proc.stderr
