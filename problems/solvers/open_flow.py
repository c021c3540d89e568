r"""A 2-D incompressible flow solver on an open (non-periodic) staggered grid with a fixed obstacle: the unsteady
wake flow of Solver-in-the-Loop (Um et al., NeurIPS 2020), computed as the authors' PhiFlow 1.x code does
(``docs/dev/sil-wake-flow-reference.md`` lists every fact and its source).

Layout. H x W square cells (y first: row i, column j; cell (i, j) spans [j, j+1] x [i, i+1] in index units, times
the cell size ``dx``). The velocity is one padded staggered tensor (..., 2, H+1, W+1):

* component 0 is v_x on the H x (W+1) x-faces: entry [i, j] at (y, x) = (i + 1/2, j), row H is padding;
* component 1 is v_y on the (H+1) x W y-faces: entry [i, j] at (y, x) = (i, j + 1/2), column W is padding.

Padding entries are kept at 0. The boundary faces (columns 0 and W of v_x, rows 0 and H of v_y) are real values.
A centred marker has shape (..., H, W).

One step of length dt (index units: a velocity v moves v dt / dx cells), in the authors' order:

1. explicit viscosity on each component array: v += alpha Laplace_5(v), with replicate (zero-gradient) edges,
   alpha = nu dt / dx^2 (the authors write alpha = dt res^2 / re with res = W, i.e. nu = 1e4 / re on a 100-wide box);
2. the inflow condition: v_y := 1 on face rows 0 and 1 and on face columns 0 and W-1;
3. semi-Lagrangian advection of the marker (velocity averaged to the cell centres, zero outside the domain);
4. semi-Lagrangian self-advection of the velocity (the other component averaged over its 4 nearest faces; values
   outside the domain repeat the edge: free outflow);
5. marker inflow: marker += dt * a soft occupancy of the inflow box;
6. pressure projection (:class:`OpenProjection`): faces touching a solid cell are zeroed, the index-unit divergence
   is removed by solving A p = div with Dirichlet p = 0 one cell outside the domain and no flux through the obstacle;
   the pressure gradient is applied to interior faces only (as in PhiFlow 1.x, the boundary faces keep their values,
   so the fluid cells along the domain boundary keep a small divergence).

Everything is batched over leading dimensions and differentiable (the pressure solve is a dense Cholesky solve of a
fixed matrix, or a sparse LU solve without gradients for large grids).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import SimulationError

__all__ = ["OpenGrid", "OpenProjection", "split", "pack", "diffuse_explicit", "apply_inflow_condition",
           "advect_marker", "advect_velocity", "divergence", "circle_mask", "box_occupancy", "face_mask",
           "pressure_matrix", "flow_step"]


@dataclass(frozen=True)
class OpenGrid:
    """An H x W grid of square cells of size ``dx`` (world units), y first."""
    height: int
    width: int
    dx: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def check(self, velocity: Tensor) -> None:
        """ValueError unless ``velocity`` is a floating padded staggered tensor (..., 2, H+1, W+1)."""
        want = (2, self.height + 1, self.width + 1)
        if not isinstance(velocity, Tensor) or velocity.dim() < 3 or tuple(velocity.shape[-3:]) != want:
            got = tuple(velocity.shape) if isinstance(velocity, Tensor) else type(velocity).__name__
            raise ValueError(f"velocity must be a padded staggered tensor (..., 2, {want[1]}, {want[2]}) for a "
                             f"{self.height} x {self.width} grid (v_x on the x-faces, v_y on the y-faces), got {got}")
        if not velocity.is_floating_point():
            raise ValueError(f"velocity has dtype {velocity.dtype}; use float32 or float64")

    def cell_centres(self, dtype=None, device=None) -> tuple[Tensor, Tensor]:
        """World (y, x) coordinates of the cell centres, each (H, W)."""
        y = (torch.arange(self.height, dtype=dtype, device=device) + 0.5) * self.dx
        x = (torch.arange(self.width, dtype=dtype, device=device) + 0.5) * self.dx
        return torch.meshgrid(y, x, indexing="ij")


def split(velocity: Tensor) -> tuple[Tensor, Tensor]:
    """(v_x (..., H, W+1), v_y (..., H+1, W)) from the padded tensor."""
    return velocity[..., 0, :-1, :], velocity[..., 1, :, :-1]


def pack(vx: Tensor, vy: Tensor) -> Tensor:
    """The padded tensor (..., 2, H+1, W+1) from v_x (..., H, W+1) and v_y (..., H+1, W), padding with zeros."""
    return torch.stack((F.pad(vx, (0, 0, 0, 1)), F.pad(vy, (0, 1, 0, 0))), dim=-3)


def _laplace_replicate(a: Tensor) -> Tensor:
    """5-point Laplacian in index units with replicate padding (a missing neighbour equals the edge value)."""
    lead = a.shape[:-2]
    p = F.pad(a.reshape(-1, 1, *a.shape[-2:]), (1, 1, 1, 1), mode="replicate").reshape(*lead, a.shape[-2] + 2,
                                                                                           a.shape[-1] + 2)
    return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:] - 4 * a


def diffuse_explicit(velocity: Tensor, alpha: float | Tensor) -> Tensor:
    """One explicit viscosity step v += alpha Laplace_5(v) on each component array (replicate edges; stable for
    alpha <= 1/4). ``alpha`` = nu dt / dx^2, a number or a tensor broadcastable to the batch (..., 1, 1)."""
    vx, vy = split(velocity)
    return pack(vx + alpha * _laplace_replicate(vx), vy + alpha * _laplace_replicate(vy))


def apply_inflow_condition(velocity: Tensor, speed: float = 1.0) -> Tensor:
    """v_y := ``speed`` on face rows 0 and 1 and on face columns 0 and W-1 (the authors' wake-flow condition)."""
    vx, vy = split(velocity)
    mask = torch.zeros(vy.shape[-2:], dtype=torch.bool, device=vy.device)
    mask[:2, :] = True
    mask[:, 0] = True
    mask[:, -1] = True
    return pack(vx, torch.where(mask, torch.full_like(vy, speed), vy))


def _sample(field: Tensor, iy: Tensor, ix: Tensor, padding: str) -> Tensor:
    """Bilinear samples of ``field`` (..., h, w) at fractional indices (iy, ix) (..., h', w'): ``padding`` 'border'
    repeats the edge (clamped coordinates), 'zeros' reads 0 beyond the edge (a linear ramp over the first cell)."""
    h, w = field.shape[-2:]
    lead = torch.broadcast_shapes(field.shape[:-2], iy.shape[:-2], ix.shape[:-2])
    out = iy.shape[-2:]
    images = field.expand(*lead, h, w).reshape(-1, 1, h, w)
    gx = 2 * ix.expand(*lead, *out) / max(w - 1, 1) - 1
    gy = 2 * iy.expand(*lead, *out) / max(h - 1, 1) - 1
    grid = torch.stack((gx, gy), dim=-1).reshape(-1, *out, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding, align_corners=True).reshape(*lead, *out)


def _index(n: int, like: Tensor) -> Tensor:
    return torch.arange(n, dtype=like.dtype, device=like.device)


def advect_marker(marker: Tensor, velocity: Tensor, dt: float, dx: float) -> Tensor:
    """m_new(x) = m(x - dt v(x)) at the cell centres, v averaged from the two faces of each cell; zero outside."""
    vx, vy = split(velocity)
    ux = 0.5 * (vx[..., :, :-1] + vx[..., :, 1:])
    uy = 0.5 * (vy[..., :-1, :] + vy[..., 1:, :])
    h, w = marker.shape[-2:]
    c = dt / dx
    iy = _index(h, marker)[:, None] - c * uy
    ix = _index(w, marker)[None, :] - c * ux
    return _sample(marker, iy, ix, "zeros")


def advect_velocity(velocity: Tensor, dt: float, dx: float) -> Tensor:
    """Semi-Lagrangian self-advection of each component along the velocity at its own faces (the other component
    averaged over the 4 nearest faces, edges replicated); samples outside the domain repeat the edge."""
    vx, vy = split(velocity)
    h, w = vx.shape[-2], vy.shape[-1]
    c = dt / dx
    # v_y at the x-faces (i + 1/2, j): v_y[i, j-1], v_y[i, j], v_y[i+1, j-1], v_y[i+1, j], columns replicated
    vy_pad = torch.cat((vy[..., :, :1], vy, vy[..., :, -1:]), dim=-1)                  # (..., H+1, W+2)
    vy_rows = vy_pad[..., :-1, :] + vy_pad[..., 1:, :]                                  # (..., H, W+2)
    vy_at_x = 0.25 * (vy_rows[..., :, :-1] + vy_rows[..., :, 1:])                       # (..., H, W+1)
    # v_x at the y-faces (i, j + 1/2): v_x[i-1, j], v_x[i-1, j+1], v_x[i, j], v_x[i, j+1], rows replicated
    vx_pad = torch.cat((vx[..., :1, :], vx, vx[..., -1:, :]), dim=-2)                  # (..., H+2, W+1)
    vx_cols = vx_pad[..., :, :-1] + vx_pad[..., :, 1:]                                  # (..., H+2, W)
    vx_at_y = 0.25 * (vx_cols[..., :-1, :] + vx_cols[..., 1:, :])                       # (..., H+1, W)
    # v_x lives at index (i, j) of its own array: position (i + 1/2, j); v_y at (i, j + 1/2)
    new_vx = _sample(vx, _index(h, vx)[:, None] - c * vy_at_x, _index(w + 1, vx)[None, :] - c * vx, "border")
    new_vy = _sample(vy, _index(h + 1, vy)[:, None] - c * vy, _index(w, vy)[None, :] - c * vx_at_y, "border")
    return pack(new_vx, new_vy)


def divergence(velocity: Tensor) -> Tensor:
    """Index-unit divergence per cell, (..., H, W): v_x[i, j+1] - v_x[i, j] + v_y[i+1, j] - v_y[i, j]."""
    vx, vy = split(velocity)
    return vx[..., :, 1:] - vx[..., :, :-1] + vy[..., 1:, :] - vy[..., :-1, :]


def circle_mask(grid: OpenGrid, centre: tuple[float, float], radius: float) -> Tensor:
    """Solid cells (H, W) bool: cell centre inside the circle (y, x) ``centre``, ``radius`` (boundary included)."""
    y, x = grid.cell_centres(torch.float64)
    return (y - centre[0]) ** 2 + (x - centre[1]) ** 2 <= radius ** 2


def box_occupancy(grid: OpenGrid, lower: tuple[float, float], upper: tuple[float, float]) -> Tensor:
    """PhiFlow 1.x's soft occupancy of each cell by the box [lower, upper] (y, x), (H, W) float64:
    clip(1/2 - d / (1.414214 dx), 0, 1) with d the signed max-norm distance from the cell centre to the box surface."""
    y, x = grid.cell_centres(torch.float64)
    d = torch.maximum((y - (lower[0] + upper[0]) / 2).abs() - (upper[0] - lower[0]) / 2,
                      (x - (lower[1] + upper[1]) / 2).abs() - (upper[1] - lower[1]) / 2)
    return (0.5 - d / (grid.dx * 1.414214)).clamp(0, 1)


def face_mask(solid: Tensor) -> Tensor:
    """Padded staggered 0/1 mask: a face is 0 if it touches a solid cell (cells outside the domain count as fluid)."""
    fluid = (~solid).double()
    pad_x = F.pad(fluid[None, None], (1, 1, 0, 0), value=1.0)[0, 0]     # (H, W+2)
    pad_y = F.pad(fluid[None, None], (0, 0, 1, 1), value=1.0)[0, 0]     # (H+2, W)
    return pack(pad_x[:, :-1] * pad_x[:, 1:], pad_y[:-1, :] * pad_y[1:, :])


def pressure_matrix(solid: Tensor):
    """The PhiFlow 1.x pressure matrix A (scipy CSR, N = H W, row-major cells): for a fluid cell, +1 towards each
    fluid neighbour inside the domain and a diagonal of -(fluid neighbours + neighbours outside the domain), so p = 0
    one cell outside (Dirichlet) and no flux through the obstacle; a solid cell only has its diagonal,
    -max(1, fluid or outside neighbours)."""
    import scipy.sparse as sp
    fluid = ~solid.cpu().numpy()
    h, w = fluid.shape
    index = np.arange(h * w).reshape(h, w)
    rows, cols, vals = [], [], []
    diag = np.zeros((h, w))
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = np.arange(h)[:, None] + dy, np.arange(w)[None, :] + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        inside = np.broadcast_to(inside, (h, w))
        nyc, nxc = np.clip(ny, 0, h - 1), np.clip(nx, 0, w - 1)
        neighbour_fluid = np.where(inside, fluid[np.broadcast_to(nyc, (h, w)), np.broadcast_to(nxc, (h, w))], True)
        diag -= neighbour_fluid
        couple = inside & fluid & neighbour_fluid
        rows.append(index[couple])
        cols.append(index[np.broadcast_to(nyc, (h, w)), np.broadcast_to(nxc, (h, w))][couple])
        vals.append(np.ones(int(couple.sum())))
    diag = np.minimum(diag, -1.0)
    rows.append(index.ravel())
    cols.append(index.ravel())
    vals.append(diag.ravel())
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(h * w, h * w))


