"""physopt: optimizers for neural networks trained through differentiable physics.

* :class:`SIP` / :func:`sip_loss` - scale-invariant physics training (Holl et al., NeurIPS 2022).
* :class:`NewtonUpdate`, :class:`GaussNewtonUpdate` - generic SIP physics updates for any differentiable simulator.
* :class:`HIG` / :class:`GaussNewton` - half-inverse gradients (Schnell et al., ICLR 2022) and mini-batch
  Gauss-Newton; functional layer :func:`hig_direction`, :func:`half_inverse`, :func:`per_example_jacobian`.
"""
from .names import UnknownNameError, lookup
from .hig import HIG, GaussNewton, HIGStats, hig_direction
from .jacobian import JacobianError, MemoryBoundError, per_example_jacobian
from .linalg import HalfInversionError, half_inverse
from .sip import SIP, PhysicsUpdateError, check_physics_update, sip_loss
from .updates import GaussNewtonUpdate, NewtonUpdate, saddle_free_newton_step

__version__ = "0.2.0"

__all__ = ["SIP", "sip_loss", "check_physics_update", "PhysicsUpdateError", "NewtonUpdate", "GaussNewtonUpdate",
           "saddle_free_newton_step", "HIG", "GaussNewton", "HIGStats", "hig_direction", "half_inverse",
           "per_example_jacobian", "HalfInversionError", "JacobianError", "MemoryBoundError", "UnknownNameError",
           "lookup", "__version__"]
