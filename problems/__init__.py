"""physopt's bundled problems, all behind the :class:`problems.base.Problem` interface, and their registry."""
from __future__ import annotations

from typing import Any

from physopt import lookup

from .base import Batch, Problem, ProblemConfig, ProblemError, SimulationError
from .heat import HeatProblem
from .navier_stokes import NavierStokesProblem
from .oscillators import OscillatorsProblem
from .poisson import PoissonHIGProblem, PoissonProblem
from .quantum_dipole import QuantumDipoleProblem
from .settings import PRESET_NAMES, BenchmarkSettings, OptimizerSettings, Preset
from .toys import ExpProblem, HIGToyProblem, RotatedSineProblem

PROBLEMS: dict[str, type[Problem]] = {}


def register(cls: type[Problem]) -> type[Problem]:
    """Add a Problem class to the registry under ``cls.name`` (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Problem)):
        raise TypeError(f"register expects a Problem subclass, got {cls!r}")
    if cls.name in PROBLEMS and PROBLEMS[cls.name] is not cls:
        raise ValueError(f"a different problem is already registered as '{cls.name}'")
    PROBLEMS[cls.name] = cls
    return cls


for _cls in (ExpProblem, RotatedSineProblem, PoissonProblem, HeatProblem, OscillatorsProblem, PoissonHIGProblem,
             HIGToyProblem, QuantumDipoleProblem, NavierStokesProblem):
    register(_cls)


def get_problem(name: str, **kwargs: Any) -> Problem:
    """Build a registered problem by name, e.g. ``get_problem("poisson", device="cuda", resolution=32)``.

    Keyword arguments are ``device``, ``dtype`` and config fields of the problem.
    """
    return lookup("problem", name, PROBLEMS)(**kwargs)


def list_problems() -> list[str]:
    return sorted(PROBLEMS)


def get_preset(problem: str, preset: str) -> Preset:
    """The preset ``preset`` (quick, standard, paper) of the registered problem ``problem``."""
    return lookup("problem", problem, PROBLEMS).benchmark.preset(preset, problem)


__all__ = ["Batch", "Problem", "ProblemConfig", "ProblemError", "SimulationError", "PROBLEMS", "register",
           "get_problem", "list_problems", "get_preset", "PRESET_NAMES", "BenchmarkSettings", "OptimizerSettings",
           "Preset", "ExpProblem", "RotatedSineProblem", "PoissonProblem", "HeatProblem",
           "OscillatorsProblem", "PoissonHIGProblem", "HIGToyProblem", "QuantumDipoleProblem",
           "NavierStokesProblem"]
