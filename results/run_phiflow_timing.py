"""Issue 20 acceptance: one HIG update and one SIP step through the PhiFlow adapter vs the plain-torch twin.

The physics is the heat problem's periodic spectral diffusion: ``problems.phiflow_heat`` (PhiFlow's
``diffuse.fourier`` through ``physopt.phiml_physics``) against ``heat`` (torch FFTs), same config, same BN-free U-net,
same weights and batch. Timed in the same process, alternating, with physopt.timing.kernel.time_call (at the
given torch thread count). Per case: median seconds, and the adapter's time over the twin's:

* HIG update (factored route is not available for a U-net: dense gram route, expand engine) at batch --hig-batch;
* SIP step (Adam on the proxy loss): the twin with its hand-written damped inverse, the adapter with the generic
  Gauss-Newton update (20 CG iterations through torch.autograd), and, to separate the cost of the adapter from that
  of the update, the twin with the same generic Gauss-Newton update (through torch.func);
* the physics alone (forward) and one backward through it.

Writes results/phiflow/adapter-timing.{json,txt}. Run nothing else meanwhile:

    python results/run_phiflow_timing.py --resolution 32 --threads 2
"""
from __future__ import annotations

import argparse
import copy
import sys

import torch

import physopt
from physopt.bench.methods import get_method, optimizer_arguments, resolve_hyperparameters
from physopt.bench.storage import write_benchmark
from physopt.timing.kernel import time_call
from problems import get_problem
from problems.phiflow_heat import PhiFlowHeatProblem


def cases(resolution: int, batch_size: int, hig_batch: int):
    small = dict(resolution=resolution, max_half_size=max(3.0, resolution / 6.4))
    adapter, twin = PhiFlowHeatProblem(**small), get_problem("heat", unet_batch_norm=False, **small)
    batch = twin.sample(batch_size, torch.Generator().manual_seed(0))
    hig_data = twin.sample(hig_batch, torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    net = twin.default_network()
    x = torch.rand(batch_size, resolution, resolution, dtype=torch.float64, requires_grad=True)

    def forward(problem):
        return lambda: problem.forward(x.detach(), batch)

    def backward(problem):
        return lambda: torch.autograd.grad(problem.forward(x, batch).square().sum(), x)

    def hig(problem):
        hp = resolve_hyperparameters(get_method("hig"), problem)

        def update():
            model = copy.deepcopy(net)
            physopt.HIG(model, problem.forward, problem.loss, lr=hp["lr"], truncation=hp["truncation"],
                        route="gram", max_loss_increase=None).step(hig_data.inputs, hig_data)
        return update

    def sip(problem, inverse=None):
        hp = optimizer_arguments(resolve_hyperparameters(get_method("sip"), problem))
        model = copy.deepcopy(net)
        opt = physopt.SIP(model.parameters(), inverse=inverse or problem.inverse_update, **hp)

        def step():
            opt.zero_grad()
            opt.step(problem.predict(model, batch), batch)
        return step

    generic_twin = physopt.GaussNewtonUpdate(lambda v: twin.forward(v, batch), damping=1e-4, max_iterations=20,
                                             derivatives="func")
    return [("physics forward", forward(adapter), forward(twin)),
            ("physics backward", backward(adapter), backward(twin)),
            (f"HIG update (gram, batch {hig_batch})", hig(adapter), hig(twin)),
            ("SIP step, each its own update", sip(adapter), sip(twin)),
            ("SIP step, both generic Gauss-Newton", sip(adapter),
             sip(twin, lambda v, b: generic_twin(v.detach().double(), b.target.double()).to(v.dtype)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hig-batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="results/phiflow")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for name, through_adapter, twin in cases(args.resolution, args.batch_size, args.hig_batch):
        a = time_call(through_adapter, "cpu", min_runs=args.repeats)
        t = time_call(twin, "cpu", min_runs=args.repeats)
        rows.append({"case": name, "adapter_s": a.median_s, "twin_s": t.median_s, "ratio": a.median_s / t.median_s})
        print(f"{name:<40} adapter {a.median_s:.4g} s  twin {t.median_s:.4g} s  ratio {rows[-1]['ratio']:.3g}x",
              flush=True)
    text = "\n".join(f"{r['case']:<40} adapter {r['adapter_s']:.4g} s   plain torch {r['twin_s']:.4g} s   "
                     f"adapter / torch {r['ratio']:.3g}x" for r in rows)
    command = "python results/run_phiflow_timing.py " + " ".join(sys.argv[1:] if argv is None else argv)
    write_benchmark(args.out, "adapter-timing", command.strip(), torch.device("cpu"), text,
                    {"resolution": args.resolution, "batch_size": args.batch_size, "hig_batch": args.hig_batch,
                     "threads": args.threads, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
