"""The registry of bundled problems (problems/__init__.py): find them by name, list them, register new ones.
The Problem contract they all honour is specified in tests/problems/test_base.py, each problem's own physics in
tests/problems/test_<module>.py."""
import pytest

import problems
from problems import get_problem


def test_unknown_problem_name_suggests_the_closest():
    with pytest.raises(KeyError, match="Did you mean 'poisson'"):
        get_problem("poison")


def test_list_problems_names_every_registered_class_in_order():
    assert problems.list_problems() == sorted(problems.PROBLEMS)
    assert {"exp", "poisson", "heat", "navier-stokes"} <= set(problems.list_problems())
    assert all(cls.name == name for name, cls in problems.PROBLEMS.items())


def test_get_problem_ignores_case_and_passes_config_fields_device_and_dtype():
    import torch
    p = get_problem(" EXP ", x_low=-3.0, dtype=torch.float64)
    assert isinstance(p, problems.ExpProblem) and p.config.x_low == -3.0 and p.dtype == torch.float64
    assert p.device == torch.device("cpu")


def test_register_accepts_problem_classes_only_and_never_replaces_another():
    assert problems.register(problems.ExpProblem) is problems.ExpProblem          # registering again: no change
    with pytest.raises(TypeError, match="Problem subclass"):
        problems.register(dict)

    class OtherExp(problems.ExpProblem):
        name = "exp"

    with pytest.raises(ValueError, match="already registered as 'exp'"):
        problems.register(OtherExp)
    assert problems.PROBLEMS["exp"] is problems.ExpProblem
