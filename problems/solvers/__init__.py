"""Reusable differentiable numerics, apart from the task definitions in ``problems``.

Plain torch, batched over leading dimensions, free of in-place writes to their inputs, so autograd and ``torch.func``
(``vmap``, ``jacrev``) work through them on any device and floating dtype. Each module is tested against an
independent reference (dense matrices, analytic solutions, scipy, PhiFlow) in ``tests/problems/solvers/``.

* :mod:`~problems.solvers.grids`: 5-point stencils, the DST-I and exact Dirichlet / periodic Poisson solves,
  exact spectral diffusion, smooth random fields (SIP paper, Poisson and heat problems).
* :mod:`~problems.solvers.staggered`: a 2-D incompressible flow solver on a periodic staggered (MAC) grid: pressure
  projection by FFT, semi-Lagrangian and MacCormack advection (SIP paper, Navier-Stokes problem).
* :mod:`~problems.solvers.integrators`: classic RK4 and a fixed-step integrator with a piecewise-constant control
  (HIG paper, nonlinear oscillators).
* :mod:`~problems.solvers.schroedinger`: the 1-D Schroedinger equation with a dipole control, Crank-Nicolson in time
  (HIG paper, quantum dipole). Its helpers have short names (``spacing``, ``inner``, ``rollout``): use them through
  the module, ``from problems.solvers import schroedinger as sch``.
* :mod:`~problems.solvers.burgers`: the 1-D viscous Burgers equation on an open interval, semi-Lagrangian advection
  and explicit diffusion (PDE-control paper, Holl et al. 2020).
* :mod:`~problems.solvers.forced_burgers`: the 2-D forced viscous Burgers equation on a periodic staggered grid,
  travelling-wave forcing and the staggered restriction T (Solver-in-the-Loop, Um et al. 2020).
* :mod:`~problems.solvers.open_flow`: 2-D incompressible flow on an open staggered grid with a fixed obstacle, as
  PhiFlow 1.x computes it (Solver-in-the-Loop's wake flow).
* :class:`SimulationError`: raised for a state a solver cannot step from (also ``problems.SimulationError``).

The solvers import nothing from ``problems``' task modules (tests/test_layers.py checks it).
"""
from __future__ import annotations

from . import burgers, forced_burgers, grids, integrators, open_flow, schroedinger, staggered
from .burgers import BurgersStabilityError, burgers_step
from .errors import SimulationError
from .grids import (dirichlet_laplace_eigenvalues, dst1, fft_wavenumbers_squared, laplace_dirichlet,
                    periodic_laplace_eigenvalues, smooth_noise, solve_poisson_dirichlet, solve_poisson_periodic,
                    spectral_diffusion)
from .integrators import integrate, rk4_step
from .schroedinger import crank_nicolson_step
from .staggered import (CFLWarning, advect_centred, advect_velocity, centre_of_mass, centred_velocity, check_cfl,
                        divergence, fluid_step, maccormack, project, semi_lagrangian)

__all__ = [
    "burgers", "forced_burgers", "grids", "integrators", "open_flow", "schroedinger", "staggered", "SimulationError",
    "laplace_dirichlet", "dst1", "dirichlet_laplace_eigenvalues", "solve_poisson_dirichlet", "fft_wavenumbers_squared",
    "spectral_diffusion", "periodic_laplace_eigenvalues", "solve_poisson_periodic", "smooth_noise",
    "rk4_step", "integrate",
    "crank_nicolson_step", "BurgersStabilityError", "burgers_step",
    "CFLWarning", "check_cfl", "divergence", "project", "centred_velocity", "semi_lagrangian", "maccormack",
    "advect_centred", "advect_velocity", "fluid_step", "centre_of_mass",
]
