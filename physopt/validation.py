"""One checker for hyperparameters, used by SIP, HIG, the inverse updates, the bench and tune.

Messages follow torch.optim's style (``Invalid learning rate: -1``) and add the rule, so a user sees in one line which
value is wrong and what would be right::

    >>> check_number("lr", -1, low=0, low_inclusive=False)
    Traceback (most recent call last):
    ValueError: Invalid lr: -1; it must be a finite number > 0
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

__all__ = ["check_number", "check_integer", "check_choice"]


def _rule(low: float | None, low_inclusive: bool, high: float | None, high_inclusive: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>=' if low_inclusive else '>'} {low:g}")
    if high is not None:
        parts.append(f"{'<=' if high_inclusive else '<'} {high:g}")
    return " and ".join(parts)


def check_number(name: str, value: Any, *, low: float | None = None, low_inclusive: bool = True,
                 high: float | None = None, high_inclusive: bool = False, optional: bool = False) -> float | None:
    """``float(value)`` if it is a finite real number within [low, high] (bounds inclusive or not), else ValueError.

    ``optional=True`` lets ``None`` through. Booleans and strings are refused (``float("1")`` would accept them).
    0-dim tensors are accepted (a scheduler may store ``lr`` as one).
    """
    if value is None and optional:
        return None
    rule = _rule(low, low_inclusive, high, high_inclusive)
    wanted = "a finite number" + (f" {rule}" if rule else "") + (" or None" if optional else "")
    if isinstance(value, (bool, str)) or not (isinstance(value, numbers.Real) or _is_scalar_tensor(value)):
        raise ValueError(f"Invalid {name}: {value!r}; it must be {wanted}")
    v = float(value)
    below = low is not None and (v < low or (v == low and not low_inclusive))
    above = high is not None and (v > high or (v == high and not high_inclusive))
    if not math.isfinite(v) or below or above:
        raise ValueError(f"Invalid {name}: {value!r}; it must be {wanted}")
    return v


def check_integer(name: str, value: Any, *, low: int | None = None, high: int | None = None,
                  optional: bool = False) -> int | None:
    """``int(value)`` if it is an integer (not a bool, not a non-integral float) in [low, high], else ValueError."""
    if value is None and optional:
        return None
    rule = " and ".join(([f">= {low}"] if low is not None else []) + ([f"<= {high}"] if high is not None else []))
    wanted = "an integer" + (f" {rule}" if rule else "") + (" or None" if optional else "")
    integral = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not integral or (low is not None and value < low) or \
            (high is not None and value > high):
        raise ValueError(f"Invalid {name}: {value!r}; it must be {wanted}")
    return int(value)


def check_choice(name: str, value: Any, choices: tuple) -> Any:
    """``value`` if it is one of ``choices``, else ValueError naming them."""
    if value not in choices:
        raise ValueError(f"Invalid {name}: {value!r}; choose one of {', '.join(repr(c) for c in choices)}")
    return value


def _is_scalar_tensor(value: Any) -> bool:
    """A 0-dim tensor (or array) holding one real, non-boolean number."""
    if getattr(value, "ndim", None) != 0 or not hasattr(value, "item"):
        return False
    item = value.item()
    return isinstance(item, numbers.Real) and not isinstance(item, bool)


def finite_flag(tensors: Iterable[Any]) -> Any:
    """A 0-dim bool tensor: whether every tensor is free of NaN/inf, reduced on the device (no sync until read)."""
    import torch
    flags = [torch.isfinite(t).all() for t in tensors]
    return torch.stack([f.to(flags[0].device) for f in flags]).all() if flags else torch.tensor(True)


def all_finite(tensors: Iterable[Any]) -> bool:
    """Whether every tensor is free of NaN/inf: one reduction, one device sync for all of them."""
    return bool(finite_flag(tensors))
