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

import dataclasses
import functools
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["phiml_physics", "PhimlPhysics", "staggered", "Staggered"]

BATCH = "examples"


def _phiml():
    try:
        from phiml import math
    except ImportError as err:          # a dependency of physopt, but an environment may lack it
        raise ImportError("phiml_physics needs phiml: pip install phiml (or physopt[phiflow] for PhiFlow too)") \
            from err
    return math


def _phiflow():
    try:
        from phi import flow
    except ImportError as err:
        raise ImportError("staggered grids need PhiFlow: pip install 'physopt[phiflow]'") from err
    return flow


@dataclasses.dataclass(frozen=True)
class Staggered:
    """A staggered (MAC) grid as a torch tensor (batch, d, *faces), for x, y or args of :func:`phiml_physics`.

    Component k (the k-th dimension of ``resolution``, in its order) holds the velocity on the faces normal to that
    axis. How many faces a component has along each axis depends on the boundary, as PhiFlow stores it: n per
    axis for periodic boundaries; n + 1 along its own axis where the boundary faces carry values (zero-gradient),
    n - 1 where the boundary fixes them (zero). The torch tensor holds every component in one array, each axis as
    long as its longest component (``faces``), each component in the leading corner and zeros after it.
    """
    resolution: Any                 # a phiml spatial Shape with sizes, e.g. spatial(x=32, y=16)
    boundary: Any                   # a phiml extrapolation (PERIODIC, ZERO, ZERO_GRADIENT, ...)
    bounds: Any = None              # a PhiFlow Box; default: unit cells

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.resolution.names)

    @functools.cached_property
    def _layout(self) -> tuple[tuple[int, ...], ...]:
        """Faces per axis of each component, read once from a zero grid of PhiFlow's (not on every physics call)."""
        flow = _phiflow()
        values = flow.StaggeredGrid(0, self.boundary, bounds=self.bounds, **self._sizes()).values
        return tuple(tuple(int(values[{"~vector": c}].shape.get_size(n)) for n in self.names) for c in self.names)

    def component_sizes(self) -> list[tuple[int, ...]]:
        """Faces per axis of each component, as PhiFlow lays them out for this boundary."""
        return list(self._layout)

    def faces(self) -> tuple[int, ...]:
        """The torch shape after the batch: (d, longest component per axis)."""
        sizes = self._layout
        return (len(sizes), *(max(s[a] for s in sizes) for a in range(len(self.names))))

    @property
    def _uniform(self) -> bool:
        """Every component has the same faces (periodic boundaries): one tensor, no padding."""
        return all(size == self._layout[0] for size in self._layout)

    def _sizes(self) -> dict[str, int]:
        return dict(zip(self.names, (int(n) for n in self.resolution.sizes)))

    def wrap(self, t: Tensor, batch: Any, what: str) -> Any:
        """torch (b, d, *faces) -> a PhiFlow StaggeredGrid, each component a view of ``t``."""
        flow = _phiflow()
        expected = self.faces()
        if tuple(t.shape[1:]) != expected:
            raise ValueError(f"{what} has shape {tuple(t.shape)}, but {self} is (batch, {', '.join(map(str, expected))}"
                             f"): {len(self.names)} components ({', '.join(self.names)}), faces per axis as the "
                             f"{self.boundary} boundary stores them")
        vector = flow.dual(vector=",".join(self.names))
        if self._uniform:                                      # periodic: one uniform tensor, wrapped as it is
            values = flow.math.wrap(t, batch, vector, flow.spatial(*self.names).with_sizes(self._layout[0]))
        else:
            values = flow.math.stack([flow.math.wrap(t[(slice(None), k, *(slice(0, n) for n in size))], batch,
                                                     flow.spatial(*self.names).with_sizes(size))
                                      for k, size in enumerate(self._layout)], vector)
        return flow.StaggeredGrid(values, self.boundary, bounds=self.bounds, **self._sizes())

    def native(self, field: Any, batch: str, b: int) -> Tensor:
        """A PhiFlow StaggeredGrid of this layout -> torch (b, d, *faces), shorter components zero-padded."""
        if not getattr(field, "is_staggered", False):
            raise TypeError(f"the phiml function returned {type(field).__name__}"
                            f"{'' if not hasattr(field, 'is_staggered') else ' (not staggered)'}, but y = {self} "
                            f"declares a staggered grid: return the StaggeredGrid")
        resolution = field.resolution
        if set(resolution.names) != set(self.names) or any(resolution.get_size(n) != s
                                                           for n, s in self._sizes().items()):
            raise ValueError(f"the phiml function returned a staggered grid of resolution {resolution}, but y = "
                             f"{self} was declared")
        _check_batch(field.values.shape, b)
        if self._uniform:                                      # periodic: one uniform tensor, no copy
            return field.values.native([batch, "~vector", *self.names])
        faces = self.faces()[1:]
        out = []
        for c, size in zip(self.names, self._layout):
            part = field.values[{"~vector": c}].native([batch, *self.names])
            pad = [p for n, full in zip(reversed(size), reversed(faces)) for p in (0, full - n)]
            out.append(F.pad(part, pad))
        return torch.stack(out, 1)

    def __str__(self) -> str:
        return f"staggered({self.resolution}, {self.boundary})"


