"""PhiFlow as an independent reference for the grid solvers: conversions between physopt's staggered layout
(..., 2, H, W) with (v_x, v_y) and PhiFlow's periodic grids, in float64."""
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="module")
def phiflow():
    """``phiflow.flow`` is ``phi.torch.flow`` at float64; ``staggered(v, dx)`` / ``centred(m, dx)`` build periodic
    PhiFlow grids from batched torch fields (b, 2, H, W) / (b, H, W); ``values(grid)`` returns a staggered grid's
    values in physopt's layout."""
    flow = pytest.importorskip("phi.torch.flow")
    flow.math.set_global_precision(64)

    def bounds(n, dx):
        return flow.Box(x=n * dx, y=n * dx)

    def staggered(v, dx):
        n = v.shape[-1]
        comps = [flow.math.tensor(v[:, k].transpose(-1, -2), flow.batch("b"), flow.spatial("x,y")) for k in range(2)]
        values = flow.math.stack(comps, flow.dual(vector="x,y"))
        return flow.StaggeredGrid(values, flow.extrapolation.PERIODIC, bounds=bounds(n, dx), x=n, y=n)

    def centred(m, dx):
        n = m.shape[-1]
        return flow.CenteredGrid(flow.math.tensor(m.transpose(-1, -2), flow.batch("b"), flow.spatial("x,y")),
                                 flow.extrapolation.PERIODIC, bounds=bounds(n, dx), x=n, y=n)

    def values(grid):
        import torch
        return torch.stack([grid.values[{"~vector": c}].native("b,y,x") for c in "xy"], 1)

    yield SimpleNamespace(flow=flow, staggered=staggered, centred=centred, values=values)
    flow.math.set_global_precision(32)
