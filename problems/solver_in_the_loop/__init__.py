"""Solver-in-the-Loop (Um, Brand, Fei, Holl, Thuerey, NeurIPS 2020): learned corrections of a coarse solver,
trained without interaction (NON), on pre-computed corrections (PRE) or through the differentiable solver over n
look-ahead steps (SOL_n).

* :mod:`~problems.solver_in_the_loop.setup`: scenarios (reference and source grids, the projection T): the forced
  advection-diffusion (2-D Burgers) scenario;
* :mod:`~problems.solver_in_the_loop.wake`: the unsteady wake flow behind a cylinder (settings, T, reference runs;
  its training is still to be wired into the bench);
* :mod:`~problems.solver_in_the_loop.data`: reference simulations projected to the source grid;
* :mod:`~problems.solver_in_the_loop.networks`: the authors' residual convolutional correction network;
* :mod:`~problems.solver_in_the_loop.training`: the unrolled SOL_n loss, rollouts, the MAE metric and window batches.
"""
from __future__ import annotations

from .data import Simulations, simulate
from .networks import Correction, ResidualConvNet
from .setup import ForcedBurgers
from .training import (corrected_step, data_statistics, improvement, rollout, rollout_error, unrolled_loss,
                       window_batches)

__all__ = ["ForcedBurgers", "Simulations", "simulate", "Correction", "ResidualConvNet", "corrected_step",
           "data_statistics", "improvement", "rollout", "rollout_error", "unrolled_loss", "window_batches"]
