"""HIG: half-inverse gradients (Schnell, Holl & Thuerey, ICLR 2022) and mini-batch Gauss-Newton.

    dtheta = -eta * max(S)^beta V S^kappa U^T g,    J = U S V^T the stacked per-example Jacobian, g = dL/dy.

Modules, each with one job:

* :mod:`~physopt.hig.optimizer`  - :class:`HIG` and :class:`GaussNewton`, the torch optimizers;
* :mod:`~physopt.hig.direction`  - :func:`hig_direction`, the update for one batch, and the table of routes;
* :mod:`~physopt.hig.dense`      - route over the dense stacked Jacobian (any network): ``gram`` or ``svd``;
* :mod:`~physopt.hig.factored`   - route over per-layer factors for networks of ``nn.Linear`` layers;
* :mod:`~physopt.hig.distributed` - the batch spread over ``torch.distributed`` processes (``process_group=``);
* :mod:`~physopt.hig.decompositions` - the half-inversion kernels (Gram eigendecomposition, thin SVD);
* :mod:`~physopt.hig.memory`     - how many examples one vmap call may take under a memory bound;
* :mod:`~physopt.hig.per_example` - batch checks and the torch.func transforms every route uses.
"""
from .decompositions import HalfInversionError, Spectrum, half_inverse
from .dense import StackedJacobian, per_example_jacobian
from .direction import HIG_ROUTES, ROUTES, HIGStats, hig_direction
from .factored import linear_factors
from .memory import MemoryBoundError
from .optimizer import HIG, GaussNewton
from .per_example import JacobianError

__all__ = ["HIG", "GaussNewton", "HIGStats", "hig_direction", "HIG_ROUTES", "ROUTES", "half_inverse",
           "HalfInversionError", "Spectrum", "per_example_jacobian", "StackedJacobian", "linear_factors",
           "JacobianError", "MemoryBoundError"]
