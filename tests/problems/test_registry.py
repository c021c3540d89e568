"""registry: a problem is named by its registered name, by an installed package's entry point or by import path;
a module given to --import registers its problems; whatever is not a problem is refused in one line."""
import sys
import textwrap

import pytest
import torch

import problems
from physopt.names import UnknownNameError
from problems import registry

MODULE = textwrap.dedent('''
    import torch
    from torch import nn
    import physopt
    from problems import from_functions

    def physics(x):
        return torch.exp(x)

    MyProblem = from_functions("registry-test-exp", sample=lambda n, g: torch.rand(n, 1, generator=g) - 1,
                               physics=physics, network=lambda: nn.Linear(1, 1),
                               inverse=physopt.NewtonUpdate(physics))
    not_a_problem = 42
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_physics_xyz.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_physics_xyz", raising=False)   # each test imports it afresh
    monkeypatch.setattr(registry, "_RESOLVED", {})
    monkeypatch.setattr(registry, "_IMPORTED", [])
    yield "user_physics_xyz"
    problems.PROBLEMS.pop("registry-test-exp", None)


def test_an_import_path_names_a_problem_class(user_module):
    cls = registry.problem_class(f"{user_module}:MyProblem")
    assert cls.name == "registry-test-exp" and cls.defines_inverse()
    problem = problems.get_problem(f"{user_module}:MyProblem", dtype=torch.float64)
    assert problem.sample(3, torch.Generator().manual_seed(0)).inputs.shape == (3, 1)


def test_import_modules_registers_the_problems_a_module_defines_and_remembers_it(user_module):
    registry.import_modules([user_module])
    assert "registry-test-exp" in problems.list_problems()
    assert registry.imported() == [user_module]
    assert problems.get_problem("registry-test-exp").name == "registry-test-exp"


def test_a_comma_separated_import_names_several_modules(user_module):
    registry.import_modules([f"{user_module}, json"])
    assert registry.imported() == [user_module, "json"]


def install_entry_point(monkeypatch, name: str, value: str) -> None:
    """Make ``name = value`` look like an installed package's entry point of the problems group."""
    class EntryPoint:
        def load(self):
            from physopt.names import import_object
            return import_object(self.value, "problem")

    ep = EntryPoint()
    ep.name, ep.value = name, value
    monkeypatch.setattr(registry, "installed_entry_points", lambda group: {name: ep}
                        if group == registry.PROBLEM_GROUP else {})


def test_an_installed_entry_point_names_a_problem(user_module, monkeypatch):
    install_entry_point(monkeypatch, "their-problem", f"{user_module}:MyProblem")
    assert "their-problem" in registry.list_problems()
    assert registry.problem_class("their-problem").name == "registry-test-exp"


@pytest.mark.parametrize("name, words", [
    ("user_physics_xyz:Missing", "module 'user_physics_xyz' has no attribute 'Missing'"),
    ("user_physics_xyz:not_a_problem", "is int 42, not a problems.Problem subclass"),
    ("torch.optim:Adam", "is the class Adam, not a problems.Problem subclass"),
    ("problems.base:Problem", "does not implement"),
    ("poisonn", "unknown problem 'poisonn'. Did you mean 'poisson'?"),
])
def test_what_is_not_a_problem_is_refused_in_one_line(user_module, name, words):
    with pytest.raises(UnknownNameError, match=words.replace("(", r"\(").replace("?", r"\?")):
        registry.problem_class(name)


def test_a_module_that_fails_to_import_is_named_with_its_error(tmp_path, monkeypatch):
    (tmp_path / "failing_physics_xyz.py").write_text("import numpy\nraise ImportError('needs CUDA 13')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UnknownNameError, match="--import failing_physics_xyz: importing it failed: ImportError: "
                                               "needs CUDA 13"):
        registry.import_modules(["failing_physics_xyz"])


def test_a_problem_without_presets_gets_the_derived_ones(user_module):
    cls = registry.problem_class(f"{user_module}:MyProblem")
    assert cls.benchmark.derived() and registry.get_preset(f"{user_module}:MyProblem", "quick").iterations == 3
    assert not problems.PoissonProblem.benchmark.derived()
    with pytest.raises(UnknownNameError, match="unknown preset of"):
        registry.get_preset(f"{user_module}:MyProblem", "paper")


# ---- adversarial names (probe) -----------------------------------------------------------------------------------

def test_a_registered_name_is_found_in_any_case_and_never_shadowed_by_a_bundled_one():
    try:
        cls = problems.from_functions("My-Case-Exp", sample=lambda n, g: torch.rand(n, 1, generator=g),
                                      physics=torch.exp, network=lambda: torch.nn.Linear(1, 1))
        assert registry.problem_class("my-case-exp") is cls and registry.problem_class("MY-CASE-EXP") is cls
    finally:
        problems.PROBLEMS.pop("My-Case-Exp", None)


def test_a_problem_by_import_path_named_like_a_registered_one_is_refused(tmp_path, monkeypatch):
    (tmp_path / "clash_physics_xyz.py").write_text(MODULE.replace("registry-test-exp", "poisson").replace(
        "inverse=physopt.NewtonUpdate(physics))", "inverse=physopt.NewtonUpdate(physics), register_name=False)"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_RESOLVED", {})
    with pytest.raises(UnknownNameError, match="is named 'poisson', as the registered problem "
                                               "problems.poisson.PoissonProblem is"):
        registry.problem_class("clash_physics_xyz:MyProblem")


def test_an_entry_point_is_found_in_any_case_and_gives_the_class(user_module, monkeypatch):
    install_entry_point(monkeypatch, "Their-Problem", f"{user_module}:MyProblem")
    assert registry.problem_class("their-problem").name == "registry-test-exp"      # was the EntryPoint itself


@pytest.mark.parametrize("name, words", [
    ("user_physics_xyz.py", "write --import user_physics_xyz "),
    ("./user_physics_xyz", "write --import user_physics_xyz "),
    ("pkg/sub/mod.py", "write --import pkg.sub.mod "),
])
def test_import_of_a_file_path_says_which_module_name_to_write(name, words):
    with pytest.raises(UnknownNameError, match="--import takes a module name, not a file path: " + words):
        registry.import_modules([name])


def test_a_problem_instance_is_refused_with_what_to_name_instead(user_module):
    import importlib
    module = importlib.import_module(user_module)
    module.instance = module.MyProblem()
    with pytest.raises(UnknownNameError, match=r"is an instance of RegistryTestExpProblem \(name the class itself\)"):
        registry.problem_class(f"{user_module}:instance")
