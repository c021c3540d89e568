"""A differentiable 2-D incompressible flow solver on a periodic staggered (MAC) grid, in plain torch.

Layout (Harlow & Welch's marker-and-cell grid). A domain of H x W square cells of size ``dx``; array index [i, j]
is row i (the y axis) and column j (the x axis), so cell (i, j) spans [j dx, (j+1) dx] x [i dx, (i+1) dx].

* centred fields (marker, pressure) have shape (..., H, W), sample (i, j) at ((j + 1/2) dx, (i + 1/2) dx);
* staggered velocity has shape (..., 2, H, W): component 0 is v_x on the left cell faces, at (j dx, (i + 1/2) dx),
  component 1 is v_y on the bottom faces, at ((j + 1/2) dx, i dx). Everything wraps around (periodic).

With this layout the divergence at a cell centre is exact in the face fluxes, and the pressure projection
(Chorin 1967) is solved exactly by one FFT pair: (div grad) is the 5-point periodic Laplacian, diagonal in Fourier
space. Advection is semi-Lagrangian (back-trace along the velocity, bilinear interpolation) or MacCormack
(Selle et al. 2008: forward and backward semi-Lagrangian passes, half the round-trip error added back, clamped to
the values the forward pass interpolated from).

Every function is batched over leading dimensions, free of in-place writes to its inputs and of Python control flow
on tensor values (except :func:`check_cfl`, which is skipped inside torch.func transforms), so ``vmap``/``jacrev``
and autograd work through it on any device and floating dtype.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import SimulationError
from .grids import solve_poisson_periodic, spectral_diffusion

__all__ = [
    "CFLWarning", "check_velocity", "check_cfl", "divergence", "pressure_gradient", "project", "centred_velocity",
    "sample_periodic", "semi_lagrangian", "maccormack", "advect_centred", "advect_velocity", "kinetic_energy",
    "rescale_energy", "rescale_mass", "fluid_step", "centre_of_mass", "cell_centres", "face_positions",
]

#: grid offsets (in cells, (y, x)) of each kind of sample point relative to the cell corner
CENTRE = (0.5, 0.5)
X_FACE = (0.5, 0.0)
Y_FACE = (0.0, 0.5)


class CFLWarning(UserWarning):
    """The time step moves the flow across many cells per step (semi-Lagrangian accuracy degrades)."""


# ----------------------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------------------

def check_velocity(velocity: Tensor, shape: tuple[int, int] | None = None) -> None:
    """Raise ValueError unless ``velocity`` is a floating (..., 2, H, W) staggered field (of spatial ``shape``)."""
    if not isinstance(velocity, Tensor):
        raise ValueError(f"velocity must be a torch.Tensor of shape (..., 2, H, W), got {type(velocity).__name__}")
    if velocity.dim() < 3 or velocity.shape[-3] != 2:
        raise ValueError(f"velocity must have shape (..., 2, H, W) (component 0 = v_x on x-faces, 1 = v_y on "
                         f"y-faces), got {tuple(velocity.shape)}; stack the two components along dim -3")
    if shape is not None and tuple(velocity.shape[-2:]) != tuple(shape):
        raise ValueError(f"velocity grid is {tuple(velocity.shape[-2:])} but the domain has {tuple(shape)} cells; "
                         f"resample the field or build the problem with resolution={velocity.shape[-1]}")
    if not velocity.is_floating_point():
        raise ValueError(f"velocity has dtype {velocity.dtype}; use float32 or float64")


def _concrete(t: Tensor) -> float | None:
    """``t.item()``, or None inside a torch.func transform (where values are not concrete)."""
    try:
        return float(t.detach().item())
    except RuntimeError:
        return None


def check_cfl(velocity: Tensor, dt: float, dx: float, max_cfl: float = 10.0) -> float | None:
    """Check the time step against the flow: returns the CFL number max|v| dt / dx (None inside transforms).

    Semi-Lagrangian advection is unconditionally stable, but it assumes straight trajectories over one step and
    MacCormack's error correction assumes the back-trace stays local. Raises ValueError for a non-positive or
    non-finite dt, a velocity with NaN/inf, or a step that carries the flow across half the domain or more (the
    back-trace wraps around the periodic domain); warns with :class:`CFLWarning` above ``max_cfl`` cells per step.
    The SIP paper's fluid setup reaches a CFL number of about 6.
    """
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite number > 0, got {dt!r}")
    vmax = _concrete(velocity.abs().amax()) if velocity.numel() else 0.0
    if vmax is None:
        return None
    if not math.isfinite(vmax):
        raise SimulationError("velocity contains NaN or inf; check the network output or the initial condition")
    cfl = vmax * dt / dx
    half_domain = min(velocity.shape[-2:]) / 2
    if cfl >= half_domain:
        raise SimulationError(f"time step too large: max|v| dt / dx = {cfl:.3g} cells per step reaches half the domain "
                         f"({half_domain:g} cells), so the back-trace wraps around; reduce dt below "
                         f"{half_domain * dx / max(vmax, 1e-30) / 2:.3g} or the velocity")
    if cfl > max_cfl:
        warnings.warn(f"CFL number {cfl:.3g} > {max_cfl:g} (max|v| = {vmax:.3g}, dt = {dt:g}, dx = {dx:g}): the "
                      f"semi-Lagrangian back-trace crosses many cells per step and loses accuracy; use a smaller dt "
                      f"(more steps)", CFLWarning, stacklevel=2)
    return cfl


# ----------------------------------------------------------------------------------------------------------------
# Positions
# ----------------------------------------------------------------------------------------------------------------

def _grid_points(shape: tuple[int, int], offset: tuple[float, float], dx: float, *, dtype=None,
                 device=None) -> Tensor:
    h, w = shape
    y = (torch.arange(h, dtype=dtype, device=device) + offset[0]) * dx
    x = (torch.arange(w, dtype=dtype, device=device) + offset[1]) * dx
    return torch.stack(torch.meshgrid(y, x, indexing="ij"))


def cell_centres(shape: tuple[int, int], dx: float = 1.0, *, dtype=None, device=None) -> Tensor:
    """Physical (y, x) positions of the cell centres, shape (2, H, W)."""
    return _grid_points(shape, CENTRE, dx, dtype=dtype, device=device)


def face_positions(shape: tuple[int, int], dx: float = 1.0, *, dtype=None, device=None) -> tuple[Tensor, Tensor]:
    """Physical (y, x) positions of the x-faces (where v_x lives) and the y-faces (v_y), each (2, H, W)."""
    return (_grid_points(shape, X_FACE, dx, dtype=dtype, device=device),
            _grid_points(shape, Y_FACE, dx, dtype=dtype, device=device))


# ----------------------------------------------------------------------------------------------------------------
# Differential operators and the pressure projection
# ----------------------------------------------------------------------------------------------------------------

def divergence(velocity: Tensor, dx: float = 1.0) -> Tensor:
    """(div v)_{ij} = (vx_{i,j+1} - vx_{ij} + vy_{i+1,j} - vy_{ij}) / dx, at the cell centres, shape (..., H, W)."""
    vx, vy = velocity[..., 0, :, :], velocity[..., 1, :, :]
    return (torch.roll(vx, -1, -1) - vx + torch.roll(vy, -1, -2) - vy) / dx


def pressure_gradient(p: Tensor, dx: float = 1.0) -> Tensor:
    """grad p on the faces: ((p_{ij} - p_{i,j-1}) / dx, (p_{ij} - p_{i-1,j}) / dx), shape (..., 2, H, W)."""
    return torch.stack(((p - torch.roll(p, 1, -1)) / dx, (p - torch.roll(p, 1, -2)) / dx), dim=-3)


def project(velocity: Tensor, dx: float = 1.0) -> Tensor:
    """Pressure projection onto discretely divergence-free fields: v - grad p with (div grad) p = div v.

    div grad is the 5-point periodic Laplacian, solved exactly by FFT
    (:func:`problems.solvers.grids.solve_poisson_periodic`), so div of the result vanishes to round-off. A linear
    orthogonal projector; it keeps the mean flow.
    """
    return velocity - pressure_gradient(solve_poisson_periodic(divergence(velocity, dx), dx), dx)


def centred_velocity(velocity: Tensor) -> Tensor:
    """Velocity at the cell centres, (..., 2, H, W): each component averaged over its two faces of the cell."""
    vx, vy = velocity[..., 0, :, :], velocity[..., 1, :, :]
    return torch.stack((0.5 * (vx + torch.roll(vx, -1, -1)), 0.5 * (vy + torch.roll(vy, -1, -2))), dim=-3)


def _velocity_at_faces(velocity: Tensor) -> tuple[Tensor, Tensor]:
    """(v_x, v_y) at the x-faces and at the y-faces: the other component averaged over its 4 nearest samples."""
    vx, vy = velocity[..., 0, :, :], velocity[..., 1, :, :]
    # v_y at x-face (i + 1/2, j): v_y samples at rows i, i+1 and columns j-1, j
    vy_s = vy + torch.roll(vy, -1, -2)
    vy_at_x = 0.25 * (vy_s + torch.roll(vy_s, 1, -1))
    # v_x at y-face (i, j + 1/2): v_x samples at rows i-1, i and columns j, j+1
    vx_s = vx + torch.roll(vx, -1, -1)
    vx_at_y = 0.25 * (vx_s + torch.roll(vx_s, 1, -2))
    return torch.stack((vx, vy_at_x), dim=-3), torch.stack((vx_at_y, vy), dim=-3)


# ----------------------------------------------------------------------------------------------------------------
# Interpolation and advection
# ----------------------------------------------------------------------------------------------------------------

def _as_images(field: Tensor, lead: tuple[int, ...]) -> Tensor:
    """(..., H, W) -> (N, 1, H+1, W+1): one image per leading index, padded by one periodic row and column."""
    h, w = field.shape[-2:]
    return F.pad(field.expand(*lead, h, w).reshape(-1, 1, h, w), (0, 1, 0, 1), mode="circular")


def _index_grid(iy: Tensor, ix: Tensor, shape: tuple[int, ...], size: tuple[int, int]) -> Tensor:
    """A ``grid_sample`` grid (N, H', W', 2) (align_corners=True) addressing pixel (iy, ix) of (size_y, size_x)
    images; indices are expanded to ``shape`` = (*lead, H', W')."""
    y = 2 * iy.expand(shape) / (size[0] - 1) - 1
    x = 2 * ix.expand(shape) / (size[1] - 1) - 1
    return torch.stack((x, y), dim=-1).reshape(-1, *shape[-2:], 2)


def _out_shape(field: Tensor, iy: Tensor, ix: Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
    lead = tuple(torch.broadcast_shapes(field.shape[:-2], iy.shape[:-2], ix.shape[:-2]))
    return lead, (*lead, *iy.shape[-2:])


def sample_periodic(field: Tensor, iy: Tensor, ix: Tensor) -> Tensor:
    """Bilinear interpolation of a periodic grid field (..., H, W) at fractional indices (iy, ix) (..., H', W').

    f(iy, ix) = sum over the 4 surrounding samples of (1 - |iy - i|)(1 - |ix - j|) f_{i mod H, j mod W};
    differentiable in the field values and in the positions (``grid_sample`` on the periodically padded field).
    """
    h, w = field.shape[-2:]
    lead, shape = _out_shape(field, iy, ix)
    grid = _index_grid(torch.remainder(iy, h), torch.remainder(ix, w), shape, (h + 1, w + 1))
    out = F.grid_sample(_as_images(field, lead), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.reshape(shape)


def _stencil_bounds(field: Tensor, iy: Tensor, ix: Tensor) -> tuple[Tensor, Tensor]:
    """(min, max) of the 4 samples that bilinear interpolation at (iy, ix) combines."""
    h, w = field.shape[-2:]
    lead, shape = _out_shape(field, iy, ix)
    images = _as_images(field, lead)
    # pooled[i, j] covers samples (i, i+1) x (j, j+1): the stencil of every point in cell (i, j)
    grid = _index_grid(torch.remainder(torch.floor(iy), h), torch.remainder(torch.floor(ix), w), shape, (h, w))

    def pick(pooled: Tensor) -> Tensor:
        return F.grid_sample(pooled, grid, mode="nearest", align_corners=True).reshape(shape)

    return -pick(F.max_pool2d(-images, 2, stride=1)), pick(F.max_pool2d(images, 2, stride=1))


def _back_trace(field: Tensor, vel: Tensor, courant: float) -> tuple[Tensor, Tensor]:
    """Fractional indices of x - dt v(x) for every sample x of ``field``; vel (..., 2, H, W) holds (v_x, v_y) at the
    field's own sample points and ``courant`` = dt / dx."""
    h, w = field.shape[-2:]
    i = torch.arange(h, dtype=field.dtype, device=field.device)[:, None]
    j = torch.arange(w, dtype=field.dtype, device=field.device)[None, :]
    return i - courant * vel[..., 1, :, :], j - courant * vel[..., 0, :, :]


