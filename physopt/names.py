"""Looking names up: in registries (errors that list the choices and suggest the closest one), by import path
(``pkg.module:Name``) and among installed packages' entry points."""
from __future__ import annotations

import difflib
import importlib
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """An unknown problem, optimizer or route name. Subclasses KeyError and ValueError so either catch works."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def lookup(kind: str, name: str, table: Mapping[str, T]) -> T:
    """``table[name]``, or an :class:`UnknownNameError` naming the choices and the closest match."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key in table:
        return table[key]
    close = difflib.get_close_matches(str(key), list(table), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise UnknownNameError(f"unknown {kind} '{name}'.{hint} Available: {', '.join(sorted(table))}")


def is_import_path(name: str) -> bool:
    """Whether ``name`` names an object by import path: ``pkg.module:Object`` or a dotted ``pkg.module.Object``."""
    return isinstance(name, str) and (":" in name or "." in name.strip(".")) and " " not in name.strip()


def import_object(path: str, kind: str) -> Any:
    """The object at ``pkg.module:Attr`` (or ``pkg.module.Attr``, the last dot separating the attribute), imported.

    Errors are :class:`UnknownNameError` lines that say which part failed and why (a module that cannot be found,
    one that raises while importing, a missing attribute), naming ``kind`` (e.g. "optimizer").
    """
    text = path.strip()
    module_name, sep, attr = text.partition(":") if ":" in text else text.rpartition(".")
    if not module_name or not attr:
        raise UnknownNameError(f"{kind} '{path}' is not an import path; write it as package.module:Name "
                               f"(e.g. torch.optim:AdamW) or package.module.Name")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            raise UnknownNameError(f"{kind} '{path}': no module named '{err.name}' (is it installed, or on "
                                   f"PYTHONPATH?)") from None
        raise UnknownNameError(f"{kind} '{path}': importing module '{module_name}' failed: "
                               f"{type(err).__name__}: {err}") from None
    except Exception as err:  # noqa: BLE001 - any error of the user's module is reported in one line
        raise UnknownNameError(f"{kind} '{path}': importing module '{module_name}' failed: "
                               f"{type(err).__name__}: {err}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(module) if not n.startswith("_"))[:12]
            close = difflib.get_close_matches(part, public, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise UnknownNameError(f"{kind} '{path}': module '{module_name}' has no attribute '{attr}'.{hint}")
        obj = getattr(obj, part)
    return obj


def installed_entry_points(group: str) -> dict[str, Any]:
    """The installed packages' entry points of ``group`` (e.g. ``physopt.problems``) by name, not yet loaded."""
    from importlib.metadata import entry_points as installed
    return {ep.name: ep for ep in installed(group=group)}


def load_entry_point(entry: Any, kind: str) -> Any:
    """``entry.load()``, with an error that names the entry point and the package that declares it."""
    try:
        return entry.load()
    except Exception as err:  # noqa: BLE001 - a broken plug-in is reported in one line
        dist = getattr(getattr(entry, "dist", None), "name", "an installed package")
        raise UnknownNameError(f"{kind} '{entry.name}' (entry point {entry.value} of {dist}) failed to load: "
                               f"{type(err).__name__}: {err}") from None
