"""The bench: training runs, optimizer comparisons, results on disk and plots."""
from .compare import compare, format_table, resolve_device
from .methods import METHODS, get_method
from .train import RunResult, evaluate, held_out_set, train_run

__all__ = ["compare", "format_table", "resolve_device", "METHODS", "get_method", "RunResult", "evaluate",
           "held_out_set", "train_run"]