def semi_lagrangian(field: Tensor, vel: Tensor, courant: float) -> Tensor:
    """One semi-Lagrangian step: f_new(x) = f(x - dt v(x)), bilinear; ``vel`` = (v_x, v_y) at f's sample points,
    ``courant`` = dt / dx."""
    return sample_periodic(field, *_back_trace(field, vel, courant))


def maccormack(field: Tensor, vel: Tensor, courant: float, limiter: bool = True) -> Tensor:
    """MacCormack advection (Selle et al. 2008), second order in smooth regions.

    f^ = SL(f, dt), f~ = SL(f^, -dt), f_new = f^ + (f - f~) / 2; with the ``limiter`` f_new is clamped to
    [min, max] of the 4 samples the forward pass interpolated from, which keeps it free of new extrema.
    """
    iy, ix = _back_trace(field, vel, courant)
    forward = sample_periodic(field, iy, ix)
    backward = semi_lagrangian(forward, vel, -courant)
    corrected = forward + 0.5 * (field - backward)
    if not limiter:
        return corrected
    lo, hi = _stencil_bounds(field, iy, ix)
    return torch.minimum(torch.maximum(corrected, lo), hi)


def _advect(field: Tensor, vel: Tensor, courant: float, scheme: str) -> Tensor:
    if scheme == "maccormack":
        return maccormack(field, vel, courant)
    if scheme == "semi_lagrangian":
        return semi_lagrangian(field, vel, courant)
    raise ValueError(f"unknown advection scheme '{scheme}'; choose 'maccormack' or 'semi_lagrangian'")


