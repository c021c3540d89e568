r"""HIG and Gauss-Newton with the batch spread over processes (``torch.distributed``; gloo on the CPU, NCCL on GPUs).

The global batch is the union of the processes' batches (equal shares), and the update is the one single-process
HIG computes on that union: with J = [J_1; ...; J_P] the stacked per-example Jacobians of the P processes and
g = [g_1; ...; g_P] / P the gradient of the global mean loss,

    dtheta = max(S)^beta V S^kappa U^T g = J^T w,   w = max(S)^beta U S^(kappa-1) U^T g,   J J^T = U S^2 U^T,

and since J^T w = sum_p J_p^T w_p, each process applies only its own rows and one all-reduce sums the shares.
What is exchanged:

* factored route (networks of ``nn.Linear`` layers): the per-layer factors, layer inputs A_l (b x in) and output
  sensitivities D_l (b|y| x out), all-gathered; every process forms the same Gram matrix and decomposition from them.
  Memory per process: the factors of all processes (small) and the (P b |y|)^2 Gram matrix.
* dense route (any network): the Jacobian rows are never all gathered; each process's rows are broadcast one process
  at a time, every process computes its block row J_p J_q^T, and the block rows are all-gathered into the Gram
  matrix. Memory per process: its own rows, one other process's rows at a time, and the Gram matrix.

The Gram decomposition is used for every shape of J (the single-process ``svd`` route is not distributed).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor
import torch.distributed as dist

from .decompositions import Spectrum, gram_coefficients
from .dense import DenseRoute
from .factored import FactoredRoute, LinearFactor, factored_gram

__all__ = ["DistributedRoute", "check_group", "check_same_shapes", "check_same_weights", "all_reduce_mean"]


def check_group(group: Any) -> int:
    """The world size of ``group`` (a process group, or ``torch.distributed.group.WORLD``); an error that says what to
    do where torch.distributed is not initialised or the group has one process."""
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("process_group was given but torch.distributed is not initialised: call "
                           "torch.distributed.init_process_group (torchrun does the rendezvous) before the optimizer")
    world = dist.get_world_size(group)
    if world < 2:
        raise ValueError("process_group has one process: there is nothing to spread; drop process_group (single-process "
                         "HIG is the same update without the communication)")
    return world


def _gather(t: Tensor, group: Any) -> list[Tensor]:
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, t.contiguous(), group=group)
    return parts


def check_same_shapes(what: str, t: Tensor, group: Any) -> None:
    """ValueError on every process unless ``t`` has the same shape on all of them (all_gather needs it)."""
    shape = torch.tensor([t.dim(), *t.shape, *([0] * (8 - t.dim()))], dtype=torch.int64)
    if t.device.type == "cuda":
        shape = shape.to(t.device)
    shapes = _gather(shape, group)
    if any(not torch.equal(s, shapes[0]) for s in shapes):
        listed = ", ".join(str(tuple(int(v) for v in s[1:1 + int(s[0])])) for s in shapes)
        raise ValueError(f"the processes' batches differ in shape ({what}: {listed} on ranks 0..{len(shapes) - 1}); "
                         f"distributed HIG needs equal shares of the global batch on every process")


def check_same_weights(params: dict[str, Tensor], group: Any) -> None:
    """ValueError on every process unless the weights are the same everywhere (a checksum per parameter tensor:
    sums of the values and of their squares in float64)."""
    sums = torch.stack([torch.stack([p.detach().double().sum(), p.detach().double().pow(2).sum()])
                        for p in params.values()])
    sums_all = _gather(sums, group)
    differ = [name for i, name in enumerate(params)
              if any(not torch.allclose(s[i], sums_all[0][i], rtol=1e-12, atol=0) for s in sums_all)]
    if differ:
        raise ValueError(f"the model's weights differ between processes ({', '.join(differ[:3])}"
                         f"{', ...' if len(differ) > 3 else ''}): start every process from the same weights (the same "
                         f"seed before building the model, or broadcast rank 0's state_dict) before the first step")


def all_reduce_mean(value: Tensor, group: Any) -> Tensor:
    """The mean of a 0-dim tensor over the processes (the global batch's mean loss from the local means)."""
    total = value.detach().clone()
    dist.all_reduce(total, group=group)
    return total / dist.get_world_size(group)


@dataclasses.dataclass
class DistributedRoute:
    """A local route (factored or dense) whose Jacobian rows are this process's share of the global batch."""
    local: FactoredRoute | DenseRoute
    group: Any

    def __post_init__(self):
        self.world = dist.get_world_size(self.group)
        self.rank = dist.get_rank(self.group)
        self.name = self.local.name if self.local.name == "factored" else "gram"
        self.y = self.local.y
        self.chunk_size = self.local.chunk_size

    @property
    def nonzero(self) -> Tensor:
        flag = self.local.nonzero.to(torch.int64).reshape(1)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group)
        return flag[0] > 0

    def tensors(self) -> list[Tensor]:
        return self.local.tensors()

    def _gram(self, dtype: torch.dtype) -> Tensor:
        if isinstance(self.local, FactoredRoute):
            factors = [LinearFactor(f.weight, f.bias, torch.cat(_gather(f.A, self.group)),
                                    torch.cat(_gather(f.D, self.group))) for f in self.local.jacobian.factors]
            return factored_gram(factors, self.y[0].numel(), dtype)
        J = self.local.jacobian.J
        blocks = []
        for source in range(self.world):           # one other process's rows at a time
            other = J.contiguous() if source == self.rank else torch.empty_like(J)
            dist.broadcast(other, src=dist.get_global_rank(self.group, source) if self.group is not None else source,
                           group=self.group)
            blocks.append(J.to(dtype) @ other.to(dtype).T)
        return torch.cat(_gather(torch.cat(blocks, dim=1), self.group), dim=0)

    def coefficients(self, g: Tensor, *, kappa: float, beta: float, truncation: float,
                     dtype: torch.dtype) -> tuple[Tensor, Spectrum]:
        """This process's share w_p of w = max(S)^beta U S^(kappa-1) U^T g, g the global mean loss's gradient."""
        g_all = torch.cat(_gather(g, self.group)) / self.world
        w, spectrum = gram_coefficients(self._gram(dtype), g_all, kappa=kappa, beta=beta, truncation=truncation,
                                        dtype=dtype, check=False)
        spectrum.route = f"{self.name} (distributed)"
        rows = g.shape[0]
        return w[self.rank * rows:(self.rank + 1) * rows], spectrum

    def apply_transpose(self, w: Tensor) -> dict[str, Tensor]:
        """J^T w = sum_p J_p^T w_p: this process's share, all-reduced."""
        if isinstance(self.local, FactoredRoute):
            shares = self.local.apply_transpose(w)
            for t in shares.values():
                dist.all_reduce(t, group=self.group)
            return shares
        flat = self.local.jacobian.J.to(w.dtype).T @ w
        dist.all_reduce(flat, group=self.group)
        return self.local.jacobian.unflatten(flat)
