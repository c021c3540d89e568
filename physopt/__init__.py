"""physopt: optimizers for neural networks trained through differentiable physics.

* :class:`SIP` / :func:`sip_loss` - scale-invariant physics training (Holl et al., NeurIPS 2022).
* :class:`NewtonUpdate`, :class:`GaussNewtonUpdate` - generic SIP physics updates for any differentiable simulator.
* :class:`HIG` / :class:`GaussNewton` - half-inverse gradients (Schnell et al., ICLR 2022) and mini-batch
  Gauss-Newton; functional layer :func:`hig_direction`, :func:`half_inverse`, :func:`per_example_jacobian`.
* :func:`phiml_physics` - a simulation written with phiml / PhiFlow as a batched torch physics for all of them;
  :func:`staggered` declares a PhiFlow staggered grid for it.
* :func:`compiled_physics` - a physics under ``torch.compile``, falling back to eager execution where that fails.

Names are imported on first use (PEP 562), so ``import physopt`` and ``physopt --help`` do not load torch.
"""
from __future__ import annotations

import importlib
from importlib import metadata
from typing import TYPE_CHECKING, Any

#: public name -> the module (relative to physopt) that defines it
_EXPORTS = {
    "SIP": "sip", "sip_loss": "sip", "sip_backward": "sip", "check_physics_update": "sip", "PhysicsUpdateError": "sip",
    "NewtonUpdate": "updates", "GaussNewtonUpdate": "updates", "saddle_free_newton_step": "updates",
    "phiml_physics": "phiml_physics", "staggered": "phiml_physics",
    "compiled_physics": "compiled", "CompiledPhysics": "compiled",
    "HIG": "hig", "GaussNewton": "hig", "HIGStats": "hig", "hig_direction": "hig",
    "half_inverse": "hig", "HalfInversionError": "hig",
    "per_example_jacobian": "hig", "JacobianError": "hig", "MemoryBoundError": "hig",
    "UnknownNameError": "names", "lookup": "names", "import_object": "names", "is_import_path": "names",
    "installed_entry_points": "names", "load_entry_point": "names", "find_entry_point": "names", "describe": "names",
    "unknown_name": "names",
}

try:
    __version__ = metadata.version("physopt")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        for other, where in _EXPORTS.items():      # all of the module's names at once: importing physopt.phiml_physics
            if where == _EXPORTS[name]:            # binds the submodule to the name of its function, undone here
                globals()[other] = getattr(module, other)
        return globals()[name]
    raise AttributeError(f"module 'physopt' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # what type checkers and IDEs see
    from .compiled import CompiledPhysics, compiled_physics
    from .hig import (HIG, GaussNewton, HalfInversionError, HIGStats, JacobianError, MemoryBoundError, half_inverse,
                      hig_direction, per_example_jacobian)
    from .names import (UnknownNameError, describe, find_entry_point, import_object, installed_entry_points,
                        is_import_path, load_entry_point, lookup, unknown_name)
    from .sip import SIP, PhysicsUpdateError, check_physics_update, sip_backward, sip_loss
    from .phiml_physics import phiml_physics, staggered
    from .updates import GaussNewtonUpdate, NewtonUpdate, saddle_free_newton_step
