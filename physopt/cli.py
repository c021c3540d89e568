"""The ``physopt`` command, all of it: the parser with shared option helpers, and one handler per subcommand.

Building the parser imports neither torch nor the bench (``physopt --help`` is instant); a handler imports what it
needs when it runs. A user error (bad flag value, unknown name, a request the machine cannot serve) ends the command
with exit code 2 and one line on stderr; only a bug shows a traceback.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

PROG = "physopt"
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FloatingPointError)


# ---- values -----------------------------------------------------------------------------------------------------

#: where a list of KEY=VALUE pairs is split: at a comma followed by the next KEY=, so a value may hold commas
_NEXT_PAIR = re.compile(r",(?=\s*[A-Za-z_][\w.:\-]*\s*=)")      # keys may be import paths: mypkg.opt:MyOpt.lr


def _pairs(items: Sequence[str], what: str) -> dict[str, str]:
    """``KEY=VALUE`` pairs (several per item, comma-separated; a value may contain commas, e.g. ``coupling=1,2``);
    a key given twice is refused."""
    pairs: dict[str, str] = {}
    for item in items:
        for part in _NEXT_PAIR.split(item):
            if not part.strip(","):
                continue
            if "=" not in part:
                raise ValueError(f"{what} must look like KEY=VALUE, got '{part}'")
            k, v = part.split("=", 1)
            k, v = k.strip(), v.strip().rstrip(",").strip()
            if k in pairs:
                raise ValueError(f"{what} {k} is given twice ({pairs[k]} and {v}); give each key once")
            pairs[k] = v
    return pairs


def _number(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def _setting(v: str) -> Any:
    """An optimizer setting as typed: true/false -> bool, none -> None, comma-separated numbers -> tuple, else a
    number (or the text, e.g. ``line_search_fn=strong_wolfe``)."""
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    if v.lower() == "none":
        return None
    if "," in v:
        return tuple(_number(p.strip()) for p in v.split(",") if p.strip())
    return _number(v)


def problem_config(args: argparse.Namespace) -> dict[str, Any]:
    """``--param KEY=VALUE`` as problem config overrides; each value stays text, parsed by its field's type
    (:meth:`problems.ProblemConfig.replace`)."""
    return _pairs(args.param, "--param")


def optimizer_settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """``--hparam OPTIMIZER.NAME=VALUE`` as {optimizer: {name: value}}; OPTIMIZER is everything before the last dot
    (a built-in name, an alias such as ``adamw``, or an import path: ``torch.optim.AdamW.weight_decay=0.01``)."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in _pairs(args.hparam, "--hparam").items():
        if "." not in key:
            raise ValueError(f"--hparam keys look like OPTIMIZER.NAME (e.g. adam.lr=3e-4), got '{key}'")
        opt, name = key.rsplit(".", 1)
        settings = out.setdefault(opt.strip().lower(), {})
        if name in settings:
            raise ValueError(f"--hparam {key} is given twice; give each key once")
        settings[name] = _setting(value)
    files = getattr(args, "hparam_file", None) or []
    for file in [files] if isinstance(files, str) else files:
        from .bench.study import settings_from_file
        for opt, values in settings_from_file(file).items():
            settings = out.setdefault(opt.strip().lower(), {})
            twice = sorted(set(settings) & set(values))
            if twice:
                raise ValueError(f"{opt}.{twice[0]} is given twice (by --hparam or another --hparam-file, and by "
                                 f"--hparam-file {file}); give it once")
            settings.update(values)
    return out


