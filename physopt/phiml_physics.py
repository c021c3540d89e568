"""Physics written with phiml / PhiFlow as a batched torch function ``P(x, *args) -> y`` for SIP and HIG.

phiml (and PhiFlow on top of it; Holl's dissertation, chapter 3) names every dimension: batch, spatial, channel.
physopt's optimizers see plain torch tensors whose dim 0 is the batch. :func:`phiml_physics` maps one onto the
other, once, as the user declares it::

    from phiml.math import spatial
    P = physopt.phiml_physics(lambda x: flow.diffuse.explicit(CenteredGrid(x, 0, x=32), 0.1, 1.0),
                              x=spatial('x'), y=spatial('x'))
    y = P(torch_x)            # torch_x: (b, 32) -> y: (b, 32), on the torch backend, autograd intact

The torch tensor becomes a phiml tensor without a copy (its dim 0 is the batch dimension ``examples``, the others
the declared dimensions in order), the function runs under ``math.precision`` of the tensor's dtype (phiml's
default of 32 bits would silently cast a float64 simulation to float32), and its result (a phiml tensor or a
PhiFlow field's values) goes back to torch in the declared order. Derivatives then flow through plain
``torch.autograd``; ``torch.func`` transforms fail inside phiml, which is why HIG's ``expand`` Jacobian and the
generic updates' ``autograd`` route exist (:mod:`physopt.hig.per_example`, :mod:`physopt.updates`).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

__all__ = ["phiml_physics", "PhimlPhysics"]

BATCH = "examples"


def _phiml():
    try:
        from phiml import math
    except ImportError as err:          # a dependency of physopt, but an environment may lack it
        raise ImportError("phiml_physics needs phiml: pip install phiml (or physopt[phiflow] for PhiFlow too)") \
            from err
    return math


class PhimlPhysics:
    """``P(x, *args) -> y`` over a function ``fn(X, *Args)`` of phiml tensors (see :func:`phiml_physics`)."""

    def __init__(self, fn: Callable[..., Any], x: Any, y: Any, args: tuple[Any, ...] = ()):
        math = _phiml()
        if not callable(fn):
            raise TypeError(f"phiml_physics needs the simulation as a callable fn(x, *args), got {type(fn).__name__}")
        for what, shape in (("x", x), ("y", y), *((f"args[{i}]", a) for i, a in enumerate(args) if a is not None)):
            if not isinstance(shape, math.Shape):
                raise TypeError(f"phiml_physics: {what} must declare the non-batch dimensions as a phiml Shape, e.g. "
                                f"spatial('x,y') or spatial('x') & channel(vector='u,v'), got {type(shape).__name__}")
            if shape.batch_rank:
                raise ValueError(f"phiml_physics: {what} = {shape} declares a batch dimension; the batch is dim 0 of "
                                 f"the torch tensor (called '{BATCH}' inside fn): declare only the others")
        self.fn, self.x, self.y, self.args = fn, x, y, tuple(args)
        self.__name__ = getattr(fn, "__name__", "phiml_physics")

    def _wrap(self, t: Tensor, dims: Any, what: str) -> Any:
        math = _phiml()
        if t.dim() != dims.rank + 1:
            raise ValueError(f"{what} has shape {tuple(t.shape)}, but {dims} declares {dims.rank} dimension(s) after "
                             f"the batch: it must be (batch, {', '.join(dims.names)})")
        for name, declared, size in zip(dims.names, dims.sizes, t.shape[1:]):
            if declared is not None and declared != size:
                raise ValueError(f"{what}: dimension '{name}' has size {size}, but {dims} declares {declared}")
        return math.wrap(t, math.batch(BATCH), dims.with_sizes(tuple(t.shape[1:])))

    def __call__(self, x: Tensor, *args: Any) -> Tensor:
        math = _phiml()
        if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 1:
            got = f"{x.dtype} of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"phiml_physics takes x as a floating-point torch tensor with the batch in dim 0, got {got}")
        bits = torch.finfo(x.dtype).bits
        with math.precision(bits):
            wrapped = [self._wrap(a, d, f"args[{i}]") if (isinstance(a, Tensor) and d is not None) else a
                       for i, (a, d) in enumerate(zip(args, self.args + (None,) * len(args)))]
            out = self.fn(self._wrap(x, self.x, "x"), *wrapped)
            values = out if isinstance(out, math.Tensor) else getattr(out, "values", out)   # a PhiFlow Field
            if not isinstance(values, math.Tensor):
                raise TypeError(f"the phiml function returned {type(out).__name__}; it must return a phiml tensor "
                                f"or a PhiFlow field")
            backend = math.choose_backend(values).name
            if backend != "torch":
                raise TypeError(f"the phiml function computed on the {backend} backend, not torch: keep every tensor "
                                f"on torch (no math.numpy(...) or numpy arrays inside), so that autograd sees it")
            self._check_output(values, x.shape[0])
            native = values.native([BATCH, *self.y.names])
        if not isinstance(native, Tensor):
            raise TypeError(f"the phiml function's result is {type(native).__name__}, not a torch tensor")
        return native

    def _check_output(self, values: Any, b: int) -> None:
        shape = values.shape
        if BATCH not in shape or shape.get_size(BATCH) != b:
            raise ValueError(f"the phiml function returned shape {shape}, which lost the batch dimension '{BATCH}' "
                             f"of size {b}: keep it (do not sum or index over it)")
        others = shape.without(BATCH)
        missing = [n for n in self.y.names if n not in others]
        extra = [n for n in others.names if n not in self.y.names]
        if missing or extra:
            say = [f"dimension '{n}' is missing" for n in missing] + [f"dimension '{n}' is not declared" for n in extra]
            raise ValueError(f"the phiml function returned shape {shape}, but y = {self.y} was declared: "
                             f"{'; '.join(say)}")
        for name, declared in zip(self.y.names, self.y.sizes):
            if declared is not None and others.get_size(name) != declared:
                raise ValueError(f"the phiml function returned '{name}' of size {others.get_size(name)}, but y = "
                                 f"{self.y} declares {declared}")

    def __repr__(self) -> str:
        return f"phiml_physics({self.__name__}, x={self.x}, y={self.y})"


def phiml_physics(fn: Callable[..., Any], x: Any, y: Any, args: tuple[Any, ...] = ()) -> PhimlPhysics:
    """Wrap ``fn(X, *Args)`` (phiml tensors in, a phiml tensor or PhiFlow field out) as a batched torch physics.

    Args:
        fn: the simulation, written with phiml / PhiFlow; it receives x as a phiml tensor with the batch dimension
            ``examples`` and the declared dimensions, and must keep ``examples`` in its result.
        x: the non-batch dimensions of the torch input, in order, as a phiml Shape (``spatial('x,y')``,
            ``spatial('x') & channel(vector='u,v')``); sizes are optional and checked where given.
        y: the non-batch dimensions of the result, in the order the torch output gets them.
        args: optional Shapes for tensor arguments of ``P(x, *args)`` (None for one passed through unchanged);
            tensor arguments are split per example like x (dim 0 is the batch).

    Returns:
        ``P(x, *args) -> y`` as torch tensors, zero-copy, under phiml precision of x's dtype; usable as
        ``physics`` of :class:`physopt.HIG` and of the generic SIP updates. Errors name the dimension that does not
        match, a non-torch backend, or a result that is not a phiml tensor.
    """
    return PhimlPhysics(fn, x, y, args)
