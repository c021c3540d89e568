"""Learning to control a PDE with a hierarchical predictor-corrector (Holl, Koltun, Thuerey, ICLR 2020): the
Burgers experiment of the paper's Table 1.

* :mod:`~problems.pde_control.data`: control tasks (two clashing Gaussians, a target reached by a constant force)
  and their ground-truth trajectories, with a fixed held-out set;
* :mod:`~problems.pde_control.networks`: the paper's 1-D residual U-net, the observation predictors OP_n (one per
  time span n) and the control force estimator (CFE);
* :mod:`~problems.pde_control.schemes`: the execution schemes CFE chain, staggered and prediction refinement
  (Algorithm 1), with a log of every OP and solver call;
* :mod:`~problems.pde_control.losses`: forces of a trajectory, the differentiable-physics and supervised losses and
  the force-integral metric.
"""
from __future__ import annotations

from .data import ControlScenes, sample_scenes, split_scenes
from .losses import control_forces, force_integral, force_loss, jerk_loss
from .networks import ControlForceEstimator, ObservationPredictors, ResidualUNet1d
from .schemes import CallLog, SCHEMES, cfe_chain, op_evaluations, reconstruct, refined_op_count

__all__ = ["ControlScenes", "sample_scenes", "split_scenes", "control_forces", "force_integral", "force_loss",
           "jerk_loss", "ControlForceEstimator", "ObservationPredictors", "ResidualUNet1d", "CallLog", "SCHEMES",
           "cfe_chain", "op_evaluations", "reconstruct", "refined_op_count"]