def advect_centred(field: Tensor, velocity: Tensor, dt: float, dx: float = 1.0,
                   scheme: str = "maccormack") -> Tensor:
    """Advect a centred scalar field (..., H, W), e.g. a passive marker, by the staggered ``velocity`` for dt."""
    return _advect(field, centred_velocity(velocity), dt / dx, scheme)


def advect_velocity(velocity: Tensor, dt: float, dx: float = 1.0, scheme: str = "maccormack") -> Tensor:
    """Self-advection dv/dt + (v . grad) v = 0 of a staggered field: each component is advected along the (fixed)
    velocity interpolated to its own faces."""
    at_x, at_y = _velocity_at_faces(velocity)
    c = dt / dx
    return torch.stack((_advect(velocity[..., 0, :, :], at_x, c, scheme),
                        _advect(velocity[..., 1, :, :], at_y, c, scheme)), dim=-3)


# ----------------------------------------------------------------------------------------------------------------
# The paper's step
# ----------------------------------------------------------------------------------------------------------------

def kinetic_energy(velocity: Tensor) -> Tensor:
    """mean(v^2) over both components and all faces, shape (...)."""
    return velocity.pow(2).mean(dim=(-3, -2, -1))


def rescale_energy(velocity: Tensor, energy: Tensor) -> Tensor:
    """v * sqrt(E / mean(v^2)): restore the kinetic energy E that advection dissipated (SIP paper, fluid setup);
    a zero field stays zero."""
    current = kinetic_energy(velocity)
    scale = torch.where(current > 0, torch.sqrt(energy / current.clamp_min(torch.finfo(current.dtype).tiny)),
                        torch.ones_like(current))
    return velocity * scale[..., None, None, None]


