"""physopt's bundled problems, all behind the :class:`problems.base.Problem` interface, and their registry."""
from __future__ import annotations

from .base import Batch, Problem, ProblemConfig, ProblemError, SimulationError
from .burgers_control import BurgersControlProblem
from .functions import from_functions
from .heat import HeatProblem
from .navier_stokes import NavierStokesProblem
from .oscillators import OscillatorsProblem
from .poisson import PoissonHIGProblem, PoissonProblem
from .quantum_dipole import QuantumDipoleProblem
from .registry import (PROBLEM_GROUP, PROBLEMS, get_preset, get_problem, import_modules, imported, list_problems,
                       problem_class, register)
from .settings import PRESET_NAMES, BenchmarkSettings, OptimizerSettings, Preset
from .toys import ExpProblem, HIGToyProblem, RotatedSineProblem

for _cls in (ExpProblem, RotatedSineProblem, PoissonProblem, HeatProblem, OscillatorsProblem, PoissonHIGProblem,
             HIGToyProblem, QuantumDipoleProblem, NavierStokesProblem, BurgersControlProblem):
    register(_cls)

__all__ = ["Batch", "Problem", "ProblemConfig", "ProblemError", "SimulationError", "PROBLEMS", "register",
           "get_problem", "list_problems", "get_preset", "problem_class", "import_modules", "imported", "from_functions",
           "PROBLEM_GROUP", "PRESET_NAMES", "BenchmarkSettings", "OptimizerSettings",
           "Preset", "ExpProblem", "RotatedSineProblem", "PoissonProblem", "HeatProblem",
           "OscillatorsProblem", "PoissonHIGProblem", "HIGToyProblem", "QuantumDipoleProblem",
           "NavierStokesProblem", "BurgersControlProblem"]
