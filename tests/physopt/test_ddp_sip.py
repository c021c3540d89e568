"""SIP under DistributedDataParallel (issue 22, deliverable 1): each process computes the inverse update of its own
examples, DDP averages the proxy-loss gradients, and the weights end where single-process SIP on the union batch
ends. Two gloo processes on the CPU, spawned by the test."""
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import physopt
from problems import get_problem

STEPS, HALF = 5, 3


def problem():
    # batch norm normalises per process (SyncBatchNorm needs a GPU), so the recipe's network has none
    return get_problem("poisson", resolution=16, unet_batch_norm=False, dtype=torch.float64)


def batches(p):
    g = torch.Generator().manual_seed(7)
    return [p.sample(2 * HALF, g) for _ in range(STEPS)]


def initial_network(p):
    torch.manual_seed(0)
    return p.default_network().double()


def train(p, net, data, part=None):
    """SIP with Adam for STEPS steps; ``part`` = (rank, world) trains on that share of each batch."""
    opt = physopt.SIP(net.parameters(), inverse=p.inverse_update, lr=1e-3)
    for batch in data:
        if part is not None:
            rank, world = part
            size = batch.batch_size // world
            batch = type(batch)(*(t[rank * size:(rank + 1) * size] if t is not None else None for t in batch))
        opt.zero_grad()
        opt.step(p.predict(net, batch), batch)
    return net


def worker(rank, world, init_file, out):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    p = problem()
    ddp = torch.nn.parallel.DistributedDataParallel(initial_network(p))
    train(p, ddp, batches(p), part=(rank, world))
    if rank == 0:
        torch.save(ddp.module.state_dict(), out)
    dist.barrier()                  # every message delivered before either process tears gloo down
    dist.destroy_process_group()


def test_sip_under_ddp_on_two_processes_equals_one_process_on_the_union_batch(tmp_path):
    out = tmp_path / "ddp.pt"
    mp.spawn(worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    p = problem()
    single = train(p, initial_network(p), batches(p)).state_dict()
    distributed = torch.load(out)
    start = initial_network(p).state_dict()
    first_half_only = train(p, initial_network(p), batches(p), part=(0, 2)).state_dict()
    for name, w in single.items():
        assert (distributed[name] - w).norm() <= 1e-5 * w.norm(), name
    # the tolerance tells them apart: one process on its own half ends elsewhere
    assert max((first_half_only[n] - w).norm() / w.norm() for n, w in single.items()) > 1e-3
    assert all((w - start[n]).norm() > 0 for n, w in single.items())
