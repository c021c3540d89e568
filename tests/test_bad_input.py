"""Bad input, one table per entry point (the way torch tests its optimizers' error inputs): each case names the
error type and the words its one-line message must contain. CLI cases exit with code 2 and print no traceback;
nothing trains and nothing is written before the error."""
import argparse
import math
import subprocess
import sys

import pytest
import torch
from torch import nn

import physopt
from physopt.bench.train import train_run
from physopt.cli import problem_config
from problems import ProblemError, get_problem


def physics(x, *args):
    return x * torch.tensor([1.0, 0.01])


def loss(y, target):
    return 0.5 * (y - target).pow(2).sum(-1)


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 2))


def _poisson():
    return get_problem("poisson", resolution=8, unet_levels=2)


def _hig_after_train():
    model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).eval()
    opt = physopt.HIG(model, physics, loss)
    model.train()
    return opt.step(torch.ones(3, 2), torch.ones(3, 2))


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
    ("train_run batch too large", lambda: train_run(get_problem("poisson"), "adam", 0, iterations=1,
                                                    batch_size=10 ** 8), ValueError, "lower the batch size"),
    ("train_run seed", lambda: train_run(get_problem("exp"), "adam", 2 ** 64, iterations=1), ValueError,
     "Invalid seed: 18446744073709551616"),
    ("half_inverse integer J", lambda: physopt.half_inverse(torch.eye(2, dtype=torch.int64), torch.ones(2)), TypeError,
     "real floating-point J and g (float32 or float64), got J of dtype torch.int64"),
    ("half_inverse complex J", lambda: physopt.half_inverse(torch.eye(2, dtype=torch.complex64), torch.ones(2)),
     TypeError, "got J of dtype torch.complex64"),
    ("half_inverse float16 g", lambda: physopt.half_inverse(torch.eye(2), torch.ones(2, dtype=torch.float16)),
     TypeError, "got g of dtype torch.float16"),
    ("half_inverse dtype", lambda: physopt.half_inverse(torch.eye(2), torch.ones(2), dtype=torch.int32), ValueError,
     "Invalid dtype: torch.int32"),
    ("per_example_jacobian empty batch", lambda: physopt.per_example_jacobian(net(), torch.ones(0, 2), physics),
     ValueError, "an empty batch"),
    ("NewtonUpdate empty batch", lambda: physopt.NewtonUpdate(torch.exp)(torch.zeros(0, 3), torch.zeros(0, 3)),
     ValueError, "NewtonUpdate got an empty batch"),
    ("GaussNewtonUpdate empty batch", lambda: physopt.GaussNewtonUpdate(torch.exp)(torch.zeros(0, 3),
                                                                                   torch.zeros(0, 3)),
     ValueError, "GaussNewtonUpdate got an empty batch"),
    ("HIG input dtype", lambda: physopt.HIG(net(), physics, loss).step(torch.ones(3, 2, dtype=torch.float64),
                                                                       torch.ones(3, 2)), ValueError,
     "inputs have dtype torch.float64 but the model's parameters torch.float32"),
    ("GaussNewton input device", lambda: physopt.GaussNewton(net(), physics, loss).step(torch.ones(3, 2, device="meta"),
                                                                                        torch.ones(3, 2)),
     ValueError, "inputs are on meta but the model's parameters on cpu"),
    ("HIG BatchNorm", lambda: physopt.HIG(nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)), physics,
                                          loss), ValueError, "call model.eval() or use GroupNorm/LayerNorm"),
    ("HIG BatchNorm back in training", lambda: _hig_after_train(), ValueError, "batch-independent layers"),
    ("forward integer x", lambda: get_problem("poisson", resolution=8).forward(torch.ones(2, 8, 8, dtype=torch.long)),
     ProblemError, "floating-point x, got dtype torch.int64"),
    ("forward device", lambda: _poisson().forward(torch.ones(2, 8, 8, device="meta"), _poisson().sample(2)),
     ProblemError, "x is on meta but the batch on cpu"),
    ("loss without batch", lambda: _poisson().loss(torch.ones(2, 8, 8), None), TypeError,
     "loss() needs the Batch the data came in (from problem.sample(...)), got NoneType"),
    ("metrics without batch", lambda: _poisson().metrics(torch.ones(2, 8, 8), None), TypeError,
     "metrics() needs the Batch"),
    ("inverse_update without batch", lambda: _poisson().inverse_update(torch.ones(2, 8, 8), None), TypeError,
     "inverse_update() needs the Batch"),
    ("navier-stokes loss without batch", lambda: get_problem("navier-stokes").loss(torch.ones(2, 64, 64), None),
     TypeError, "loss() needs the Batch"),
    ("loss y shape", lambda: _poisson().loss(torch.ones(2, 3), _poisson().sample(2)), ProblemError,
     "got y of shape (2, 3), but the batch's target has shape (2, 8, 8)"),
    ("NewtonUpdate target shape", lambda: physopt.NewtonUpdate(torch.sin)(torch.zeros(2, 3), torch.zeros(2, 4)),
     ValueError, "its target y* has shape (4,)"),
    ("NewtonUpdate target batch", lambda: physopt.NewtonUpdate(torch.sin)(torch.zeros(2, 3), torch.zeros(3, 3)),
     ValueError, "the same number of examples"),
    ("SIP target shape", lambda: physopt.SIP(net().parameters(), inverse=physopt.NewtonUpdate(torch.sin)).step(
        net()(torch.ones(3, 2)), torch.ones(3, 5)), ValueError, "its target y* has shape (5,)"),
    ("get_problem x_low > x_high", lambda: get_problem("exp", x_low=1.0), ProblemError,
     "x_low must be <= x_high, got x_low=1.0 > x_high=0.0"),
    ("get_problem rectangles", lambda: get_problem("heat", min_rectangles=12), ProblemError,
     "min_rectangles must be <= max_rectangles"),
    ("get_problem heat resolution 1", lambda: get_problem("heat", resolution=1), ProblemError,
     "resolution must be >= 2 (a grid of 1 cell has no interior), got 1"),
    ("get_problem bool text", lambda: get_problem("navier-stokes", conserve_mass="maybe"), ProblemError,
     "takes true or false (or 1/0), got 'maybe'"),
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
    (["compare", "poisson", "--iterations", "1", "--optimizers", "adam", "--batch-size", "100000000"],
     "lower the batch size (--batch-size)"),
    (["compare", "exp", "--iterations", "1", "--optimizers", "adam", "--hparam", "adam.betas=5"],
     "Invalid betas: 5; it must be two numbers >= 0 and < 1, e.g. --hparam adam.betas=0.9,0.999"),
    (["compare", "exp", "--iterations", "1", "--optimizers", "sgd", "--hparam", "sgd.nesterov=2"],
     "Invalid nesterov: 2; it must be true or false"),
    (["compare", "oscillators", "--iterations", "1", "--param", "coupling=1,abc"],
     "coupling of OscillatorsConfig takes a number, got 'abc'"),
    (["compare", "navier-stokes", "--iterations", "1", "--param", "conserve_mass=maybe"],
     "takes true or false (or 1/0), got 'maybe'"),
    (["compare", "exp", "--iterations", "1", "--param", "x_low=1"], "x_low must be <= x_high"),
    (["compare", "heat", "--iterations", "1", "--param", "resolution=1"], "resolution must be >= 2"),
    (["compare", "exp", "--iterations", "1", "--seeds", "99999999999999999999"], "Invalid seed: 99999999999999999999"),
    (["tune", "exp", "--optimizer", "adam", "--lrs", "1e-3", "--iterations", "1", "--seed", "-1", "--out", ""],
     "Invalid seed: -1"),
    (["tune", "exp", "--optimizer", "adam", "--lrs", "1e-3,1e-3", "--iterations", "1", "--out", ""],
     "the learning rates must be distinct, got [0.001] more than once"),
    (["compare", "poisson", "--iterations", "1", "--param", "resolution=8", "--param", "resolution=16"],
     "--param resolution is given twice"),
    (["compare", "exp", "--iterations", "1", "--optimizers", "adam", "--hparam", "adam.lr=1e-3",
      "--hparam", "adam.lr=1e-2"], "--hparam adam.lr is given twice"),
    (["report", ""], "the results directory is empty"),
    (["compare", "poisson", "--iterations", "1", "--optimizers", "hig", "--param", "resolution=16"],
     "hig cannot train the default network of poisson: per-example Jacobians need batch-independent layers"),
    (["zcs-bench", "--quick", "--ms", "5"], "--quick sets the sizes itself; drop --ms or drop --quick"),
    (["tangentprop-bench", "--quick", "--orders", "1-9", "--width=8"],
     "--quick sets the sizes itself; drop --orders, --width or drop --quick"),
    (["tangentprop-bench", "--orders", "0-3"], "--orders (like 1-9 or 1,2,6,9)"),
    (["zcs-bench", "--ps", "0,1"], "--ps"),
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


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "sip", "hig", "gn"])
def test_a_learning_rate_too_large_for_the_weights_dtype_is_a_diverged_run(optimizer):
    run = train_run(get_problem("exp"), optimizer, 0, iterations=2, batch_size=4, evaluations=1,
                    hyperparameters={"lr": 1e300})
    assert run.status.startswith("diverged") and "dtype" in run.status and run.iterations == 0
    assert all(math.isfinite(v) for v in run.final.values() if v is not None)


def test_param_values_are_parsed_by_the_field_type():
    args = argparse.Namespace(param=["coupling=1,2", "n_masses=2,alpha=0.5"])
    assert get_problem("oscillators", **problem_config(args)).config.coupling == (1.0, 2.0)
    args = argparse.Namespace(param=["conserve_mass=false,preserve_energy=0"])
    config = get_problem("navier-stokes", **problem_config(args)).config
    assert config.conserve_mass is False and config.preserve_energy is False
