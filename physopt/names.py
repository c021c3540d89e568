"""Looking names up in registries, with errors that list the choices and suggest the closest one."""
from __future__ import annotations

import difflib
from typing import Mapping, TypeVar

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
