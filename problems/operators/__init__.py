"""Physics-informed DeepONet problems of the Zero Coordinate Shift paper (not SIP/HIG problems, so not in
``problems.PROBLEMS``): the scaling PDE, reaction-diffusion and the Kirchhoff-Love plate, a DeepONet and a training
loop whose coordinate derivatives come from any engine of :mod:`physopt.derivatives.zcs`."""
from .deeponet import DeepONet, deeponet
from .pdes import (KirchhoffLovePlate, OperatorBatch, OperatorProblem, ReactionDiffusion, ScalingPDE,
                   scaling_coefficients)
from .train import train, training_step

__all__ = ["DeepONet", "deeponet", "OperatorBatch", "OperatorProblem", "ScalingPDE", "ReactionDiffusion",
           "KirchhoffLovePlate", "scaling_coefficients", "train", "training_step"]
