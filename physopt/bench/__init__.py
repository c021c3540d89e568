"""The optimizer comparison: train one (problem, optimizer, seed) run, compare optimizers on a problem, run the
canonical suite, store runs and summaries, write the report and the plots, tune learning rates.

Micro-benchmarks (HIG update timing, fluid step, ZCS, n-TangentProp, the speed table) live in
:mod:`physopt.timing`.
"""
from .compare import compare
from .methods import METHODS, get_method
from .summary import format_summary
from .train import RunResult, evaluate, held_out_set, train_run

__all__ = ["compare", "format_summary", "METHODS", "get_method", "RunResult", "evaluate", "held_out_set",
           "train_run"]
