"""Finding problems by name: the bundled ones, those a module registers when imported (``--import mypkg``), an
installed package's entry points (group :data:`PROBLEM_GROUP`) and import paths (``mypkg.module:MyProblem``).

Every command resolves a problem name through :func:`problem_class`, so a user's problem works wherever a bundled one
does. A fresh process (``physopt speed`` measures each case in one) re-imports the modules of :func:`imported` first.
"""
from __future__ import annotations

import importlib
import re
from typing import Any, Iterable

from physopt import (UnknownNameError, describe, find_entry_point, import_object, installed_entry_points,
                     is_import_path, load_entry_point, unknown_name)

from .base import Problem
from .settings import Preset

#: the entry-point group under which an installed package declares problems: ``name = "pkg.module:ProblemClass"``
PROBLEM_GROUP = "physopt.problems"

PROBLEMS: dict[str, type[Problem]] = {}
_RESOLVED: dict[str, type[Problem]] = {}
_IMPORTED: list[str] = []


#: what a problem name may be: it names directories and files (bench's OUT/<problem>, tune's PROBLEM_OPTIMIZER.json)
#: and is typed on the command line
NAME = re.compile(r"\w[\w.-]*")


def register(cls: type[Problem]) -> type[Problem]:
    """Add a Problem class to the registry under ``cls.name`` (usable as a decorator); TypeError for anything else,
    ValueError for a name that another problem has (in any case)."""
    try:
        check_problem_class(cls, getattr(cls, "__name__", repr(cls)))
    except UnknownNameError as err:
        raise TypeError(str(err)) from None
    other = registered(cls.name)
    if other is not None and other is not cls:
        raise ValueError(f"a different problem ({other.__module__}.{other.__qualname__}) is already registered as "
                         f"'{other.name}': give yours another name")
    PROBLEMS[cls.name] = cls
    return cls


def registered(name: str) -> type[Problem] | None:
    """The registered problem called ``name`` in any case, or None."""
    key = name.strip().lower()
    return next((cls for n, cls in PROBLEMS.items() if n.lower() == key), None)


def check_problem_class(obj: Any, name: str) -> type[Problem]:
    """``obj`` if it is a concrete :class:`Problem` subclass with a name, else an error that says how to make one."""
    if not (isinstance(obj, type) and issubclass(obj, Problem)):
        raise UnknownNameError(f"problem '{name}' is {describe(obj)}, not a problems.Problem subclass (subclass "
                               f"problems.Problem, or build one with problems.from_functions)")
    missing = sorted(getattr(obj, "__abstractmethods__", ()))
    if missing:
        raise UnknownNameError(f"problem '{name}' ({obj.__qualname__}) does not implement {', '.join(missing)}")
    if not isinstance(getattr(obj, "name", None), str) or not obj.name:
        raise UnknownNameError(f"problem '{name}' ({obj.__qualname__}) has no name: set the class attribute "
                               f"name = 'my-problem'")
    if not NAME.fullmatch(obj.name):
        raise UnknownNameError(f"problem '{name}' ({obj.__qualname__}) is named {obj.name!r}: a problem name names "
                               f"files and directories, so it takes letters, digits, '-', '_' and '.' only, "
                               f"starting with a letter or digit (e.g. 'my-problem')")
    return obj


def import_modules(modules: Iterable[str]) -> None:
    """Import each module (``--import mypkg``; a comma-separated item names several), so that the problems it registers can be named; remembered for the
    fresh processes of :func:`imported`."""
    for module in (part for item in modules for part in item.split(",")):      # --import a,b as --import a --import b
        module = module.strip()
        if not module:
            raise UnknownNameError("--import got an empty module name")
        if module.endswith(".py") or "/" in module or "\\" in module or module.startswith("."):
            dotted = re.sub(r"[/\\]+", ".", module.removesuffix(".py")).strip(".")
            raise UnknownNameError(f"--import takes a module name, not a file path: write --import {dotted} (run "
                                   f"from the directory that holds it, or put that directory on PYTHONPATH)")
        try:
            importlib.import_module(module)
        except Exception as err:  # noqa: BLE001 - the user's module's failure, in one line
            raise UnknownNameError(f"--import {module}: importing it failed: {type(err).__name__}: {err}") from None
        if module not in _IMPORTED:
            _IMPORTED.append(module)


def imported() -> list[str]:
    """The modules :func:`import_modules` imported in this process (for a fresh process to import them too)."""
    return list(_IMPORTED)


def problem_class(name: str) -> type[Problem]:
    """The Problem class called ``name``: a registered name (any case), an installed entry point of
    :data:`PROBLEM_GROUP`, or an import path (``mypkg.module:MyProblem``). Unknown names get an error listing the
    choices."""
    if not isinstance(name, str):
        raise TypeError(f"a problem name is a string, got {type(name).__name__}")
    key = name.strip()
    cls = registered(key)
    if cls is not None:
        return cls
    if key not in _RESOLVED:
        plugins = installed_entry_points(PROBLEM_GROUP)
        entry = find_entry_point(plugins, key)
        if entry is not None:
            obj = load_entry_point(entry, "problem")
        elif is_import_path(key):
            obj = import_object(key, "problem")
        else:
            unknown_name("problem", name, sorted({*PROBLEMS, *plugins}))
        cls = check_problem_class(obj, key)
        other = registered(cls.name)
        if other is not None and other is not cls:
            raise UnknownNameError(f"problem '{key}' ({cls.__qualname__}) is named '{cls.name}', as the registered "
                                   f"problem {other.__module__}.{other.__qualname__} is: results of the two would "
                                   f"be mixed up; give yours another name")
        _RESOLVED[key] = cls
    return _RESOLVED[key]


def get_problem(name: str, **kwargs: Any) -> Problem:
    """Build a problem by name, e.g. ``get_problem("poisson", device="cuda", resolution=32)`` or
    ``get_problem("mypkg.module:MyProblem")``.

    Keyword arguments are ``device``, ``dtype`` and config fields of the problem.
    """
    return problem_class(name)(**kwargs)


def list_problems() -> list[str]:
    """The registered problems and the installed packages' (entry points), sorted."""
    return sorted({*PROBLEMS, *installed_entry_points(PROBLEM_GROUP)})


def get_preset(problem: str, preset: str) -> Preset:
    """The preset ``preset`` (quick, standard, paper) of the problem called ``problem`` (derived defaults for a
    problem that declares no presets: :meth:`problems.BenchmarkSettings.preset`)."""
    return problem_class(problem).benchmark.preset(preset, problem)
