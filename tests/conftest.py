"""Shared fixtures: every device test runs on the CPU, and on CUDA (marked `gpu`) where one exists."""
import os

import pytest
import torch

# under pytest-xdist (-n), the cores shared by the worker processes, so that they do not oversubscribe them
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, torch.get_num_threads() // _workers)))

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.gpu,
                                pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]),
]


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture
def cli(capsys):
    """Run the `physopt` command in this process: ``cli("compare", "exp", ...) -> (exit code, stdout, stderr)``."""
    from physopt.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exit:               # argparse's own errors and --help
            code = exit.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def group_alive():
    """``group_alive(pgid) -> bool``: whether a process of process group ``pgid`` still runs (a command started with
    ``start_new_session=True`` leads a group of its own; its workers belong to it)."""
    def alive(pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False

    return alive
