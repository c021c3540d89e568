"""Looking names up: in registries (errors that list the choices and suggest the closest one), by import path
(``pkg.module:Name``) and among installed packages' entry points."""
from __future__ import annotations

import difflib
import importlib
import re
from typing import Any, Mapping, NoReturn, TypeVar

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
    unknown_name(kind, name, list(table))


def unknown_name(kind: str, name: Any, choices: list[str]) -> NoReturn:
    """Raise the :class:`UnknownNameError` of :func:`lookup`: the choices and the closest match."""
    key = name.strip().lower() if isinstance(name, str) else name
    close = difflib.get_close_matches(str(key), choices, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise UnknownNameError(f"unknown {kind} '{name}'.{hint} Available: {', '.join(sorted(choices))}")


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
    if module_name.endswith(".py") or "/" in module_name or "\\" in module_name or module_name.startswith("."):
        dotted = re.sub(r"[/\\]+", ".", module_name.removesuffix(".py")).strip(".")
        raise UnknownNameError(f"{kind} '{path}': an import path names a module, not a file: write {dotted}:{attr} "
                               f"(run from the directory that holds it, or put that directory on PYTHONPATH)")
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
            hint = _closest(part, [n for n in dir(obj) if not n.startswith("_")])
            raise UnknownNameError(f"{kind} '{path}': module '{module_name}' has no attribute '{attr}'."
                                   f"{f' Did you mean {hint!r}?' if hint else ''}")
        obj = getattr(obj, part)
    return obj


def _closest(name: str, choices: list[str]) -> str | None:
    """The choice that differs from ``name`` only in case, else the closest by spelling (None if none is close)."""
    same = [c for c in choices if c.lower() == name.lower()]
    if same:
        return same[0]
    close = difflib.get_close_matches(name.lower(), {c.lower(): c for c in choices}, n=1)
    return {c.lower(): c for c in choices}[close[0]] if close else None


def describe(obj: Any) -> str:
    """A short phrase for what ``obj`` is, for errors that say what was found instead of a class: "the class X",
    "an instance of X (name the class itself)", "the function f"."""
    if isinstance(obj, type):
        return f"the class {obj.__qualname__}"
    if isinstance(obj, type(importlib)):
        return f"the module {obj.__name__} (name a class in it: {obj.__name__}:Name)"
    if callable(obj) and hasattr(obj, "__qualname__"):
        return f"the function {obj.__qualname__}"
    if isinstance(obj, (str, int, float, bool, type(None))):
        return f"{type(obj).__name__} {obj!r:.40}"
    return f"an instance of {type(obj).__qualname__} (name the class itself)"


class _Clash:
    """Two installed packages declare one entry-point name: listed like an entry point, refused when loaded."""

    def __init__(self, entries: list[Any]):
        self.name = entries[0].name
        self.entries = entries
        self.value = " and ".join(f"{e.value} ({_dist(e)})" for e in entries)

    def message(self) -> str:
        return (f"'{self.name}' is declared by several installed packages: {self.value}; name the one you mean by "
                f"its import path")

    def load(self) -> Any:
        raise UnknownNameError(self.message())


def _dist(entry: Any) -> str:
    return getattr(getattr(entry, "dist", None), "name", "an installed package")


def installed_entry_points(group: str) -> dict[str, Any]:
    """The installed packages' entry points of ``group`` (e.g. ``physopt.problems``) by name, not yet loaded; a name
    that several packages declare for different objects is an entry that refuses to load, naming them."""
    from importlib.metadata import entry_points as installed
    out: dict[str, Any] = {}
    for ep in installed(group=group):
        seen = out.get(ep.name)
        if seen is None:
            out[ep.name] = ep
        elif all(e.value != ep.value for e in getattr(seen, "entries", [seen])):
            out[ep.name] = _Clash([*getattr(seen, "entries", [seen]), ep])
    return out


def find_entry_point(entries: Mapping[str, Any], name: str) -> Any | None:
    """The entry point called ``name`` (any case) among ``entries``, or None."""
    if name in entries:
        return entries[name]
    same = [e for key, e in entries.items() if key.lower() == name.lower()]
    return same[0] if len(same) == 1 else None


def load_entry_point(entry: Any, kind: str) -> Any:
    """``entry.load()``, with an error that names the entry point and the package that declares it."""
    if isinstance(entry, _Clash):
        raise UnknownNameError(f"{kind} {entry.message()}")
    try:
        return entry.load()
    except Exception as err:  # noqa: BLE001 - a broken plug-in is reported in one line
        raise UnknownNameError(f"{kind} '{entry.name}' (entry point {entry.value} of {_dist(entry)}) failed to load: "
                               f"{type(err).__name__}: {err}") from None