def staggered(resolution: Any, boundary: Any, bounds: Any = None) -> Staggered:
    """Declare a staggered grid for :func:`phiml_physics` (x, y or args): ``resolution`` a phiml spatial Shape with
    sizes (its order is the order of the torch axes and of the components), ``boundary`` the phiml extrapolation
    and ``bounds`` the PhiFlow Box (default: unit cells). See :class:`Staggered` for the torch layout."""
    math = _phiml()
    if not isinstance(resolution, math.Shape) or resolution.spatial_rank != resolution.rank or not resolution.rank \
            or any(not isinstance(n, int) for n in resolution.sizes):
        raise ValueError(f"staggered() needs the grid's spatial dimensions with sizes, e.g. spatial(x=32, y=16), got "
                         f"{resolution}")
    return Staggered(resolution, boundary, bounds)


def _check_batch(shape: Any, b: int) -> None:
    """The result must keep the batch dimension ``examples`` with its b examples."""
    if BATCH not in shape or shape.get_size(BATCH) != b:
        raise ValueError(f"the phiml function returned shape {shape}, which lost the batch dimension '{BATCH}' of "
                         f"size {b}: keep it (do not sum or index over it)")


class PhimlPhysics:
    """``P(x, *args) -> y`` over a function ``fn(X, *Args)`` of phiml tensors (see :func:`phiml_physics`)."""

    def __init__(self, fn: Callable[..., Any], x: Any, y: Any, args: tuple[Any, ...] = ()):
        math = _phiml()
        if not callable(fn):
            raise TypeError(f"phiml_physics needs the simulation as a callable fn(x, *args), got {type(fn).__name__}")
        for what, shape in (("x", x), ("y", y), *((f"args[{i}]", a) for i, a in enumerate(args) if a is not None)):
            if isinstance(shape, Staggered):
                continue
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
        if isinstance(dims, Staggered):
            return dims.wrap(t, math.batch(BATCH), what)
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
            if isinstance(self.y, Staggered):
                native = self.y.native(out, BATCH, x.shape[0])
            else:
                native = self._native(out, x.shape[0])
        if not isinstance(native, Tensor):
            raise TypeError(f"the phiml function's result is {type(native).__name__}, not a torch tensor: keep "
                            f"every tensor on torch (no math.numpy(...) or numpy arrays inside)")
        return native

    def _native(self, out: Any, b: int) -> Any:
        """A phiml tensor or a PhiFlow field's values -> the native tensor in the declared order of y."""
        math = _phiml()
        values = out if isinstance(out, math.Tensor) else getattr(out, "values", out)   # a PhiFlow Field
        if not isinstance(values, math.Tensor):
            raise TypeError(f"the phiml function returned {type(out).__name__}; it must return a phiml tensor "
                            f"or a PhiFlow field")
        backend = math.choose_backend(values).name
        if backend != "torch":
            raise TypeError(f"the phiml function computed on the {backend} backend, not torch: keep every tensor "
                            f"on torch (no math.numpy(...) or numpy arrays inside), so that autograd sees it")
        self._check_output(values, b)
        return values.native([BATCH, *self.y.names])

    def _check_output(self, values: Any, b: int) -> None:
        shape = values.shape
        _check_batch(shape, b)
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
            ``spatial('x') & channel(vector='u,v')``); sizes are optional and checked where given. Or a staggered
            grid, :func:`staggered` (fn then receives a PhiFlow StaggeredGrid).
        y: the non-batch dimensions of the result, in the order the torch output gets them (or :func:`staggered`:
            fn returns a StaggeredGrid; its components are padded to one tensor, one copy).
        args: optional Shapes (or :func:`staggered`) for tensor arguments of ``P(x, *args)`` (None for one passed
            through unchanged); tensor arguments are split per example like x (dim 0 is the batch).

    Returns:
        ``P(x, *args) -> y`` as torch tensors, zero-copy, under phiml precision of x's dtype; usable as
        ``physics`` of :class:`physopt.HIG` and of the generic SIP updates. Errors name the dimension that does not
        match, a non-torch backend, or a result that is not a phiml tensor.
    """
    return PhimlPhysics(fn, x, y, args)
