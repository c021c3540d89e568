"""physopt: optimizers for neural networks trained through differentiable physics.

* :class:`SIP` / :func:`sip_loss` - scale-invariant physics training (Holl et al., NeurIPS 2022).
* :class:`NewtonUpdate`, :class:`GaussNewtonUpdate` - generic SIP physics updates for any differentiable simulator.
"""
from ._names import UnknownNameError
from .sip import SIP, PhysicsUpdateError, check_physics_update, sip_loss
from .updates import GaussNewtonUpdate, NewtonUpdate, saddle_free_newton_step

__version__ = "0.1.0"

__all__ = ["SIP", "sip_loss", "check_physics_update", "PhysicsUpdateError", "NewtonUpdate", "GaussNewtonUpdate",
           "saddle_free_newton_step", "UnknownNameError", "__version__"]
