"""Distributed HIG and Gauss-Newton (issue 22): two gloo processes, spawned by the test, each with half of the
batch, apply the update single-process HIG / Gauss-Newton computes on the union batch (1e-8 relative, float64), on
the factored route (oscillators) and on the dense route (a network with a convolution); and bad input is refused:
batches of different shapes, a group of one process, weights that differ between processes."""
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import physopt
from problems import get_problem

HALF = 4


def oscillators():
    p = get_problem("oscillators", dtype=torch.float64)
    torch.manual_seed(0)
    return p, p.default_network().double()


class ConvNet(nn.Module):
    """Not only nn.Linear: the dense route."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 2, 3, padding=1)
        self.out = nn.Linear(8, 96)

    def forward(self, x):
        return self.out(torch.tanh(self.conv(x[:, None, :])).flatten(1))


def conv_oscillators():
    p = get_problem("oscillators", dtype=torch.float64)
    torch.manual_seed(0)
    return p, ConvNet().double()


SETUPS = {"factored": oscillators, "dense": conv_oscillators}


def updates(setup: str, kappa: float, part=None, group=None):
    """The change of every weight after one HIG (kappa -1/2) or Gauss-Newton (kappa -1) step on the batch, or on
    share ``part`` = (rank, world) of it with ``group``."""
    p, net = SETUPS[setup]()
    batch = p.sample(2 * HALF, torch.Generator().manual_seed(3))
    if part is not None:
        rank, world = part
        n = batch.batch_size // world
        batch = type(batch)(*(t[rank * n:(rank + 1) * n] if t is not None else None for t in batch))
    opt = physopt.HIG(net, physics=p.forward, loss=p.loss, lr=1.0, truncation=1e-6, kappa=kappa,
                      max_loss_increase=None, process_group=group)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt.step(batch.inputs, batch)
    assert opt.last_stats.route.startswith("factored" if setup == "factored" else "gram")
    return {k: net.state_dict()[k] - before[k] for k in before}


def run_workers(fn, tmp_path, *args):
    mp.spawn(fn, args=(str(tmp_path / "init"), str(tmp_path), *args), nprocs=2, join=True)


KAPPAS = (-0.5, -1.0)       # HIG, Gauss-Newton


def _step_worker(rank, init, out, setup):
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        for kappa in KAPPAS:
            torch.save(updates(setup, kappa, part=(rank, 2), group=dist.group.WORLD), f"{out}/{kappa}_{rank}.pt")
        dist.barrier()              # every message delivered before either process tears gloo down
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("setup", ["factored", "dense"])
def test_two_processes_take_the_single_process_hig_and_gauss_newton_step_on_the_union_batch(setup, tmp_path):
    run_workers(_step_worker, tmp_path, setup)
    for kappa in KAPPAS:
        single = updates(setup, kappa)
        own_half = updates(setup, kappa, part=(0, 2))           # what one process would do alone
        assert max((own_half[n] - d).norm() / d.norm() for n, d in single.items()) > 1e-3
        for rank in (0, 1):
            delta = torch.load(tmp_path / f"{kappa}_{rank}.pt")
            for name, d in single.items():
                assert (delta[name] - d).norm() <= 1e-8 * d.norm(), (kappa, rank, name)


def _bad_worker(rank, init, out, case):
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        p, net = oscillators()
        if case == "weights" and rank == 1:
            with torch.no_grad():
                next(net.parameters()).add_(1e-3)
        size = HALF + (rank if case == "shapes" else 0)
        batch = p.sample(size, torch.Generator().manual_seed(rank))
        opt = physopt.HIG(net, physics=p.forward, loss=p.loss, process_group=dist.group.WORLD)
        try:
            opt.step(batch.inputs, batch)
            message = "no error"
        except ValueError as err:
            message = str(err)
        with open(f"{out}/error{rank}.txt", "w") as f:
            f.write(message)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("case, expected", [
    ("shapes", "the processes' batches differ in shape (inputs: (4, 4), (5, 4)"),
    ("weights", "the model's weights differ between processes"),
])
def test_bad_distributed_input_is_refused_on_every_process(case, expected, tmp_path):
    run_workers(_bad_worker, tmp_path, case)
    for rank in (0, 1):
        assert expected in (tmp_path / f"error{rank}.txt").read_text()


def test_a_group_of_one_process_or_no_initialisation_is_refused(tmp_path):
    p, net = oscillators()
    with pytest.raises(RuntimeError, match="torch.distributed is not initialised"):
        physopt.HIG(net, physics=p.forward, loss=p.loss, process_group=object())
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'one'}", rank=0, world_size=1)
    try:
        with pytest.raises(ValueError, match="process_group has one process"):
            physopt.HIG(net, physics=p.forward, loss=p.loss, process_group=dist.group.WORLD)
    finally:
        dist.destroy_process_group()
