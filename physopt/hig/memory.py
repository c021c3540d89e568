"""Memory planning for the per-example Jacobian: how many examples one ``vmap`` call may take.

The stacked result (b |y| x columns, columns = |theta| for the dense route, sum of layer widths for the factored one)
and its decomposition are held at once; on top of that each example in a vmap chunk costs about

    per_example = |y| * (2 * columns * itemsize + saved activations of one forward+backward),

so the chunk is the largest c with  fixed + c * per_example <= memory_bound.  This is the only thing that changes
when memory is short; the result does not (tests/physopt/hig/test_memory.py).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .per_example import Physics, slice_examples

__all__ = ["MemoryBoundError", "decomposition_bytes", "saved_activation_bytes", "chunk_size_for", "plan_chunks"]


class MemoryBoundError(MemoryError):
    """The Jacobian (or its decomposition) does not fit into the memory bound even one example at a time."""


def decomposition_bytes(route: str, rows: int, cols: int) -> int:
    """Float64 working memory of the half-inversion beyond the Jacobian itself: the thin SVD's U, V and copy of J
    for ``svd``, the rows x rows Gram matrix, its eigenvectors and temporaries for ``gram`` and ``factored``."""
    if route == "svd":
        return 8 * (2 * rows * cols + rows * rows)
    return 8 * 4 * rows * rows


def saved_activation_bytes(model: nn.Module, inputs: Tensor, physics: Physics, args: tuple) -> int:
    """Bytes autograd saves for the backward pass of one example through network + physics."""
    total = [0]

    def pack(t: Tensor) -> Tensor:
        total[0] += t.numel() * t.element_size()
        return t

    one, one_args = inputs[:1], slice_examples(args, 0, 1)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        physics(model(one), *one_args)
    return total[0]


def chunk_size_for(memory_bound: int | None, batch: int, fixed_bytes: int, per_example_bytes: int,
                   what: str) -> int:
    """Largest chunk of examples with  fixed + chunk * per_example <= memory_bound  (all of them without a bound)."""
    if memory_bound is None:
        return batch
    free = memory_bound - fixed_bytes
    if free < per_example_bytes:
        raise MemoryBoundError(
            f"{what} needs about {_gib(fixed_bytes + per_example_bytes)} even one example at a time "
            f"({_gib(fixed_bytes)} for the stacked result and its decomposition), more than memory_bound = "
            f"{_gib(memory_bound)}: lower the batch size, use a smaller network, or raise memory_bound")
    return max(1, min(batch, free // per_example_bytes))


def plan_chunks(model: nn.Module, inputs: Tensor, physics: Physics, args: tuple, y_full: Tensor, columns: int,
                chunk_size: int | None, memory_bound: int | None, extra_bytes: int, what: str) -> int:
    """The chunk size for a stacked result of b |y| x ``columns`` plus ``extra_bytes`` (``chunk_size`` if given)."""
    if chunk_size is not None:
        return chunk_size
    b, m, item = inputs.shape[0], y_full[0].numel(), torch.finfo(y_full.dtype).bits // 8
    fixed = b * m * columns * item + extra_bytes
    per_example = 0 if memory_bound is None else \
        m * (2 * columns * item + saved_activation_bytes(model, inputs, physics, args))
    return chunk_size_for(memory_bound, b, fixed, per_example, what)


def _gib(n: float) -> str:
    return f"{n / 2 ** 30:.3g} GiB"
