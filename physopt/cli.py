"""The ``physopt`` command: list problems and optimizers, compare optimizers on a problem."""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any, Sequence

import torch

from .names import UnknownNameError


def _parse_pairs(items: Sequence[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise ValueError(f"{what} must look like KEY=VALUE, got '{part}'")
            k, v = part.split("=", 1)
            pairs[k.strip()] = v.strip()
    return pairs


def _number(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def _hparams(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in _parse_pairs(items, "--hparam").items():
        if "." not in key:
            raise ValueError(f"--hparam keys look like OPTIMIZER.NAME (e.g. adam.lr=3e-4), got '{key}'")
        opt, name = key.split(".", 1)
        out.setdefault(opt.strip().lower(), {})[name] = _number(value)
    return out


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got '{text}'") from None
    if not seeds:
        raise ValueError("--seeds is empty")
    return seeds


def cmd_list(args: argparse.Namespace) -> int:
    from problems import PROBLEMS
    from .bench.methods import METHODS
    print("problems:")
    for name in sorted(PROBLEMS):
        cls = PROBLEMS[name]
        inv = "SIP update" if cls.defines_inverse() else "no inverse"
        print(f"  {name:<14} {cls.description}  [{inv}; batch {cls.default_batch_size}]")
    print("optimizers:")
    for name, m in METHODS.items():
        print(f"  {name:<14} {m.description}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from problems import get_problem
    from .bench.compare import compare, default_progress, format_table, resolve_device

    config = {k: _number(v) for k, v in _parse_pairs(args.param, "--param").items()}
    seeds = _seeds(args.seeds) if args.seeds is not None else [0]
    evaluations = args.evaluations if args.evaluations is not None else 30
    if args.preset:
        from problems.presets import get_preset
        preset = get_preset(args.problem, args.preset)
        if args.iterations is None and args.time_budget is None:
            args.iterations, args.time_budget = preset.iterations, preset.time_budget
        args.batch_size = args.batch_size if args.batch_size is not None else preset.batch_size
        seeds = seeds if args.seeds is not None else list(preset.seeds)
        evaluations = evaluations if args.evaluations is not None else preset.evaluations
        config = {**preset.config, **config}
        length = (f"{args.iterations} iterations" if args.iterations else "") + \
            (f" {args.time_budget:g} s" if args.time_budget else "")
        print(f"preset '{args.preset}': {length.strip()} per run, seeds {seeds}, batch "
              f"{args.batch_size or 'of the paper per optimizer'}, config {config or 'the paper defaults'}")
    if args.iterations is None and args.time_budget is None:
        raise ValueError("give --iterations N or --time-budget SECONDS (or both), or --preset quick|standard|paper")
    if args.iterations is not None and args.iterations < 1:
        raise ValueError(f"--iterations must be >= 1, got {args.iterations}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = resolve_device(args.device)
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    problem = get_problem(args.problem, device=device, dtype=dtype, **config)
    optimizers = [o.strip() for o in args.optimizers.split(",") if o.strip()] if args.optimizers \
        else list(problem.default_optimizers)
    command = "physopt " + " ".join(shlex.quote(a) for a in args.argv)
    progress = None if args.quiet else default_progress
    if progress:
        progress(f"physopt compare {problem.name} on {device}: {', '.join(optimizers)}; seeds {seeds}")
    summary = compare(problem, optimizers, seeds=seeds, iterations=args.iterations,
                      time_budget=args.time_budget, batch_size=args.batch_size, hyperparameters=_hparams(args.hparam),
                      out=args.out, resume=not args.fresh, evaluations=evaluations, command=command,
                      progress=progress)
    print(format_table(summary))
    if args.out:
        print(f"wrote {args.out}/summary.json, curves.csv, curves.png")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .bench.report import write_report
    print(f"wrote {write_report(args.results)}")
    return 0


def _names(text: str, allowed: Sequence[str], what: str) -> list[str]:
    from .names import lookup
    return [lookup(what, n.strip(), {a: a for a in allowed}) for n in text.split(",") if n.strip()]


def cmd_hig_timing(args: argparse.Namespace) -> int:
    from .bench import hig_timing
    from .bench.compare import default_progress, resolve_device

    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    rows = hig_timing.run(_names(args.setups, hig_timing.SETUPS, "setup"),
                          _names(args.routes, hig_timing.ROUTES, "route"), args.repeats,
                          str(resolve_device(args.device)), _names(args.dtypes, ("float32", "float64"), "dtype"),
                          out=args.out, command="physopt " + " ".join(shlex.quote(a) for a in args.argv),
                          progress=default_progress)
    print(hig_timing.format_rows(rows))
    if args.out:
        print(f"wrote {args.out}/timing.json, timing.txt")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench.compare import default_progress, format_table, resolve_device
    from .bench.suite import run_bench

    problems = [p.strip() for p in args.problems.split(",") if p.strip()] if args.problems else None
    summaries = run_bench(args.preset, problems, seeds=_seeds(args.seeds) if args.seeds else None,
                          device=resolve_device(args.device), out=args.out, resume=not args.fresh,
                          command="physopt " + " ".join(shlex.quote(a) for a in args.argv),
                          progress=None if args.quiet else default_progress)
    for summary in summaries:
        print(format_table(summary) + "\n")
    print(f"wrote {args.out}/README.md")
    return 0


def cmd_speed(args: argparse.Namespace) -> int:
    from .bench.compare import default_progress, resolve_device
    from .bench.speed import format_speed, run_speed

    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    problems = [p.strip() for p in args.problems.split(",") if p.strip()] if args.problems else None
    rows = run_speed(problems, args.preset, args.repeats, resolve_device(args.device), args.out or None,
                     command="physopt " + " ".join(shlex.quote(a) for a in args.argv),
                     progress=None if args.quiet else default_progress, isolated=not args.in_process)
    print(format_speed(rows))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from problems import get_problem
    from .bench.compare import default_progress, resolve_device
    from .bench.tune import format_tuning, tune, write_tuning

    if args.iterations is None and args.time_budget is None:
        raise ValueError("give --iterations N or --time-budget SECONDS (or both)")
    try:
        lrs = [float(v) for v in args.lrs.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--lrs must be comma-separated numbers, e.g. 1e-4,3e-4,1e-3; got '{args.lrs}'") from None
    device = resolve_device(args.device)
    config = {k: _number(v) for k, v in _parse_pairs(args.param, "--param").items()}
    problem = get_problem(args.problem, device=device, **config)
    hparams = _hparams(args.hparam).get(args.optimizer.lower(), {})
    result = tune(problem, args.optimizer.lower(), lrs, iterations=args.iterations, time_budget=args.time_budget,
                  seed=args.seed, batch_size=args.batch_size, hyperparameters=hparams,
                  progress=None if args.quiet else default_progress)
    print(format_tuning(result))
    if args.out:
        print(f"wrote {write_tuning(args.out, result, 'physopt ' + ' '.join(shlex.quote(a) for a in args.argv))}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="physopt", description="Optimizers for networks trained through physics.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list problems and optimizers").set_defaults(func=cmd_list)
    c = sub.add_parser("compare", help="train optimizers on a problem from the same weights and data")
    c.add_argument("problem", help="problem name (see `physopt list`)")
    c.add_argument("--optimizers", default=None, help="comma-separated, e.g. adam,sip (default: the problem's set)")
    c.add_argument("--iterations", type=int, default=None, help="training iterations per run")
    c.add_argument("--time-budget", type=float, default=None, help="training seconds per run")
    c.add_argument("--batch-size", type=int, default=None, help="default: the paper's batch size for the problem")
    c.add_argument("--preset", default=None, help="quick | standard | paper: length, sizes and seeds of the run "
                   "(flags given explicitly override it)")
    c.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 0,1,2 (default 0, or the preset's)")
    c.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    c.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    c.add_argument("--param", action="append", default=[], help="problem config KEY=VALUE, e.g. xi=32 (repeatable)")
    c.add_argument("--hparam", action="append", default=[], help="optimizer setting, e.g. adam.lr=3e-4 (repeatable)")
    c.add_argument("--evaluations", type=int, default=None, help="held-out evaluations per run (curve points; "
                   "default 30)")
    c.add_argument("--out", default=None, help="directory for summary.json, curves.csv, curves.png")
    c.add_argument("--fresh", action="store_true", help="retrain runs already finished in --out")
    c.add_argument("--quiet", action="store_true", help="no progress lines")
    c.set_defaults(func=cmd_compare)
    t = sub.add_parser("hig-timing", help="time one HIG update and its parts per half-inversion route")
    t.add_argument("--setups", default=",".join(("oscillators", "quantum-dipole", "poisson-hig")),
                   help="comma-separated problems (the HIG paper's setups)")
    t.add_argument("--routes", default="factored,gram,svd", help="comma-separated: factored, gram, svd")
    t.add_argument("--dtypes", default="float64", help="decomposition dtypes, e.g. float32,float64")
    t.add_argument("--repeats", type=int, default=3, help="updates timed per route (the median is reported)")
    t.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    t.add_argument("--out", default=None, help="directory for timing.json and timing.txt")
    t.set_defaults(func=cmd_hig_timing)
    from .bench import fluid_bench, tangentprop_bench, zcs_bench
    zcs_bench.register_cli(sub)
    tangentprop_bench.register_cli(sub)
    fluid_bench.register_cli(sub)
    b = sub.add_parser("bench", help="every problem at a preset with its canonical optimizers; resumable")
    b.add_argument("--preset", default="standard", help="quick | standard | paper")
    b.add_argument("--problems", default=None, help="comma-separated (default: all, see `physopt list`)")
    b.add_argument("--seeds", default=None, help="override the preset's seeds, e.g. 0,1,2")
    b.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    b.add_argument("--out", default="results", help="results directory (README.md regenerated there)")
    b.add_argument("--fresh", action="store_true", help="retrain runs already finished")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=cmd_bench)
    v = sub.add_parser("speed", help="time per iteration and peak memory of each optimizer, as ratios to Adam")
    v.add_argument("--problems", default=None, help="comma-separated (default: all)")
    v.add_argument("--preset", default="standard", help="problem sizes and batch of this preset")
    v.add_argument("--repeats", type=int, default=3, help="timed steps after one warm-up (median reported)")
    v.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    v.add_argument("--out", default=None, help="directory for speed.json and speed.txt")
    v.add_argument("--in-process", action="store_true", help="measure in this process (faster; CPU peaks less exact)")
    v.add_argument("--quiet", action="store_true")
    v.set_defaults(func=cmd_speed)
    u = sub.add_parser("tune", help="pick an optimizer's learning rate on short runs from the same weights and data")
    u.add_argument("problem", help="problem name (see `physopt list`)")
    u.add_argument("--optimizer", required=True, help="e.g. adam, sgd, sip, hig")
    u.add_argument("--lrs", required=True, help="comma-separated candidate learning rates, e.g. 1e-4,3e-4,1e-3")
    u.add_argument("--iterations", type=int, default=None, help="training iterations per candidate")
    u.add_argument("--time-budget", type=float, default=None, help="training seconds per candidate")
    u.add_argument("--batch-size", type=int, default=None, help="default: the paper's batch size")
    u.add_argument("--seed", type=int, default=0)
    u.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    u.add_argument("--param", action="append", default=[], help="problem config KEY=VALUE (repeatable)")
    u.add_argument("--hparam", action="append", default=[], help="other settings of the optimizer, e.g. "
                   "hig.truncation=1e-5 (repeatable)")
    u.add_argument("--out", default="results/tune", help="directory for PROBLEM_OPTIMIZER.json/.txt ('' to skip)")
    u.add_argument("--quiet", action="store_true")
    u.set_defaults(func=cmd_tune)
    r = sub.add_parser("report", help="regenerate RESULTS/README.md from the summary.json files under RESULTS")
    r.add_argument("results", nargs="?", default="results")
    r.set_defaults(func=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except (ValueError, UnknownNameError, FloatingPointError) as err:
        print(f"physopt: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
