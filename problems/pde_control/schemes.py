r"""Execution schemes: how the control networks and the solver are called to go from u_0 to the target o*
(PDE-control paper, Sec. 5, Fig. 3 and 7, Algorithm 1, App. B).

Every scheme returns the trajectory u_0 ... u_n (B, n + 1, N) with u_n = o*; the forces follow from it
(:func:`problems.pde_control.losses.control_forces`).

* **CFE chain**: u_{t+1} = CFE(u_t, o*, t / n) for t < n - 1, then u_n = o*. No predictions.
* **staggered** (Fig. 3b): for a span of n steps from the reached state u_s to the observation o_{s+n}, predict the
  midpoint o_{s+n/2} = OP_n(u_s, o_{s+n}), reach it by recursing on the first half, then recurse on the second half
  from the state reached. A span of one step is the corrector: a force and a solver step. n - 1 OP evaluations.
* **prediction refinement** (Fig. 3c, Algorithm 1): the same recursion, but a first half also receives the
  observation two spans ahead, o_{2n}; once its first half is reached it predicts o_{3n/2} = OP_n(o_n, o_{2n}) and
  refines o_n = OP_n(u_{n/2}, o_{3n/2}) before reaching it: every final prediction is conditioned on the latest
  state. 3n - 2 log2(n) - 3 OP evaluations (App. B).

The corrector of the Burgers experiment is exact (the authors' code): the force that reaches a prediction o_{t+1}
from u_t is o_{t+1} - Solver[u_t], so the next state is the prediction itself and no CFE network is needed. A
:class:`CallLog` records every OP evaluation and solver step in execution order (Fig. 7 for n = 8).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch
from torch import Tensor

from ..base import ProblemError
from .networks import ControlForceEstimator, ObservationPredictors
from .setup import ControlSetup

__all__ = ["CallLog", "SCHEMES", "HIERARCHICAL", "cfe_chain", "reconstruct", "execute", "op_evaluations",
           "refined_op_count"]

#: the execution schemes by name
SCHEMES = ("cfe-chain", "staggered", "refined")
#: the schemes built from observation predictors
HIERARCHICAL = ("staggered", "refined")

#: corrector(u_t, o_{t+1}, t) -> u_{t+1}
Corrector = Callable[[Tensor, Tensor, int], Tensor]


@dataclasses.dataclass
class CallLog:
    """The calls a scheme made, in order: ("OP", span, i, j) predicts frame (i + j) / 2 from frames i and j with
    OP_span; ("step", t) steps the solver from frame t to t + 1 (after a force)."""
    events: list[tuple] = dataclasses.field(default_factory=list)

    def op(self, span: int, i: int, j: int) -> None:
        self.events.append(("OP", span, i, j))

    def step(self, t: int) -> None:
        self.events.append(("step", t))

    @property
    def op_count(self) -> int:
        return sum(e[0] == "OP" for e in self.events)

    @property
    def step_count(self) -> int:
        return sum(e[0] == "step" for e in self.events)

    def lines(self) -> list[str]:
        """One line per call: 'OP_4  o(2) <- [0, 4]' or 'Sol   u(0) -> u(1)'."""
        return [f"OP_{e[1]:<3d} o({(e[2] + e[3]) // 2}) <- [{e[2]}, {e[3]}]" if e[0] == "OP"
                else f"Sol    u({e[1]}) -> u({e[1] + 1})" for e in self.events]


def refined_op_count(n: int) -> int:
    """App. B:  N_OP = 3n - 2 log2(n) - 3  for prediction refinement over n steps."""
    return 3 * n - 2 * int(math.log2(n)) - 3


def op_evaluations(scheme: str, n: int) -> int:
    """OP evaluations of ``scheme`` over ``n`` steps (App. B): none for the CFE chain, n - 1 staggered,
    3n - 2 log2(n) - 3 refined."""
    return {"cfe-chain": 0, "staggered": n - 1, "refined": refined_op_count(n)}[_scheme_name(scheme)]


def _scheme_name(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ProblemError(f"unknown execution scheme '{scheme}'; choose one of {', '.join(SCHEMES)}")
    return scheme


def exact_corrector(setup: ControlSetup) -> Corrector:
    """The Burgers corrector: the force o_{t+1} - Solver[u_t] reaches the prediction exactly."""
    return lambda state, prediction, t: prediction


def _check_task(initial: Tensor, target: Tensor, setup: ControlSetup) -> None:
    setup.check_state(initial, "the initial state")
    setup.check_state(target, "the target")
    if initial.dim() != 2 or initial.shape != target.shape:
        raise ProblemError(f"burgers control: the initial state {tuple(initial.shape)} and the target "
                           f"{tuple(target.shape)} must both be (batch, {setup.resolution})")


def reconstruct(initial: Tensor, target: Tensor, predictors: ObservationPredictors, setup: ControlSetup, *,
                refine: bool, correct: Corrector | None = None, log: CallLog | None = None) -> Tensor:
    """The staggered (``refine=False``) or prediction-refinement (``refine=True``) trajectory from ``initial`` to
    ``target`` (both (B, N)): (B, steps + 1, N)."""
    setup.check_hierarchical()
    _check_task(initial, target, setup)
    correct = correct or exact_corrector(setup)
    states: list[Tensor | None] = [initial] + [None] * setup.steps

    def run(t: int, n: int, end: Tensor, after: Tensor | None) -> Tensor:
        """Reach frame t + n from the state at t, given the observation ``end`` at t + n and, when refining,
        ``after`` at t + 2n; returns the state reached."""
        if n == 1:
            state = correct(states[t], end, t)
            if log is not None:
                log.step(t)
            states[t + 1] = state
            return state
        if log is not None:
            log.op(n, t, t + n)
        middle = predictors(n, states[t], end)
        reached = run(t, n // 2, middle, end if refine else None)
        ahead = None
        if after is not None:
            if log is not None:
                log.op(n, t + n, t + 2 * n)
                log.op(n, t + n // 2, t + 3 * n // 2)
            ahead = predictors(n, end, after)                  # o_{3n/2} = OP_n(o_n, o_2n)
            end = predictors(n, reached, ahead)                # o_n refined = OP_n(u_{n/2}, o_{3n/2})
        return run(t + n // 2, n // 2, end, ahead)

    run(0, setup.steps, target, None)
    states[-1] = target                   # reached exactly by the last force; the tensor itself, not a copy
    return torch.stack(states, dim=1)     # type: ignore[arg-type]


def cfe_chain(initial: Tensor, target: Tensor, cfe: ControlForceEstimator, setup: ControlSetup, *,
              log: CallLog | None = None) -> Tensor:
    """The CFE chain's trajectory: u_{t+1} = CFE(u_t, o*, t / n) for t < n - 1, u_n = o* (B, steps + 1, N)."""
    _check_task(initial, target, setup)
    states = [initial]
    for t in range(setup.steps - 1):
        states.append(cfe(states[-1], target, t))
        if log is not None:
            log.step(t)
    if log is not None:
        log.step(setup.steps - 1)
    states.append(target)
    return torch.stack(states, dim=1)


def execute(scheme: str, model: ObservationPredictors | ControlForceEstimator, initial: Tensor, target: Tensor,
            setup: ControlSetup, log: CallLog | None = None) -> Tensor:
    """Run ``scheme`` ('cfe-chain', 'staggered' or 'refined') with ``model``: the trajectory (B, steps + 1, N)."""
    scheme = _scheme_name(scheme)
    wanted = ControlForceEstimator if scheme == "cfe-chain" else ObservationPredictors
    if not isinstance(model, wanted):
        raise ProblemError(f"the {scheme} scheme runs a {wanted.__name__}, got {type(model).__name__}")
    if scheme == "cfe-chain":
        return cfe_chain(initial, target, model, setup, log=log)
    return reconstruct(initial, target, model, setup, refine=scheme == "refined", log=log)
