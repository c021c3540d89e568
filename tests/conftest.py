"""Shared fixtures: every device test runs on the CPU, and on CUDA (marked `gpu`) where one exists."""
import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.gpu,
                                pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]),
]


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)