class OpenProjection:
    """The pressure projection of an open grid with a fixed obstacle (PhiFlow 1.x ``divergence_free``).

    ``method`` 'dense': a Cholesky factor of -A, differentiable, for source-size grids (N = H W up to a few
    thousand); 'sparse': scipy's sparse LU, no gradients, for reference-size grids. Both solve exactly (the authors
    train with CG to 1e-5 and evaluate with a direct solve)."""

    def __init__(self, solid: Tensor, method: str = "dense"):
        if method not in ("dense", "sparse"):
            raise ValueError(f"unknown pressure solve '{method}'; choose 'dense' or 'sparse'")
        self.solid, self.method = solid.bool(), method
        self.shape = tuple(solid.shape)
        self.mask = face_mask(self.solid)
        matrix = pressure_matrix(self.solid)
        if method == "dense":
            self.factor = torch.linalg.cholesky(torch.as_tensor(-matrix.toarray()))
        else:
            import scipy.sparse.linalg as spla
            self.lu = spla.splu((-matrix).tocsc())
        self._cache: dict[tuple, Tensor] = {}

    def _on(self, t: Tensor, like: Tensor) -> Tensor:
        key = (id(t), like.dtype, like.device)
        if key not in self._cache:
            self._cache[key] = t.to(dtype=like.dtype, device=like.device)
        return self._cache[key]

    def solve(self, div: Tensor) -> Tensor:
        """p with A p = div, (..., H, W)."""
        lead = div.shape[:-2]
        rhs = -div.reshape(-1, self.shape[0] * self.shape[1])
        if self.method == "dense":
            p = torch.cholesky_solve(rhs.T, self._on(self.factor, div)).T
        else:
            if torch.is_grad_enabled() and div.requires_grad:
                raise SimulationError("the sparse pressure solve has no gradients; use method='dense' to train "
                                      "through the solver")
            p = torch.as_tensor(self.lu.solve(rhs.detach().cpu().double().numpy().T).T).to(div)
        return p.reshape(*lead, *self.shape)

    def __call__(self, velocity: Tensor) -> Tensor:
        """Mask the obstacle faces, remove the divergence, mask again; boundary faces get no pressure gradient."""
        if tuple(velocity.shape[-2:]) != (self.shape[0] + 1, self.shape[1] + 1):
            raise ValueError(f"velocity grid {tuple(velocity.shape[-2:])} does not fit this projection's "
                             f"{self.shape[0]} x {self.shape[1]} cells (padded staggered: "
                             f"{self.shape[0] + 1} x {self.shape[1] + 1})")
        mask = self._on(self.mask, velocity)
        v = velocity * mask
        p = self.solve(divergence(v))
        gx = F.pad(p[..., :, 1:] - p[..., :, :-1], (1, 1))              # boundary x-faces: no gradient
        gy = F.pad(p[..., 1:, :] - p[..., :-1, :], (0, 0, 1, 1))        # boundary y-faces: no gradient
        return v - pack(gx, gy) * mask


def flow_step(velocity: Tensor, marker: Tensor | None, *, dt: float, dx: float, alpha: float | Tensor,
              projection: OpenProjection, inflow: Tensor | None = None,
              inflow_speed: float | None = 1.0) -> tuple[Tensor, Tensor | None]:
    """One wake-flow step in the authors' order: viscosity, the inflow condition on v_y (None: none), marker
    advection, velocity advection, marker inflow (``inflow`` (H, W) per unit time), pressure projection.
    Returns (velocity, marker); marker may be None."""
    if not torch.isfinite(velocity).all():
        raise SimulationError("velocity contains NaN or inf; check the network output or the initial state")
    v = diffuse_explicit(velocity, alpha)
    if inflow_speed is not None:
        v = apply_inflow_condition(v, inflow_speed)
    m = None if marker is None else advect_marker(marker, v, dt, dx)
    v = advect_velocity(v, dt, dx)
    if m is not None and inflow is not None:
        m = m + dt * inflow.to(m)
    return projection(v), m
