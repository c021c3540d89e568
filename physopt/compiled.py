"""A physics function under ``torch.compile``, falling back to the eager function where compiling fails.

A step of HIG (and of the generic SIP updates) runs the physics many times on small tensors: an RK4 loop of the
oscillators is thousands of tiny kernels forward and backward, so per-op overhead (Python, dispatch, kernel launches)
is most of its cost. ``torch.compile`` fuses them; compiling costs seconds to minutes once per input shape, so it
pays on long runs and on GPUs, where each launch is expensive. The result is the same function to rounding.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import torch

__all__ = ["CompiledPhysics", "compiled_physics"]


class CompiledPhysics:
    """``fn`` compiled with ``torch.compile(fn, **options)``, called like ``fn``.

    When a call of the compiled function fails, ``fn`` itself is called with the same arguments: if it fails too, its
    error is raised (the input is at fault, not the compiler); if it works, a ``RuntimeWarning`` names the compiler's
    error once and ``fn`` runs eagerly from then on (``fallback`` holds that error); running out of device memory
    is raised as it is. ``fn`` must be a pure function
    of its arguments (it may be called twice). A compiled backward pass that fails is not caught here (rare: the
    backward graph is traced with the forward).
    """

    def __init__(self, fn: Callable[..., Any], **options: Any):
        if not callable(fn):
            raise TypeError(f"compiled_physics needs a callable physics, got {type(fn).__name__}")
        self.fn, self.options = fn, options
        self.compiled = torch.compile(fn, **options)
        self.fallback: BaseException | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.fallback is None:
            try:
                return self.compiled(*args, **kwargs)
            except torch.cuda.OutOfMemoryError:
                raise                            # memory, not the compiler: the eager function would need it too
            except Exception as err:         # noqa: BLE001 - decided below by running the function eagerly
                result = self.fn(*args, **kwargs)         # raises the input's own error, if that is the cause
                self.fallback = err
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                warnings.warn(f"torch.compile could not run the physics ({type(err).__name__}: {first[:300]}); "
                              f"it runs eagerly from now on", RuntimeWarning, stacklevel=2)
                return result
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        state = "eager fallback" if self.fallback is not None else "compiled"
        return f"CompiledPhysics({getattr(self.fn, '__name__', self.fn)!r}, {state})"


def compiled_physics(fn: Callable[..., Any], **options: Any) -> CompiledPhysics:
    """``fn`` under ``torch.compile(fn, **options)`` with a fallback to eager execution (:class:`CompiledPhysics`);
    e.g. ``physopt.HIG(net, physics=physopt.compiled_physics(problem.forward), ...)``, or ``compile_physics=True``."""
    return CompiledPhysics(fn, **options)
