"""The one error the solvers raise for a state they cannot step from."""
from __future__ import annotations

__all__ = ["SimulationError"]


class SimulationError(ValueError):
    """The simulation cannot go on from this state (a velocity that carries the flow across half the domain in one
    step, NaN/inf in the state). In training this means the run diverged: the bench records it as such.

    Re-exported as ``problems.SimulationError`` (and ``problems.base.SimulationError``)."""
