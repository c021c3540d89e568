"""Data-parallel runs of the bench (issue 22): a run trained by two gloo processes, each on its share of the same
global batch, ends where the single-process run on the global batch ends, for a gradient method and SIP (DDP) and
for HIG (its own process group); the run records the world size, and what cannot be spread is refused."""
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from physopt.bench.train import train_run
from problems import get_problem

CASES = {"adam": ("poisson", dict(resolution=16, unet_batch_norm=False)),
         "sip": ("poisson", dict(resolution=16, unet_batch_norm=False)),
         "hig": ("oscillators", {})}


def run(optimizer, batch_size, group=None):
    name, config = CASES[optimizer]
    p = get_problem(name, dtype=torch.float64, **config)
    held_out = p.sample(8, torch.Generator().manual_seed(99))
    return train_run(p, optimizer, 0, iterations=3, batch_size=batch_size, evaluations=1, held_out=held_out,
                     process_group=group)


def _worker(rank, init, out):
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        results = {opt: run(opt, 2, dist.group.WORLD).to_json() for opt in CASES}
        torch.save(results, f"{out}/rank{rank}.pt")
        dist.barrier()              # every message delivered before either process tears gloo down
    finally:
        dist.destroy_process_group()


def test_two_processes_follow_one_process_on_the_global_batch(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        spread = torch.load(tmp_path / f"rank{rank}.pt")
        for optimizer in CASES:
            single = run(optimizer, 4)
            start = single.curve[0].loss
            ours = spread[optimizer]
            assert ours["hyperparameters"]["world_size"] == 2 and ours["hyperparameters"]["batch_size"] == 2
            assert ours["status"] == "ok" and ours["iterations"] == 3
            assert single.final["loss"] != pytest.approx(start, rel=1e-3)        # it trained
            assert ours["final"]["loss"] == pytest.approx(single.final["loss"], rel=1e-6), (rank, optimizer)
            assert ours["init_checksum"] == single.init_checksum


def test_what_cannot_be_spread_is_refused(tmp_path):
    p = get_problem("exp")
    with pytest.raises(ValueError, match="torch.distributed is not initialised"):
        train_run(p, "adam", 0, iterations=1, process_group=object())
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        with pytest.raises(ValueError, match="not a --time-budget"):
            train_run(p, "adam", 0, time_budget=1.0, process_group=dist.group.WORLD)
        with pytest.raises(ValueError, match="schedule"):
            train_run(p, "adam>sgd@1", 0, iterations=2, process_group=dist.group.WORLD)
    finally:
        dist.destroy_process_group()


def test_compare_with_nproc_trains_each_run_on_two_processes_and_resumes(tmp_path):
    from physopt.bench.compare import compare
    p = get_problem("exp")
    summary = compare(p, ["hig"], iterations=2, batch_size=2, evaluations=1, out=tmp_path, nproc=2)
    assert [r["hyperparameters"]["world_size"] for r in summary["runs"]] == [2]
    stamps = {f: f.stat().st_mtime_ns for f in (tmp_path / "runs").glob("*.json")}
    again = compare(p, ["hig"], iterations=2, batch_size=2, evaluations=1, out=tmp_path, nproc=2)
    assert again["runs"] == summary["runs"]
    assert {f: f.stat().st_mtime_ns for f in stamps} == stamps         # resumed: no run file rewritten
    with pytest.raises(ValueError, match="--nproc trains for --iterations"):
        compare(p, ["adam"], time_budget=1.0, nproc=2)
