"""Shared fixtures for the HIG route tests: a small network, a nonlinear 'solver' with outputs on different scales,
and the independent reference, the whole batch's Jacobian from torch.autograd.functional.jacobian."""
import pytest
import torch
from torch import nn
from torch.func import functional_call


def scaled_physics(x, target):
    """Three outputs on scales 10, 1 and 0.01, coupled nonlinearly."""
    return torch.stack([10 * torch.sin(x[:, 0]), x[:, 1] * x[:, 2], 0.01 * x[:, 3]], dim=-1)


def scaled_physics_jacobian(x, target):
    """(y, dy/dx) of :func:`scaled_physics` by hand, (b, 3) and (b, 3, 4): what a physics supplies in closed form."""
    J = torch.zeros(x.shape[0], 3, 4, dtype=x.dtype)
    J[:, 0, 0] = 10 * torch.cos(x[:, 0])
    J[:, 1, 1], J[:, 1, 2] = x[:, 2], x[:, 1]
    J[:, 2, 3] = 0.01
    return scaled_physics(x, target), J


@pytest.fixture
def physics():
    return scaled_physics


@pytest.fixture
def physics_jacobian():
    return scaled_physics_jacobian


@pytest.fixture
def setup():
    """setup(seed, b) -> (net, inputs, target): a double-precision MLP 3 -> 8 -> 4 and a batch of b examples."""
    def make(seed=0, b=5):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 4)).double()
        return net, torch.randn(b, 3, dtype=torch.float64), torch.randn(b, 3, dtype=torch.float64)
    return make


@pytest.fixture
def dense_reference():
    """d(all outputs)/d(all weights) of the whole batch, (b*|y|, |theta|) example-major, with plain autograd."""
    def reference(net, inputs, target, physics=scaled_physics):
        names = [n for n, _ in net.named_parameters()]

        def y_of(*ps):
            return physics(functional_call(net, dict(zip(names, ps)), (inputs,)), target).reshape(-1)

        blocks = torch.autograd.functional.jacobian(y_of, tuple(net.parameters()))
        return torch.cat([j.reshape(j.shape[0], -1) for j in blocks], dim=1)
    return reference


HOST_READS = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.masked_select.default",
              "aten.is_nonzero.default", "aten.equal.default", "aten.unique_dim.default", "aten._unique2.default"}


@pytest.fixture
def host_reads():
    """A context that records every op reading a tensor's values on the host (item/bool/float, nonzero, boolean
    indexing, ...): each is a device sync on CUDA. Intercepted at the dispatcher, so torch's own C++ reads count."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Spy(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.reads: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if str(func) in HOST_READS:
                self.reads.append(str(func))
            return func(*args, **(kwargs or {}))

    return Spy
