"""One table formatter for every table physopt prints or writes: aligned plain text for the terminal and ``.txt``
files, GitHub markdown for README files.

A table is a list of row dicts and a list of :class:`Column` s; a column reads one key (or computes its cell from the
row) and formats it, with '-' for a missing value.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

MISSING = "-"


def dash_or(value: float | None, scale: float = 1.0, fmt: str = "{:.3g}") -> str:
    """``fmt`` of ``value * scale``, or '-' for a missing value."""
    return MISSING if value is None else fmt.format(value * scale)


@dataclasses.dataclass(frozen=True)
class Column:
    """One column: its title, the row key it shows (or ``cell(row) -> str``), the number format and scale, and
    whether it is left-aligned (text) instead of right-aligned (numbers)."""
    title: str
    key: str | None = None
    fmt: str = "{:.3g}"
    scale: float = 1.0
    left: bool = False
    cell: Callable[[dict[str, Any]], str] | None = None

    def render(self, row: dict[str, Any]) -> str:
        if self.cell is not None:
            return self.cell(row)
        value = row.get(self.key) if self.key is not None else None
        if value is None:
            return MISSING
        if isinstance(value, str):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return str(value)
        return self.fmt.format(value * self.scale if self.scale != 1.0 else value)


def text_column(title: str, key: str | None = None, **kwargs: Any) -> Column:
    """A left-aligned column of strings (names, notes)."""
    return Column(title, key, fmt="{}", left=True, **kwargs)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], style: str = "text") -> str:
    """``rows`` as a table: ``style="text"`` (aligned, a rule under the header) or ``"markdown"``."""
    cells = [[c.render(r) for c in columns] for r in rows]
    titles = [c.title for c in columns]
    if style == "markdown":
        lines = ["| " + " | ".join(titles) + " |", "|" + " --- |" * len(columns)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])
    if style != "text":
        raise ValueError(f"style must be 'text' or 'markdown', got {style!r}")
    widths = [max([len(t), *(len(row[i]) for row in cells)]) for i, t in enumerate(titles)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if c.left else v.rjust(w)
                         for v, w, c in zip(values, widths, columns)).rstrip()

    head = line(titles)
    return "\n".join([head, "-" * len(head)] + [line(row) for row in cells])