def fluid_step(velocity: Tensor, marker: Tensor | None, dt: float, dx: float = 1.0, *, viscosity: float = 0.0,
               preserve_energy: bool = True, conserve_mass: bool = False,
               scheme: str = "maccormack") -> tuple[Tensor, Tensor | None]:
    """One step of dv/dt = -(v . grad) v + nu Laplace v - grad p, div v = 0, dm/dt = -v . grad m.

    Operator splitting, in the order of the authors' fluid code: self-advect v, diffuse (exact spectral diffusion
    exp(nu dt Laplace), only if ``viscosity`` > 0), project, rescale to the kinetic energy before the step (if
    ``preserve_energy``), then advect the marker with the new velocity; with ``conserve_mass`` the marker is scaled
    back to its total before the step (MacCormack and bilinear back-tracing are not conservative: a sharp marker
    gains or loses a few percent over the paper's 8 steps). ``velocity`` should be divergence-free.
    Returns (velocity, marker); marker may be None.
    """
    energy = kinetic_energy(velocity)
    v = advect_velocity(velocity, dt, dx, scheme)
    if viscosity > 0:
        v = spectral_diffusion(v, viscosity * dt, dx)
    v = project(v, dx)
    if preserve_energy:
        v = rescale_energy(v, energy)
    if marker is None:
        return v, None
    m = advect_centred(marker, v, dt, dx, scheme)
    if conserve_mass:
        m = rescale_mass(m, marker.sum(dim=(-2, -1)))
    return v, m


def rescale_mass(marker: Tensor, mass: Tensor) -> Tensor:
    """marker * M / sum(marker): restore the total mass M (...,); an empty marker stays empty."""
    current = marker.sum(dim=(-2, -1))
    scale = torch.where(current != 0, mass / torch.where(current != 0, current, torch.ones_like(current)),
                        torch.ones_like(current))
    return marker * scale[..., None, None]


def centre_of_mass(field: Tensor, dx: float = 1.0) -> Tensor:
    """Mass-weighted mean cell-centre position (y, x) of a non-negative centred field (..., H, W) -> (..., 2)."""
    pos = cell_centres(field.shape[-2:], dx, dtype=field.dtype, device=field.device)
    mass = field.sum(dim=(-2, -1)).clamp_min(torch.finfo(field.dtype).tiny)
    return (field[..., None, :, :] * pos).sum(dim=(-2, -1)) / mass[..., None]