def number_list(text: str, what: str, cast: type = float, minimum: float | None = None) -> list:
    """'1,2,3' -> [1, 2, 3] with each value cast and checked (>= ``minimum``)."""
    kind = "integers" if cast is int else "numbers"
    try:
        values = [cast(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated {kind}, e.g. 1,2,3; got '{text}'") from None
    if not values:
        raise ValueError(f"{what} is empty")
    if minimum is not None and min(values) < minimum:
        raise ValueError(f"{what} needs {kind} >= {minimum}, got '{text}'")
    return values


def int_list(text: str, what: str, minimum: int = 1) -> list[int]:
    return number_list(text, what, int, minimum)


def orders(text: str) -> list[int]:
    """'1-9' or '1,2,6,9' (or a mix, '1-3,6') -> the derivative orders, each >= 1."""
    out: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        lo_hi = number_list(f"{lo},{hi or lo}", "--orders (like 1-9 or 1,2,6,9)", int, 1)
        out += range(lo_hi[0], lo_hi[1] + 1)
    if not out:
        raise ValueError(f"--orders is empty, got '{text}'")
    return sorted(set(out))


def count(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def names(text: str | None, allowed: Sequence[str] | None = None, what: str = "name") -> list[str] | None:
    """'a,b' -> ['a', 'b'] (None for None); with ``allowed``, each checked ('did you mean' on a typo)."""
    if text is None:
        return None
    out = [n.strip() for n in text.split(",") if n.strip()]
    if not out:
        raise ValueError(f"the list of {what}s is empty ('{text}'); give comma-separated names, or leave the option "
                         f"out for the default")
    if allowed is not None:
        from .names import lookup
        out = [lookup(what, n, {a: a for a in allowed}) for n in out]
    return out


def resolve_device(device: str = "auto"):
    """``"auto"`` -> CUDA when available, else CPU; otherwise the named device (checked to exist)."""
    import torch
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device '{device}' is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda") or (dev.type == "cpu" and dev.index not in (None, 0)):
        raise ValueError(f"--device '{device}' is not a device physopt trains on; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' was requested but torch sees no CUDA device "
                         f"(torch {torch.__version__}); use --device cpu or auto")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device '{device}': this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def command_line(args: argparse.Namespace) -> str:
    """The command as typed, for the records."""
    return f"{PROG} " + " ".join(shlex.quote(a) for a in args.argv)


def progress_for(args: argparse.Namespace):
    from .bench.progress import terminal_progress
    return terminal_progress(getattr(args, "quiet", False))


def write_micro(args: argparse.Namespace, name: str, device, text: str, payload: dict[str, Any]) -> None:
    """A micro-benchmark's ``--out`` files: NAME.json and NAME.txt with the command and the machine."""
    if args.out:
        from .bench.storage import write_benchmark
        write_benchmark(args.out, name, command_line(args), device, text, payload)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- handlers ---------------------------------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    from problems import PROBLEM_GROUP, list_problems, problem_class
    from problems.registry import registered

    from .bench.methods import list_methods
    from .names import installed_entry_points
    plugins = installed_entry_points(PROBLEM_GROUP)
    print("problems:")
    for name in list_problems():
        try:
            cls = problem_class(name)
        except ValueError as err:                     # a broken installed plug-in: say so, list the others
            print(f"  {name:<14} (cannot be loaded: {err})")
            continue
        inv = "SIP update" if cls.defines_inverse() else "no inverse"
        print(f"  {name:<14} {getattr(cls, 'description', '')}  [{inv}; batch {cls.benchmark.batch_size}]")
        entry = plugins.get(name)
        if entry is not None and registered(name) is not None:          # problem_class finds the registered one
            print(f"  {'':<14} (the entry point '{name}' = {entry.value} is hidden by it: name that by import path)")
    print("optimizers:")
    for name, description in list_methods().items():
        print(f"  {name:<14} {description}")
    print("  (or any torch.optim.Optimizer by import path, e.g. torch.optim.AdamW or mypkg.opt:MyOpt)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import torch
    from problems import get_problem, problem_class

    from .bench.compare import prepare, run_comparisons
    from .bench.methods import canonical_optimizers
    from .bench.summary import format_summary

    problem_class(args.problem)                  # an unknown problem is named before any other complaint
    config = problem_config(args)
    seeds = int_list(args.seeds, "--seeds", 0) if args.seeds is not None else [0]
    evaluations = args.evaluations if args.evaluations is not None else 30
    if args.preset is not None:
        from problems import get_preset
        preset = get_preset(args.problem, args.preset)
        if args.iterations is None and args.time_budget is None:
            args.iterations, args.time_budget = preset.iterations, preset.time_budget
        args.batch_size = args.batch_size if args.batch_size is not None else preset.batch_size
        seeds = seeds if args.seeds is not None else list(preset.seeds)
        evaluations = evaluations if args.evaluations is not None else preset.evaluations
        config = {**preset.config, **config}
        length = (f"{args.iterations} iterations" if args.iterations else "") + \
            (f" {args.time_budget:g} s" if args.time_budget else "")
        derived = " (derived default: the problem declares no presets)" if \
            problem_class(args.problem).benchmark.derived() else ""
        print(f"preset '{args.preset}'{derived}: {length.strip()} per run, seeds {seeds}, batch "
              f"{args.batch_size or 'of the paper per optimizer'}, config {config or 'the paper defaults'}")
    if args.iterations is None and args.time_budget is None:
        raise ValueError("give --iterations N or --time-budget SECONDS (or both), or --preset quick|standard|paper")
    device = resolve_device(args.device)
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    problem = get_problem(args.problem, device=device, dtype=dtype, **config)
    optimizers = names(args.optimizers) or canonical_optimizers(problem)
    comparison = prepare(problem, optimizers, seeds=seeds, iterations=args.iterations,
                         time_budget=args.time_budget, batch_size=args.batch_size,
                         hyperparameters=optimizer_settings(args), out=args.out, resume=not args.fresh,
                         evaluations=evaluations, held_out_size=args.held_out_size, command=command_line(args),
                         force=args.force, keep_stale=args.keep_stale, executor=executor_for(args), nproc=args.nproc)
    progress = progress_for(args)            # every check passed: say what runs
    progress.log(f"physopt compare {problem.name} on {device}: {', '.join(optimizers)}; seeds {seeds}")
    summary = run_comparisons([comparison], progress)[0]
    if summary is None:                         # --slurm-dry-run: nothing trained, nothing written
        return 0
    print(format_summary(summary))
    if args.out:
        print(f"wrote {args.out}/summary.json, curves.csv, curves.png")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench.suite import run_bench
    from .bench.summary import format_summary

    if args.out is None:
        raise ValueError("bench writes every run as it finishes: give --out a directory (default runs/bench)")
    summaries = run_bench(args.preset, names(args.problems),
                          seeds=int_list(args.seeds, "--seeds", 0) if args.seeds else None,
                          device=resolve_device(args.device), out=args.out, resume=not args.fresh,
                          command=command_line(args), progress=progress_for(args), force=args.force,
                          keep_stale=args.keep_stale, executor=executor_for(args))
    if args.executor.strip() == "slurm" and args.slurm_dry_run:
        return 0
    for summary in summaries:
        if summary is not None:
            print(format_summary(summary) + "\n")
    print(f"wrote {args.out}/README.md")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from problems import get_problem

    from .bench.tune import check_tuning_target, format_tuning, tune, tuning_path, tuning_settings, write_tuning

    if args.iterations is None and args.time_budget is None:
        raise ValueError("give --iterations N or --time-budget SECONDS (or both)")
    if args.space:
        return tune_space(args)
    study_only = {"--trials": args.trials, "--sampler": args.sampler, "--pruner": args.pruner,
                  "--evaluations": args.evaluations, "--storage": args.storage, "--study-name": args.study_name,
                  "--timeout": args.timeout, "--executor": args.executor, "--threads": args.threads}
    given = [name for name, value in study_only.items() if value is not None]
    if given:
        raise ValueError(f"{', '.join(given)} apply to --space searches only (--trials, --sampler, --pruner, "
                         f"--evaluations, --storage, --study-name, --timeout, --executor, --threads)")
    lrs = number_list(args.lrs, "--lrs")
    problem = get_problem(args.problem, device=resolve_device(args.device), **problem_config(args))
    from .bench.methods import check_settings, get_method, resolve_hyperparameters, settings_by_method
    method = get_method(args.optimizer)
    optimizer = method.name
    hyperparameters = settings_by_method([method], optimizer_settings(args)).get(optimizer, {})
    if method.needs_inverse and not problem.has_inverse:
        raise ValueError(f"optimizer '{optimizer}' needs an inverse update, which problem '{problem.name}' does not "
                         f"define")
    resolved = resolve_hyperparameters(method, problem, {**hyperparameters, "lr": lrs[0]}, args.batch_size)
    check_settings(method, problem, resolved)
    reuse, save = [], None
    if args.out:
        settings = {**tuning_settings(problem, seed=args.seed, iterations=args.iterations,
                                      time_budget=args.time_budget),
                    "hyperparameters": {k: v for k, v in resolved.items() if k != "lr"}, "lrs": lrs}
        reuse = check_tuning_target(args.out, problem.name, optimizer, settings, force=args.force,
                                    legacy_config=default_config(problem))
        command = command_line(args)
        save = lambda partial: write_tuning(args.out, partial, command)  # noqa: E731  (after every candidate)
    result = tune(problem, optimizer, lrs, iterations=args.iterations, time_budget=args.time_budget,
                  seed=args.seed, batch_size=args.batch_size, hyperparameters=hyperparameters,
                  progress=progress_for(args), reuse=reuse, save=save)
    print(format_tuning(result))
    if args.out:
        print(f"wrote {tuning_path(args.out, problem.name, optimizer)}")
    return 0


def default_config(problem: Any) -> dict[str, Any] | None:
    """The problem's config with no ``--param``: what a tuning file of before configs were recorded was made with
    when its command gave none (None when the config class has no defaults)."""
    import dataclasses
    try:
        return dataclasses.asdict(type(problem.config)())
    except TypeError:
        return None


def tune_space(args: argparse.Namespace) -> int:
    """``physopt tune --space``: a search with Optuna (:mod:`physopt.bench.study`)."""
    from problems import get_problem

    from .bench.methods import check_settings, get_method, resolve_hyperparameters, settings_by_method
    from .bench.storage import write_benchmark
    from .bench.study import format_study, optuna_module, run_study
    from .bench.tune import check_tuning_target, tuning_path

    optuna_module()
    args.executor, args.allow_shared_cores = args.executor or "local:1", False
    if args.executor.strip() == "slurm" and not args.out:
        raise ValueError("tune --executor slurm keeps the study's journal and the tasks' logs in --out: give a "
                         "directory the compute nodes share")
    executor = executor_for(args)
    problem = get_problem(args.problem, device=resolve_device(args.device), **problem_config(args))
    method = get_method(args.optimizer)
    hyperparameters = settings_by_method([method], optimizer_settings(args)).get(method.name, {})
    if method.needs_inverse and not problem.has_inverse:
        raise ValueError(f"optimizer '{method.name}' needs an inverse update, which problem '{problem.name}' does "
                         f"not define")
    check_settings(method, problem, resolve_hyperparameters(method, problem, hyperparameters, args.batch_size))
    executor.check(problem.device, args.time_budget)
    trials, sampler, pruner = args.trials or 20, args.sampler or "tpe", args.pruner or "median"
    if args.out:
        check_tuning_target(args.out, problem.name, method.name,
                            {"seed": args.seed, "iterations": args.iterations, "time_budget_s": args.time_budget,
                             "space": list(args.space), "sampler": sampler, "pruner": pruner, "trials": trials},
                            force=args.force)
    result = run_study(problem, method, args.space, trials=trials, iterations=args.iterations,
                       time_budget=args.time_budget, seed=args.seed, batch_size=args.batch_size,
                       hyperparameters=hyperparameters, sampler=sampler, pruner=pruner, storage=args.storage,
                       study_name=args.study_name, timeout=args.timeout, evaluations=args.evaluations or 10,
                       executor=executor, progress=progress_for(args))
    if result is None:                              # --slurm-dry-run
        return 0
    text = format_study(result)
    print(text)
    if args.out:
        name = tuning_path(args.out, problem.name, method.name).stem
        print(f"wrote {write_benchmark(args.out, name, command_line(args), problem.device, text, result)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .bench.report import BENCHMARK_FILES, MARKDOWN_FILES, write_report
    if not any(next(Path(args.results).rglob(name), None)
               for name in ["summary.json", *BENCHMARK_FILES, *MARKDOWN_FILES]):
        raise ValueError(f"{args.results} holds no summary.json and no benchmark output: nothing to report (run "
                         f"physopt bench or compare with --out {args.results} first)")
    print(f"wrote {write_report(args.results)}")
    return 0


def run_micro(args: argparse.Namespace, name: str, measure: Callable[[Any, Callable[[Any], None]], Any],
              fmt: Callable[[Any], str], payload: Callable[[Any], dict[str, Any]]) -> int:
    """The protocol of every micro-benchmark command: ``measure(device, save)`` runs it (calling ``save(rows)`` as
    parts finish, so an interrupted run keeps them), then its table is printed and ``--out/NAME.json/.txt``
    written with the command and the machine."""
    device = resolve_device(args.device)

    def save(result: Any) -> None:
        write_micro(args, name, device, fmt(result), payload(result))

    result = measure(device, save)
    save(result)
    print(fmt(result))
    return 0


def cmd_speed(args: argparse.Namespace) -> int:
    from .timing.speed import format_speed, run_speed
    threads = number_list(args.threads, "--threads", int, 1) if args.threads else None
    settings = optimizer_settings(args)
    return run_micro(args, "speed", lambda device, save: run_speed(
        names(args.problems), args.preset, args.repeats, device, isolated=not args.in_process,
        progress=progress_for(args), checkpoint=save, optimizers=names(args.optimizers), threads=threads,
        hyperparameters=settings), format_speed,
        lambda rows: {"preset": args.preset, "hyperparameters": settings, "rows": rows})


def cmd_hig_timing(args: argparse.Namespace) -> int:
    from .timing import hig
    setups, routes = names(args.setups, hig.SETUPS, "setup"), names(args.routes, hig.ROUTES, "route")
    dtypes = names(args.dtypes, ("float32", "float64"), "dtype")
    engines = names(args.jacobians, hig.ALL_ENGINES, "jacobian engine")
    network = names(args.network_dtype, ("float32", "float64"), "network dtype")
    if len(network) != 1:
        raise ValueError(f"--network-dtype takes one dtype, got '{args.network_dtype}'")
    return run_micro(args, "timing", lambda device, save: hig.run(setups, routes, args.repeats, device, dtypes,
                                                                  log=log, checkpoint=save, engines=engines,
                                                                  network_dtype=network[0]),
                     hig.format_rows, lambda rows: {"rows": rows})


def cmd_hig_spread_timing(args: argparse.Namespace) -> int:
    from .timing import hig, hig_spread
    setups, routes = names(args.setups, hig.SETUPS, "setup"), names(args.routes, ("factored", "gram"), "route")
    return run_micro(args, "spread_timing", lambda device, save: hig_spread.run(
        setups, routes, args.batch, args.nproc, args.repeats, str(device), args.threads, log=log),
        hig_spread.format_rows, lambda rows: {"rows": rows})


def quick_conflicts(args: argparse.Namespace, options: Sequence[str]) -> None:
    """Refuse ``--quick`` together with any of ``options`` given on the command line: --quick sets those sizes
    itself, and an explicit size must not be silently overridden."""
    given = [o for o in options if any(a == o or a.startswith(o + "=") for a in getattr(args, "argv", []))]
    if args.quick and given:
        raise ValueError(f"--quick sets the sizes itself; drop {', '.join(given)} or drop --quick")


def cmd_zcs_bench(args: argparse.Namespace) -> int:
    from .timing import zcs
    quick_conflicts(args, ["--ms", "--ns", "--ps", "--center", "--repeats"])
    if args.quick:
        q = zcs.QUICK
        ms, ns, ps, center, repeats = q["ms"], q["ns"], q["ps"], q["center"], q["repeats"]
    else:
        ms, ns, ps = int_list(args.ms, "--ms"), int_list(args.ns, "--ns"), int_list(args.ps, "--ps")
        center, repeats = tuple(int_list(args.center, "--center")), args.repeats
        if len(center) != 3:
            raise ValueError(f"--center is M,N,P, got '{args.center}'")
    engines = names(args.engines, zcs.ENGINE_NAMES, "engine")
    return run_micro(args, "timing", lambda device, save: zcs.run(
        ms, ns, ps, center, engines, repeats, str(device), args.max_step_s,
        isolate=not (args.quick or args.in_process), log=log, checkpoint=save),
        zcs.format_rows, lambda rows: {"rows": rows, "ratios": zcs.ratios(rows)})


def cmd_tangentprop_bench(args: argparse.Namespace) -> int:
    import torch

    from .timing import tangentprop
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    quick_conflicts(args, ["--orders", "--width", "--depth", "--batch", "--repeats"])
    size = dict(tangentprop.QUICK) if args.quick else {
        "orders": orders(args.orders), "width": args.width, "depth": args.depth, "batch": args.batch,
        "repeats": args.repeats}
    methods = names(args.methods, tangentprop.METHODS, "method")
    return run_micro(args, "timing", lambda device, save: tangentprop.run(
        **size, methods=methods, device=str(device), dtype=args.dtype, max_step_s=args.max_step_s,
        isolate=not (args.quick or args.in_process), log=log, checkpoint=save),
        tangentprop.format_rows, lambda rows: {"rows": rows, "ratios": tangentprop.ratios(rows)})


def cmd_ns_step_bench(args: argparse.Namespace) -> int:
    from .timing import fluid
    return run_micro(args, "step_timing", lambda device, save: fluid.step_timing(
        args.batch, args.resolution, args.repeats, str(device)), fluid.format_step_rows, lambda rows: {"rows": rows})


def cmd_ns_inference(args: argparse.Namespace) -> int:
    from .timing import fluid
    return run_micro(args, "inference", lambda device, save: fluid.inference_speed(
        args.train_iterations, args.batch, args.solver_iterations, args.repeats, str(device), log=log),
        fluid.format_inference, lambda result: result)


def cmd_pde_control(args: argparse.Namespace) -> int:
    import torch

    from .bench.pde_control import PLANS, run_table
    from .timing.pde_control import check_graph_device, count_inference_ops, time_inference
    torch.set_num_threads(args.threads)
    plan = names(args.plan, tuple(PLANS), "plan")[0]
    seeds = int_list(args.seeds, "--seeds", minimum=0)
    device = resolve_device(args.timing_device)
    if args.cuda_graphs:
        if args.no_timing:
            raise ValueError("--cuda-graphs is a way of timing inference: leave out --no-timing")
        check_graph_device(device)   # before hours of training, not after
    timer = None if args.no_timing else (lambda *a: time_inference(*a, device=device, graphs=args.cuda_graphs))
    data = run_table(args.out, plan, seeds, command=command_line(args), log=(lambda m: None) if args.quiet else log,
                     timer=timer, timing_device=str(device), timing_graphs=args.cuda_graphs,
                     counter=None if args.no_op_count else count_inference_ops)
    from .bench.pde_control import table_markdown
    print(table_markdown(data))
    return 0


def cmd_solver_in_the_loop(args: argparse.Namespace) -> int:
    import torch

    from .bench.solver_in_the_loop import PLANS, modes, run_table, table_markdown
    torch.set_num_threads(args.threads)
    plan = names(args.plan, tuple(PLANS), "plan")[0]
    seeds = int_list(args.seeds, "--seeds", minimum=0)
    from .names import unknown_name
    allowed = {m.lower(): m for m in modes(PLANS[plan])}
    chosen = None
    if args.modes and args.modes.strip().lower() == "src":
        chosen = []                                              # the uncorrected source alone: no training
    elif args.modes:
        chosen = [allowed.get(n.lower()) or unknown_name("mode", n, list(allowed.values())) for n in names(args.modes)]
    table = run_table(args.out, plan, seeds, mode_names=chosen, command=command_line(args),
                      log=(lambda m: None) if args.quiet else log, checkpoint_every_s=args.checkpoint_every,
                      train=not args.trained_only)
    print(table_markdown(table))
    return 0


# ---- the parser -------------------------------------------------------------------------------------------------

class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``physopt compare: error: ... (see physopt compare --help)``, exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (where it has one and the help does not state it), keeps the example's lines."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (default not in (None, False, argparse.SUPPRESS) and "default" not in text
                and action.option_strings and not isinstance(default, list)):
            text += f" (default: {default if default != '' else repr(default)})"
        return text


def _version() -> str:
    from importlib import metadata
    try:
        return metadata.version("physopt")
    except metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:1, ...")


def output_dir(text: str) -> str | None:
    """An argparse type: '' (no output) or a directory that exists or can be created, and can be written to; it is
    created now, so a bad --out fails before anything trains."""
    if text == "":
        return None
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"'{text}' is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise argparse.ArgumentTypeError(f"cannot create the directory '{text}': {err.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write into '{text}' (no permission)")
    return text


def existing_dir(text: str) -> str:
    """An argparse type: a directory that exists (not '', which would mean the current one)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the results directory is empty (''); give a directory, e.g. results")
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"'{text}' is not a directory")
    return text


def add_out(p: argparse.ArgumentParser, default: str | None, what: str) -> None:
    p.add_argument("--out", type=output_dir, default=default,
                   help=f"directory for {what}" + ("" if default else " (none: print only)"))


def add_force(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--force", action="store_true", help=f"replace {what} (without it the command refuses before "
                   f"training anything)")


def add_resume(p: argparse.ArgumentParser, what: str) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--fresh", action="store_true", help=f"retrain {what}")
    group.add_argument("--keep-stale", action="store_true", help="reuse finished runs made by another physopt version "
                   "(or before versions were recorded); without it they are retrained, and the log says which")


#: --slurm-time's default, minutes per run
SLURM_TIME = 60


def add_executor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", default="local:1", help="where the runs train: local:N = N worker processes on this "
                   "machine (local:1: this process, one run after the other)")
    p.add_argument("--threads", type=count(1), default=None, help="torch threads per run (default: all cores for "
                   "local:1, cores / N for local:N; a run's numbers depend on it on the CPU)")
    p.add_argument("--allow-shared-cores", action="store_true", help="allow several local workers to share the "
                   "cores (or one GPU) for --time-budget runs, whose times are then not comparable")
    add_slurm(p)


def add_slurm(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slurm-partition", default=None, help="--executor slurm: the partition (default: the cluster's)")
    p.add_argument("--slurm-time", type=count(1), default=SLURM_TIME, help="--executor slurm: time limit per run in "
                   "minutes")
    p.add_argument("--slurm-gpus-per-task", type=count(0), default=None, help="--executor slurm: GPUs per run")
    p.add_argument("--slurm-cpus-per-task", type=count(1), default=None, help="--executor slurm: CPU cores per run "
                   "(its torch threads)")
    p.add_argument("--slurm-dry-run", action="store_true", help="--executor slurm: print the job array's sbatch "
                   "script and its runs instead of submitting")


def executor_for(args: argparse.Namespace):
    from .bench.executors import parse_executor
    slurm = {"partition": args.slurm_partition, "time_min": args.slurm_time, "gpus_per_task": args.slurm_gpus_per_task,
             "cpus_per_task": args.slurm_cpus_per_task, "dry_run": args.slurm_dry_run}
    if args.out:
        slurm["folder"] = Path(args.out) / "slurm"
    if args.executor.strip() != "slurm":
        given = [f"--slurm-{k.replace('_min', '').replace('_', '-')}" for k, v in slurm.items()
                 if k != "folder" and v not in (None, False, SLURM_TIME)]
        if given:
            raise ValueError(f"{', '.join(given)} applies to --executor slurm only (this is --executor "
                             f"{args.executor})")
    return parse_executor(args.executor, threads=args.threads, allow_shared_cores=args.allow_shared_cores,
                          slurm=slurm)


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress output")


def add_problem_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("problem", help="problem name (see `physopt list`)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="problem config, e.g. --param resolution=32 (repeatable)")
    p.add_argument("--hparam", action="append", default=[], metavar="OPT.KEY=VALUE",
                   help="optimizer setting, e.g. --hparam adam.lr=3e-4 (repeatable)")
    p.add_argument("--hparam-file", default=None, action="append", metavar="FILE",
                   help="the best settings a tuning file of `physopt tune` records (its optimizer's), as if given by "
                        "--hparam (repeatable, one file per optimizer)")


def add_length(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--iterations", type=count(1), default=None, help=f"training iterations per {what}")
    p.add_argument("--time-budget", type=positive_float, default=None, metavar="SECONDS",
                   help=f"training seconds per {what}")
    p.add_argument("--batch-size", type=count(1), default=None, help="one batch size for all (default: the paper's per "
                   "optimizer)")


def add_repeats(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument("--repeats", type=count(1), default=default, help="timed calls after one warm-up, at least "
                   "(median and IQR reported)")


Handler = Callable[[argparse.Namespace], int]


#: the commands that name problems, and so take --import
IMPORTING = ("list", "compare", "bench", "tune", "speed")


def _command(sub, name: str, handler: Handler, help: str, example: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                       epilog=f"example:\n  {example}", formatter_class=_Formatter)
    p.set_defaults(func=handler)
    if name in IMPORTING:
        p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                       help="import MODULE first, so the problems it registers can be named (repeatable, or "
                       "comma-separated)")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The ``physopt`` parser (imports nothing heavy)."""
    parser = Parser(
        prog=PROG, formatter_class=_Formatter,
        description="Optimizers for neural networks trained through differentiable physics (SIP, HIG), benchmark "
                    "problems, and fair comparisons.",
        epilog="example:\n  physopt compare poisson --optimizers adam,sip --preset quick\n\n"
               "`physopt COMMAND --help` shows a command's options and an example.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _command(sub, "list", cmd_list, "list problems and optimizers", "physopt list")

    c = _command(sub, "compare", cmd_compare, "train optimizers on a problem from the same weights and data",
                 "physopt compare poisson --optimizers adam,sip --iterations 300 --out runs/poisson")
    add_problem_options(c)
    c.add_argument("--optimizers", default=None, help="comma-separated, e.g. adam,sip (default: the problem's set)")
    add_length(c, "run")
    c.add_argument("--preset", default=None, help="quick | standard | paper: length, sizes and seeds (flags given "
                   "explicitly override it)")
    c.add_argument("--seeds", default=None, help="comma-separated, e.g. 0,1,2 (default: 0, or the preset's)")
    add_device(c)
    c.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="dtype of the problem")
    c.add_argument("--evaluations", type=count(1), default=None, help="held-out evaluations per run (curve points; "
                   "default 30, or the preset's)")
    c.add_argument("--held-out-size", type=count(1), default=None, help="examples in the held-out set every run is "
                   "evaluated on (default: the problem's benchmark settings)")
    add_out(c, None, "summary.json, curves.csv, curves.png and runs/")
    add_resume(c, "runs already finished in --out")
    add_executor(c)
    c.add_argument("--nproc", type=count(1), default=1, help="processes per run: data-parallel training "
                   "(torch.distributed; --batch-size per process; DDP for gradient methods and SIP, HIG/GN spread "
                   "their Jacobian rows); iterations only")
    add_force(c, "finished runs in --out made with other settings, and run files that cannot be read")
    add_quiet(c)

    b = _command(sub, "bench", cmd_bench, "every problem at a preset with its canonical optimizers; resumable",
                 "physopt bench --preset quick --problems poisson,exp --out /tmp/bench")
    b.add_argument("--preset", default="standard", help="quick | standard | paper")
    b.add_argument("--problems", default=None, help="comma-separated (default: all, see `physopt list`)")
    b.add_argument("--seeds", default=None, help="override the preset's seeds, e.g. 0,1,2")
    add_device(b)
    add_out(b, "runs/bench", "the results (OUT/<problem>/ or OUT/<preset>-<device>/<problem>/; README.md "
            "regenerated); the committed results are written only with --out results")
    add_resume(b, "runs already finished")
    add_executor(b)
    add_force(b, "finished runs in --out made with other settings, and run files that cannot be read")
    add_quiet(b)

    u = _command(sub, "tune", cmd_tune, "pick an optimizer's settings on short runs from the same weights and data: "
                 "a learning-rate grid, or a search with Optuna",
                 "physopt tune exp --optimizer adam --space adam.lr=log:1e-5:1e-1 --trials 12 --iterations 200")
    add_problem_options(u)
    u.add_argument("--optimizer", required=True, help="e.g. adam, sgd, sip, hig")
    search = u.add_mutually_exclusive_group(required=True)
    search.add_argument("--lrs", help="comma-separated candidate learning rates, e.g. 1e-4,3e-4,1e-3 (each trains "
                        "once)")
    search.add_argument("--space", action="append", metavar="OPT.KEY=SPEC", help="a setting to search with Optuna "
                        "(repeatable): log:LOW:HIGH, LOW:HIGH, int:LOW:HIGH or choice:A,B,...; KEYi searches "
                        "component i of a tuple (adam.betas0=0.8:0.99); needs physopt[tune]")
    add_length(u, "candidate")
    u.add_argument("--seed", type=int, default=0, help="seed of the weights and the data stream")
    u.add_argument("--trials", type=count(1), default=None, help="--space: trials in the study, counted over every "
                   "process sharing it (default 20)")
    u.add_argument("--sampler", default=None, help="--space: tpe (default), random or grid (choice: dimensions only)")
    u.add_argument("--pruner", default=None, help="--space: median (default), hyperband or none; fed by the "
                   "validation evaluations a run makes while it trains")
    u.add_argument("--evaluations", type=count(1), default=None, help="--space: validation evaluations per trial "
                   "(the pruner's steps; default 10)")
    u.add_argument("--storage", default=None, help="--space: sqlite:///study.db or journal:PATH, so several "
                   "processes or machines share one study (default: in memory)")
    u.add_argument("--study-name", default=None, help="--space: the study's name in the storage (default "
                   "PROBLEM-OPTIMIZER)")
    u.add_argument("--timeout", type=positive_float, default=None, help="--space: stop starting trials after this "
                   "many seconds")
    u.add_argument("--executor", default=None, help="--space: local:N runs N processes on one study (default "
                   "local:1); slurm: --trials array tasks join it (a journal in --out/slurm unless --storage)")
    u.add_argument("--threads", type=count(1), default=None, help="--space: torch threads per process (default: "
                   "cores / N)")
    add_slurm(u)
    add_device(u)
    add_out(u, "runs/tune", "PROBLEM_OPTIMIZER.json/.txt ('' to skip; the committed ones are in results/tune)")
    add_force(u, "a tuning file in --out made with other settings, reusing none of its candidates")
    add_quiet(u)

    r = _command(sub, "report", cmd_report, "regenerate RESULTS/README.md from the summary.json files under RESULTS",
                 "physopt report results")
    r.add_argument("results", nargs="?", type=existing_dir, default="results", help="results directory")

    v = _command(sub, "speed", cmd_speed, "time per iteration and peak memory of each optimizer, as ratios to Adam",
                 "physopt speed --preset quick --problems exp --repeats 3")
    v.add_argument("--problems", default=None, help="comma-separated (default: all)")
    v.add_argument("--preset", default="standard", help="problem sizes and batch of this preset")
    v.add_argument("--optimizers", default=None, help="comma-separated (default: each problem's set)")
    v.add_argument("--threads", default=None, metavar="N,...",
                   help="torch thread counts to time each optimizer at, e.g. 1,2 (default: this process's)")
    v.add_argument("--hparam", action="append", default=[], metavar="OPT.KEY=VALUE",
                   help="optimizer setting, e.g. --hparam hig.compile_physics=true (repeatable)")
    add_repeats(v, 3)
    add_device(v)
    add_out(v, None, "speed.json and speed.txt")
    v.add_argument("--in-process", action="store_true", help="measure in this process (faster; CPU peaks less exact)")
    add_quiet(v)

    from_hig = ("oscillators", "quantum-dipole", "poisson-hig")
    t = _command(sub, "hig-timing", cmd_hig_timing, "time one HIG update and its parts per half-inversion route",
                 "physopt hig-timing --setups oscillators --routes factored,gram --repeats 3")
    t.add_argument("--setups", default=",".join(from_hig), help="comma-separated problems (the HIG paper's setups)")
    t.add_argument("--routes", default="factored,gram,svd", help="comma-separated: factored, gram, svd")
    t.add_argument("--dtypes", default="float64", help="decomposition dtypes, e.g. float32,float64")
    t.add_argument("--jacobians", default="vmap,expand,supplied",
                   help="comma-separated Jacobian engines: vmap (the earlier engine), expand (one batched "
                   "backward), each also as vmap+compile, expand+compile (the physics under torch.compile), and "
                   "supplied (the problem's closed-form physics Jacobian; skipped where it has none)")
    t.add_argument("--network-dtype", default="float32", help="dtype of the problem and its network: float32 (as "
                   "trained) or float64 (the engines' updates then agree to round-off)")
    add_repeats(t, 3)
    add_device(t)
    add_out(t, None, "timing.json and timing.txt")

    h = _command(sub, "hig-spread-timing", cmd_hig_spread_timing, "time one HIG update of a global batch spread over "
                 "N processes against one process holding it all (time and peak memory per process)",
                 "physopt hig-spread-timing --setups oscillators --batch 64 --nproc 2 --repeats 3")
    h.add_argument("--setups", default="oscillators", help="comma-separated problems (the HIG paper's setups)")
    h.add_argument("--routes", default="factored,gram", help="comma-separated: factored, gram")
    h.add_argument("--batch", type=count(1), default=64, help="examples per process (one process gets N times as "
                   "many)")
    h.add_argument("--nproc", type=count(2), default=2, help="processes the batch is spread over")
    add_repeats(h, 5)
    h.add_argument("--threads", type=count(1), default=1, help="torch CPU threads per process")
    add_device(h)
    add_out(h, None, "spread_timing.json and spread_timing.txt")

    z = _command(sub, "zcs-bench", cmd_zcs_bench, "time training steps of ZCS vs FuncLoop vs DataVect (scaling PDE)",
                 "physopt zcs-bench --quick")
    z.add_argument("--ms", default="5,10,20,40", help="numbers of functions M (varied at the centre N, P)")
    z.add_argument("--ns", default="250,500,1000,2000", help="numbers of points N (varied at the centre M, P)")
    z.add_argument("--ps", default="1,2,3,4", help="maximum PDE orders P >= 1 (varied at the centre M, N)")
    z.add_argument("--center", default="20,1000,3", help="centre setting M,N,P (the acceptance point)")
    z.add_argument("--engines", default="zcs,funcloop,datavect", help="comma-separated: zcs, funcloop, datavect")
    add_repeats(z, 3)
    z.add_argument("--max-step-s", type=positive_float, default=60.0,
                   help="skip baseline settings at least as large as one whose warm-up step took longer")
    z.add_argument("--in-process", action="store_true",
                   help="measure in this process instead of a fresh one per engine and setting (CPU peaks less exact)")
    add_device(z)
    add_out(z, None, "timing.json and timing.txt")
    z.add_argument("--quick", action="store_true", help="tiny sizes, one repeat, in-process: a smoke test (not with "
                   "explicit sizes)")

    g = _command(sub, "tangentprop-bench", cmd_tangentprop_bench,
                 "time jets u..u^(n) + backward: n-TangentProp routes vs nested autograd",
                 "physopt tangentprop-bench --orders 1-6 --threads 1")
    g.add_argument("--orders", default="1-9", help="derivative orders n >= 1, e.g. 1-9 or 1,3,6,9")
    g.add_argument("--width", type=count(1), default=64, help="hidden units per layer")
    g.add_argument("--depth", type=count(1), default=3, help="hidden layers")
    g.add_argument("--batch", type=count(1), default=256, help="points per step")
    g.add_argument("--methods", default="recurrence,faa_di_bruno,autograd",
                   help="comma-separated: recurrence, faa_di_bruno, autograd")
    g.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="dtype of the network")
    add_repeats(g, 5)
    g.add_argument("--max-step-s", type=positive_float, default=60.0,
                   help="skip a method's higher orders once its warm-up step took longer than this")
    add_device(g)
    g.add_argument("--threads", type=count(1), default=None,
                   help="torch CPU threads (default: torch's); 1 avoids slow-downs on a busy machine")
    add_out(g, None, "timing.json and timing.txt")
    g.add_argument("--in-process", action="store_true",
                   help="measure in this process instead of a fresh one per method and order (CPU peaks less exact)")
    g.add_argument("--quick", action="store_true", help="tiny network, orders 1-3, one repeat, in-process: a smoke "
                   "test (not with explicit sizes)")

    s = _command(sub, "ns-step-bench", cmd_ns_step_bench, "time one Navier-Stokes step: physopt's solver vs "
                 "PhiFlow's", "physopt ns-step-bench --batch 8 --resolution 32 --repeats 3")
    s.add_argument("--batch", type=count(1), default=64, help="examples per step")
    s.add_argument("--resolution", type=count(16), default=64, help="grid cells per side")
    add_repeats(s, 5)
    add_device(s)
    add_out(s, None, "step_timing.json and step_timing.txt")

    pc = _command(sub, "pde-control", cmd_pde_control, "the PDE-control paper's Table 1 (Burgers): train the CFE "
                  "chain, staggered and refined schemes supervised and through the solver, shooting; resumable",
                  "physopt pde-control --plan quick --out /tmp/pde-control")
    pc.add_argument("--plan", default="cpu", help="cpu (the committed table, about an hour per seed on one core) "
                    "or quick (a smoke test)")
    pc.add_argument("--seeds", default="0", help="comma-separated training seeds, e.g. 0,1,2")
    pc.add_argument("--threads", type=count(1), default=1, help="torch CPU threads")
    pc.add_argument("--no-timing", action="store_true", help="skip the inference timing (time it alone: timing "
                    "beside other work is not comparable)")
    pc.add_argument("--no-op-count", action="store_true", help="skip counting the operations of each inference "
                    "call (they do not depend on the device; counting 300 shooting iterations takes about 30 s)")
    pc.add_argument("--timing-device", default="cpu", help="device of the inference timing (training and evaluation "
                    "run on the CPU): cpu, cuda, cuda:N or auto")
    pc.add_argument("--cuda-graphs", action="store_true", help="time each scheme captured once in a CUDA graph and "
                    "replayed, and shooting with one iteration captured and replayed per iteration (no kernel "
                    "launch cost on either side; needs a CUDA --timing-device)")
    add_out(pc, "results/pde-control", "stage checkpoints (seed<S>/), table1.json, table1.md and fig4.png")
    add_quiet(pc)

    sl = _command(sub, "solver-in-the-loop", cmd_solver_in_the_loop, "Solver-in-the-Loop's Table 1 (forced "
                  "Burgers): reference data, then NON, SOL_n and PRE corrections trained and evaluated against the "
                  "uncorrected source; resumable", "physopt solver-in-the-loop --plan quick --out /tmp/sol")
    sl.add_argument("--plan", default="cpu", help="cpu (forced Burgers, the committed table), wake-cpu (the wake "
                    "flow), paper or wake-paper (the authors' net, epochs and look-aheads: for a GPU), quick or "
                    "wake-quick (smoke tests)")
    sl.add_argument("--seeds", default="0", help="comma-separated training seeds, e.g. 0,1,2")
    sl.add_argument("--modes", default=None, help="comma-separated modes to train (default: all of the plan: NON, "
                    "SOL_<n> per look-ahead, SIP_<n>, PRE); SRC alone: only the uncorrected source, nothing trained")
    sl.add_argument("--trained-only", action="store_true", help="train nothing: the table of the runs already "
                    "trained (an interim table while others train; the rest shown as -)")
    sl.add_argument("--threads", type=count(1), default=1, help="torch CPU threads")
    sl.add_argument("--checkpoint-every", type=positive_float, default=600.0, help="seconds between saves of a "
                    "training run's state (a stopped run continues from its last save)")
    add_out(sl, "results/solver-in-the-loop", "data/ (reference simulations), seed<S>/ (weights), table1.json, "
            "table1.md, rollout.png and training.png")
    add_quiet(sl)

    i = _command(sub, "ns-inference", cmd_ns_inference, "trained network vs iterative inverse solver per problem "
                 "(SIP paper Table 1)", "physopt ns-inference --train-iterations 20 --batch 8")
    i.add_argument("--train-iterations", type=count(0), default=200, help="SIP training iterations before measuring")
    i.add_argument("--batch", type=count(1), default=64, help="problems per batch")
    i.add_argument("--solver-iterations", type=count(1), default=8, help="iterations of x <- x + U(x) (paper: 7)")
    add_repeats(i, 5)
    add_device(i)
    add_out(i, None, "inference.json and inference.txt")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())    # the console script, like python -m physopt, finds modules in the current dir
    terminated = []
    restore = _install_sigterm(terminated)
    try:
        if getattr(args, "imports", None):
            from problems import import_modules
            import_modules(args.imports)
        return args.func(args)
    except USER_ERRORS as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except MemoryError as err:
        memory = sys.modules.get("physopt.hig.memory")
        if memory is None or not isinstance(err, memory.MemoryBoundError):
            raise
        print(f"{PROG}: error: {err}", file=sys.stderr)     # a memory_bound the user set that cannot be met
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: {'terminated' if terminated else 'interrupted'}; finished runs are saved (and the checkpoints "
              f"of stopped ones): run the same command again to resume", file=sys.stderr)
        return 143 if terminated else 130
    except BrokenPipeError:                        # the output was piped into a command that stopped reading (head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        restore()
        stop = sys.modules.get("physopt.bench.stop")
        if stop is not None:
            stop.STOP.clear()                      # a request this command answered ends with it


def _install_sigterm(terminated: list) -> Callable[[], None]:
    """SIGTERM (``kill``, a scheduler's time limit) stops the command as Ctrl-C does, except that a run training in
    this process first finishes its current step and saves its checkpoint (:mod:`physopt.bench.stop`); exit code
    143. Returns what puts the previous handler back (nothing to do where none can be installed: not the main
    thread)."""
    def on_sigterm(signum: int, frame: Any) -> None:
        terminated.append(signum)
        stop = sys.modules.get("physopt.bench.stop")        # not imported: nothing trains here
        if stop is None:
            raise KeyboardInterrupt(f"terminated (signal {signum})")
        stop.on_sigterm(signum, frame)

    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
