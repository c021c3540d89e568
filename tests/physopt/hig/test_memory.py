"""physopt.hig.memory: a memory bound shrinks the vmap chunk and nothing else, or refuses with advice."""
import pytest
import torch

from physopt.hig.dense import per_example_jacobian
from physopt.hig.memory import MemoryBoundError, chunk_size_for, decomposition_bytes, saved_activation_bytes


def test_chunk_is_the_largest_that_fits():
    assert chunk_size_for(None, 64, 10**9, 10**9, "J") == 64                # no bound: everything at once
    assert chunk_size_for(1000, 64, 100, 90, "J") == 10                     # 100 + 10 * 90 <= 1000 < 100 + 11 * 90
    assert chunk_size_for(10**9, 64, 100, 90, "J") == 64
    with pytest.raises(MemoryBoundError, match="J needs about .* even one example at a time"):
        chunk_size_for(1000, 64, 950, 90, "J")


def test_decomposition_memory_follows_the_route():
    rows, cols = 30, 1000
    assert decomposition_bytes("svd", rows, cols) == 8 * (2 * rows * cols + rows * rows)
    assert decomposition_bytes("gram", rows, cols) == decomposition_bytes("factored", rows, cols) == 8 * 4 * rows ** 2


def test_saved_activations_count_what_autograd_keeps_for_one_example(setup, physics):
    net, inputs, target = setup()
    one = saved_activation_bytes(net, inputs, physics, (target,))
    assert one > 0
    assert saved_activation_bytes(net.float(), inputs.float(), physics, (target.float(),)) == one // 2


def test_memory_bound_shrinks_the_chunk_and_refuses_what_cannot_fit(setup, physics):
    net, inputs, target = setup(b=64)
    n = sum(p.numel() for p in net.parameters())
    j_bytes = 64 * 3 * n * 8
    roomy = per_example_jacobian(net, inputs, physics, target, memory_bound=2 ** 30)
    tight = per_example_jacobian(net, inputs, physics, target, memory_bound=j_bytes + 40_000)
    assert roomy.chunk_size == 64 and 1 <= tight.chunk_size < 64
    torch.testing.assert_close(tight.J, roomy.J)
    with pytest.raises(MemoryBoundError, match="lower the batch size"):
        per_example_jacobian(net, inputs, physics, target, memory_bound=j_bytes // 2)
