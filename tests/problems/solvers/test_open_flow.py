"""The open-grid wake-flow solver (problems/solvers/open_flow.py): projection with an obstacle against a direct
sparse solve and the divergence it leaves, rasterisation against the numbers of PhiFlow 1.x's formulas, a uniform
stream as a fixed point, advection against exact shifts, gradcheck in float64."""
import math

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch
from torch.autograd import gradcheck

from problems.solvers import SimulationError
from problems.solvers import open_flow as O

F64 = torch.float64


def wake_grid(res):
    return O.OpenGrid(2 * res, res, 100 / res)


def random_velocity(grid, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(batch, 2, grid.height + 1, grid.width + 1, generator=g, dtype=F64)
    return O.pack(*O.split(v))


def uniform_stream(grid, batch=1, speed=1.0):
    v = torch.zeros(batch, 2, grid.height + 1, grid.width + 1, dtype=F64)
    v[:, 1, :, :grid.width] = speed
    return v


# ---- geometry -----------------------------------------------------------------------------------------------------

def test_obstacle_and_inflow_rasterisation_match_the_authors_grids():
    """Cell counts from PhiFlow 1.x's formulas (hard sphere mask at cell centres, soft box occupancy
    clip(1/2 - d / (1.414214 dx), 0, 1)): 524 solid cells and an inflow of 403 per step on the 256 x 128 reference,
    32 and 28.0 on the 64 x 32 source."""
    for res, solid_cells, inflow_cells, inflow_sum in ((128, 524, 528, 403.02), (32, 32, 54, 27.99)):
        grid = wake_grid(res)
        solid = O.circle_mask(grid, (50, 50), 10)
        inflow = O.box_occupancy(grid, (5, 25), (10, 75))
        assert int(solid.sum()) == solid_cells
        assert int((inflow > 0).sum()) == inflow_cells and float(inflow.sum()) == pytest.approx(inflow_sum, abs=0.01)
    column = O.box_occupancy(wake_grid(32), (5, 25), (10, 75))[:4, 16]
    torch.testing.assert_close(column, torch.tensor([0.0, 0.42929, 0.99497, 0.28787], dtype=F64), atol=1e-5, rtol=0)


def test_pack_and_split_keep_the_padding_zero():
    grid = O.OpenGrid(5, 4, 1.0)
    v = random_velocity(grid)
    assert v.shape == (2, 2, 6, 5)
    assert v[:, 0, -1, :].abs().max() == 0 and v[:, 1, :, -1].abs().max() == 0
    vx, vy = O.split(v)
    assert vx.shape == (2, 5, 5) and vy.shape == (2, 6, 4)
    assert torch.equal(O.pack(vx, vy), v)


# ---- projection ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    grid = O.OpenGrid(12, 10, 1.0)
    solid = torch.zeros(12, 10, dtype=torch.bool)
    solid[4:7, 3:6] = True
    return grid, solid


def test_projection_leaves_interior_fluid_cells_divergence_free_and_obstacle_faces_closed(small):
    grid, solid = small
    out = O.OpenProjection(solid)(random_velocity(grid, seed=1))
    div = O.divergence(out)
    interior = torch.zeros_like(solid)
    interior[1:-1, 1:-1] = True
    assert div[:, interior & ~solid].abs().max() < 1e-12
    closed = O.face_mask(solid) == 0
    assert out[:, closed].abs().max() == 0
    # as in PhiFlow 1.x the boundary faces get no pressure gradient: they keep their (masked) values
    v = random_velocity(grid, seed=1)
    vx, vy = O.split(out)
    wx, wy = O.split(v)
    torch.testing.assert_close(vx[..., [0, -1]], wx[..., [0, -1]])
    torch.testing.assert_close(vy[..., [0, -1], :], wy[..., [0, -1], :])


def test_the_pressure_solves_the_stated_system_exactly(small):
    """Dense (Cholesky) and sparse (LU) routes agree with scipy's direct solve of the matrix: Dirichlet ghost cells
    outside the domain, Neumann at the obstacle."""
    grid, solid = small
    A = O.pressure_matrix(solid)
    dense = A.toarray()
    assert np.allclose(dense, dense.T)
    assert dense[0, 0] == -4                                                 # corner: 2 outside + 2 fluid
    assert dense[1 * 10 + 1, 1 * 10 + 1] == -4                               # interior: 4 fluid
    assert dense[3 * 10 + 4, 3 * 10 + 4] == -3                               # fluid above the obstacle: no flux
    div = torch.randn(2, 12, 10, generator=torch.Generator().manual_seed(2), dtype=F64)
    expected = np.stack([spla.spsolve(A.tocsc(), d.numpy().ravel()) for d in div]).reshape(2, 12, 10)
    for method in ("dense", "sparse"):
        torch.testing.assert_close(O.OpenProjection(solid, method).solve(div), torch.as_tensor(expected),
                                   atol=1e-10, rtol=0)


def test_sparse_route_refuses_gradients(small):
    grid, solid = small
    v = random_velocity(grid).requires_grad_()
    with pytest.raises(SimulationError, match="method='dense'"):
        O.OpenProjection(solid, "sparse")(v)


# ---- known flows and exact shifts -------------------------------------------------------------------------------

def test_a_uniform_stream_without_obstacle_is_a_fixed_point_of_the_step():
    grid = wake_grid(8)
    projection = O.OpenProjection(torch.zeros(grid.shape, dtype=torch.bool))
    v = uniform_stream(grid)
    out, _ = O.flow_step(v, None, dt=1.0, dx=grid.dx, alpha=0.1, projection=projection)
    torch.testing.assert_close(out, v, atol=1e-12, rtol=0)


def test_advection_by_a_whole_number_of_cells_shifts_the_fields():
    """A uniform stream of 2 cells per step along y carries v_x and a marker 2 rows up; the 2 rows that enter from
    below repeat the edge value (velocity) or read 0 (marker)."""
    grid = O.OpenGrid(10, 6, 0.5)
    v = uniform_stream(grid, speed=1.0)
    g = torch.Generator().manual_seed(3)
    vx, vy = O.split(v)
    vx = 1e-9 * torch.randn(vx.shape, generator=g, dtype=F64)          # a tiny cross flow: v_y stays 1
    marker = torch.rand(1, 10, 6, generator=g, dtype=F64)
    v = O.pack(vx, vy)
    moved = O.advect_velocity(v, dt=1.0, dx=0.5)
    new_vx, new_vy = O.split(moved)
    torch.testing.assert_close(new_vx[:, 2:], vx[:, :-2], atol=1e-12, rtol=0)
    torch.testing.assert_close(new_vx[:, :2], vx[:, :1].expand(-1, 2, -1), atol=1e-12, rtol=0)
    torch.testing.assert_close(new_vy, vy)
    m = O.advect_marker(marker, v, dt=1.0, dx=0.5)
    torch.testing.assert_close(m[:, 2:], marker[:, :-2], atol=1e-8, rtol=0)
    assert m[:, :2].abs().max() < 1e-8


def test_explicit_viscosity_uses_zero_gradient_edges():
    grid = O.OpenGrid(6, 5, 1.0)
    v = random_velocity(grid, batch=1, seed=4)
    out = O.diffuse_explicit(v, 0.2)
    vx, _ = O.split(v)
    corner = vx[0, 0, 0] + 0.2 * (vx[0, 1, 0] + vx[0, 0, 1] - 2 * vx[0, 0, 0])
    torch.testing.assert_close(O.split(out)[0][0, 0, 0], corner)
    assert out[:, 0, -1].abs().max() == 0 and out[:, 1, :, -1].abs().max() == 0


def test_the_inflow_condition_sets_the_authors_faces():
    grid = O.OpenGrid(6, 5, 1.0)
    _, vy = O.split(O.apply_inflow_condition(torch.zeros(1, 2, 7, 6, dtype=F64)))
    expected = torch.zeros(7, 5, dtype=F64)
    expected[:2] = 1
    expected[:, 0] = 1
    expected[:, -1] = 1
    torch.testing.assert_close(vy[0], expected)


# ---- autograd and bad input --------------------------------------------------------------------------------------

def test_step_gradients_match_finite_differences_in_float64(small):
    grid, solid = small
    projection = O.OpenProjection(solid)
    v = (0.3 * random_velocity(grid, batch=1, seed=5)).requires_grad_()
    m = torch.rand(1, 12, 10, generator=torch.Generator().manual_seed(6), dtype=F64).requires_grad_()

    def step(v, m):
        out, marker = O.flow_step(v, m, dt=1.0, dx=1.0, alpha=0.1, projection=projection,
                                  inflow=torch.ones(12, 10, dtype=F64))
        return O.split(out)[0], O.split(out)[1], marker

    assert gradcheck(step, (v, m))


def test_bad_input_is_named(small):
    grid, solid = small
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, 13, 11\)"):
        grid.check(torch.zeros(1, 2, 12, 10))
    with pytest.raises(ValueError, match="does not fit this projection"):
        O.OpenProjection(solid)(torch.zeros(1, 2, 9, 9))
    with pytest.raises(ValueError, match="unknown pressure solve"):
        O.OpenProjection(solid, "cg")
    with pytest.raises(SimulationError, match="NaN"):
        O.flow_step(torch.full((1, 2, 13, 11), math.nan), None, dt=1.0, dx=1.0, alpha=0.1,
                    projection=O.OpenProjection(solid))
