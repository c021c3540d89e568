"""Shared by the operator-problem tests: seeded CPU generators."""
import pytest
import torch


@pytest.fixture
def gen():
    """``gen(seed=0)``: a CPU generator seeded with ``seed``."""
    def make(seed=0):
        return torch.Generator().manual_seed(seed)
    return make
