"""n-TangentProp: all input derivatives u, u', ..., u^(n) of an MLP in one forward pass.

For a network u built from ``nn.Linear`` layers and smooth activations, a point x (B, d) and a direction v, the
jet of the curve s -> u(x + s v) at s = 0, i.e. the directional derivatives  u^(k) = d^k/ds^k u(x + s v),
k = 0..n, is pushed through the layers instead of being built by nested autograd: n-TangentProp (Kyro Chi et al.,
paper, blog post and code at github.com/KyroChi/n_tangentprop), which extends TangentProp (Simard et al. 1991) to
any order. The input jet is (x, v, 0, 0, ...). Each layer maps a jet to a jet:

* Linear, h = W a + b:  h^(k) = W a^(k) for k >= 1, the bias only on order 0 (one matmul for all orders).
* Activation y = s(h), two exact routes (``method``):

  - ``"recurrence"`` (default): normalised Taylor coefficients c_k = u^(k) / k!. Since tanh' = 1 - tanh^2,
    y = tanh(h) obeys y' = (1 - y^2) h', which coefficient-wise reads

        k y_k = sum_{j=1..k} j h_j p_{k-j},   p = 1 - y*y  (Cauchy product: p_m = [m=0] - sum_i y_i y_{m-i}),

    O(n^2) multiply-adds per unit; derivatives are u^(k) = k! c_k.
  - ``"faa_di_bruno"`` (as in the paper): Faa di Bruno's formula

        (s o h)^(i) = sum_{partitions j of i} i! / prod_m (j_m! (m!)^{j_m}) * s^(|j|)(h) * prod_m (h^(m))^{j_m},

    with s^(k) = P_k(tanh h), P_0(y) = y, P_{k+1}(y) = (1 - y^2) P_k'(y), partitions generated for any order.
    The sum has p(i) terms (the partition numbers); kept as an independent cross-check of the recurrence.

Supported layers: ``nn.Linear``, ``nn.Tanh``, ``nn.Sigmoid`` (exactly, as 1/2 + tanh(h/2)/2), ``nn.Identity`` and
nested ``nn.Sequential``. No order limit; every jet is differentiable w.r.t. the weights (for PINN losses).
Float32: u^(k) grows like k! R^-k (R: distance to the nearest complex singularity) and k! alone overflows beyond
k = 34; for large n use :func:`taylor_coefficients`, which never multiplies by k!. The recurrence keeps float32's
~1e-6 relative accuracy to high order; the Faa di Bruno route evaluates polynomials with large alternating integer
coefficients and loses digits as the order grows (~3e-5 at order 14 on a width-64 tanh MLP).
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

METHODS = ("recurrence", "faa_di_bruno")
SUPPORTED_LAYERS = ("Linear", "Tanh", "Sigmoid", "Identity", "Sequential")

Jet = list[Tensor]
"""Orders 0..len-1 of a jet (Taylor coefficients or derivatives); missing higher orders are zero."""

# y = offset + scale * tanh(inner * h): the activations with an exact jet rule, all through tanh.
_TANH_FORMS: dict[type[nn.Module], tuple[float, float, float]] = {
    nn.Tanh: (0.0, 1.0, 1.0),
    nn.Sigmoid: (0.5, 0.5, 0.5),
}


# ---------------------------------------------------------------------------------------------------- recurrence

def tanh_taylor(h: Jet, n: int) -> Jet:
    """Taylor coefficients y_0..y_n of tanh(h(s)) from those of h: k y_k = sum_j j h_j p_{k-j}, p = 1 - y^2."""
    y = [torch.tanh(h[0])]
    p = [1 - y[0] * y[0]]
    jh = [hj if j == 1 else j * hj for j, hj in enumerate(h[1:], start=1)]     # jh[j-1] = j h_j
    for k in range(1, n + 1):
        y.append(sum_products(jh[:k], p[k - 1::-1]) / k)
        if k < n:   # p_k = -sum_{i=0..k} y_i y_{k-i}, each pair counted once
            half = sum_products(y[:(k + 1) // 2], y[k:k // 2:-1])
            p.append(-(2 * half + y[k // 2] ** 2) if k % 2 == 0 else -2 * half)
    return y


def sum_products(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """sum_i a_i * b_i over the shorter of the two sequences (at least one pair)."""
    total = a[0] * b[0]
    for ai, bi in zip(a[1:], b[1:]):
        total = total + ai * bi
    return total


# -------------------------------------------------------------------------------------------------- Faa di Bruno

@functools.lru_cache(maxsize=None)
def partitions(i: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """The integer partitions of i, each as ((part m, multiplicity j_m), ...) with parts increasing."""
    def parts(rest: int, largest: int) -> Iterator[tuple[int, ...]]:
        if rest == 0:
            yield ()
        for m in range(min(rest, largest), 0, -1):
            for tail in parts(rest - m, m):
                yield (m, *tail)
    return tuple(tuple((m, p.count(m)) for m in sorted(set(p))) for p in parts(i, i))


def faa_di_bruno_coefficient(i: int, partition: tuple[tuple[int, int], ...]) -> int:
    """i! / prod_m (j_m! (m!)^{j_m}): the number of set partitions of i items with block sizes given by ``partition``."""
    return math.factorial(i) // math.prod(math.factorial(j) * math.factorial(m) ** j for m, j in partition)


@functools.lru_cache(maxsize=None)
def tanh_derivative_polynomial(k: int) -> tuple[int, ...]:
    """Coefficients (ascending powers) of P_k with tanh^(k)(x) = P_k(tanh x): P_0 = y, P_{k+1} = (1 - y^2) P_k'."""
    if k == 0:
        return (0, 1)
    prev = tanh_derivative_polynomial(k - 1)
    derivative = [i * c for i, c in enumerate(prev)][1:]
    out = [0] * (len(derivative) + 2)
    for i, c in enumerate(derivative):
        out[i] += c
        out[i + 2] -= c
    return tuple(out)


def _polyval(coefficients: Sequence[int], y: Tensor) -> Tensor:
    value = torch.full_like(y, float(coefficients[-1]))
    for c in reversed(coefficients[:-1]):
        value = value * y + float(c)     # float: the integers outgrow int64 beyond order ~19
    return value


def tanh_faa_di_bruno(h: Jet, n: int) -> Jet:
    """Derivatives 0..n of tanh(h(s)) from those of h by Faa di Bruno's formula (sum over partitions)."""
    y0 = torch.tanh(h[0])
    ds = [y0] + [_polyval(tanh_derivative_polynomial(k), y0) for k in range(1, n + 1)]
    powers: dict[tuple[int, int], Tensor] = {}

    def power(m: int, j: int) -> Tensor:
        if (m, j) not in powers:
            powers[m, j] = h[m] if j == 1 else power(m, j - 1) * h[m]
        return powers[m, j]

    out = [y0]
    for i in range(1, n + 1):
        terms = []
        for part in partitions(i):
            if part[-1][0] >= len(h):     # uses an order of h that is identically zero
                continue
            term = ds[sum(j for _, j in part)] * float(faa_di_bruno_coefficient(i, part))
            for m, j in part:
                term = term * power(m, j)
            terms.append(term)
        out.append(functools.reduce(torch.add, terms))
    return out


# ------------------------------------------------------------------------------------------------------- engine

ActivationRule = Callable[[Jet, int], Jet]
_RULES: dict[str, ActivationRule] = {"recurrence": tanh_taylor, "faa_di_bruno": tanh_faa_di_bruno}


def _tanh_form(layer: nn.Module) -> tuple[float, float, float] | None:
    return next((form for kind, form in _TANH_FORMS.items() if isinstance(layer, kind)), None)


def _layers(net: nn.Module) -> Iterator[nn.Module]:
    for layer in net:
        if isinstance(layer, nn.Sequential):
            yield from _layers(layer)
        else:
            yield layer


def _check_layers(net: nn.Module) -> list[nn.Module]:
    if not isinstance(net, nn.Sequential):
        raise TypeError(f"n-TangentProp needs an nn.Sequential of Linear layers and activations (e.g. "
                        f"problems.networks.mlp(sizes, 'tanh')), got {type(net).__name__}; for other models use "
                        f"nested_autograd_derivatives")
    layers = list(_layers(net))
    for i, layer in enumerate(layers):
        if not isinstance(layer, (nn.Linear, nn.Identity)) and _tanh_form(layer) is None:
            raise NotImplementedError(
                f"n-TangentProp has no exact jet rule for layer {i} ({type(layer).__name__}); supported layers: "
                f"{', '.join(SUPPORTED_LAYERS)}. Build the network with tanh or sigmoid activations "
                f"(problems.networks.mlp(sizes, 'tanh')), or use nested_autograd_derivatives for this network")
    return layers


def _direction(x: Tensor, n: int, direction: Tensor | Sequence[float] | None) -> Tensor:
    """Validate x (B, d), the order n and the direction; return v expanded to (B, d)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"the derivative order n must be an int >= 0, got {n!r}")
    if not isinstance(x, Tensor) or x.dim() != 2 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a floating-point (B, d) tensor, one row per point, got {shape}; "
                         "for scalar inputs use x[:, None]")
    b, d = x.shape
    if direction is None:
        if d != 1:
            raise ValueError(f"x has d = {d} input dimensions: pass a direction v of shape ({d},) or ({b}, {d}); "
                             "the jets are d^k/ds^k u(x + s v) at s = 0")
        return torch.ones_like(x)
    v = torch.as_tensor(direction, dtype=x.dtype, device=x.device)
    if tuple(v.shape) not in ((d,), (b, d)):
        raise ValueError(f"direction must have shape ({d},) or ({b}, {d}) for x of shape ({b}, {d}), "
                         f"got {tuple(v.shape)}")
    return v.expand(b, d)


def _forward_jet(net: nn.Module, x: Tensor, n: int, direction: Tensor | Sequence[float] | None,
                 rule: ActivationRule) -> Jet:
    """Push the input jet (x, v, 0, ...) through the layers; return orders 0..n of the output jet."""
    layers = _check_layers(net)
    v = _direction(x, n, direction)
    first = next((layer for layer in layers if isinstance(layer, nn.Linear)), None)
    if first is not None and first.in_features != x.shape[1]:
        raise ValueError(f"x has {x.shape[1]} input features but the network's first Linear expects "
                         f"{first.in_features}")
    jet = [x, v][:n + 1]
    for layer in layers:
        form = _tanh_form(layer)
        if isinstance(layer, nn.Linear):
            out = torch.matmul(torch.stack(jet), layer.weight.T)
            jet = [out[0] + layer.bias if layer.bias is not None else out[0], *out[1:]]
        elif form is not None:
            offset, scale, inner = form
            y = rule(jet if inner == 1 else [inner * h for h in jet], n)
            jet = y if scale == 1 else [offset + scale * y[0], *(scale * yk for yk in y[1:])]
        # nn.Identity: the jet passes unchanged
    return jet + [torch.zeros_like(jet[0])] * (n + 1 - len(jet))


def taylor_coefficients(net: nn.Sequential, x: Tensor, n: int,
                        direction: Tensor | Sequence[float] | None = None) -> Tensor:
    """Normalised Taylor coefficients u^(k)/k!, k = 0..n, of s -> net(x + s v) at s = 0: a (n+1, B, out) tensor.

    The recurrence route without the final k! scaling, for orders where u^(k) itself would leave the float range.
    """
    return torch.stack(_forward_jet(net, x, n, direction, tanh_taylor))


def ntangentprop(net: nn.Sequential, x: Tensor, n: int, direction: Tensor | Sequence[float] | None = None,
                 method: str = "recurrence") -> Tensor:
    """All directional derivatives u^(k) = d^k/ds^k net(x + s v) at s = 0, k = 0..n, in one forward pass.

    Args:
        net: ``nn.Sequential`` of ``nn.Linear``, ``nn.Tanh``, ``nn.Sigmoid``, ``nn.Identity`` (nesting allowed).
        x: points, (B, d).
        n: highest order, any int >= 0 (n = 0 is the plain forward pass).
        direction: v of shape (d,) or (B, d); may be omitted when d = 1 (v = 1, ordinary derivatives).
        method: ``"recurrence"`` (Taylor-coefficient recurrence, O(n^2) per unit, default) or ``"faa_di_bruno"``
            (the paper's partition sum, a cross-check).

    Returns:
        (n+1, B, out) tensor, entry k = u^(k); differentiable w.r.t. the weights (and x, v).
    """
    if method not in METHODS:
        raise ValueError(f"unknown n-TangentProp method '{method}'; choose one of {METHODS}")
    jet = _forward_jet(net, x, n, direction, _RULES[method])
    if method == "recurrence":
        jet = [c if k < 2 else c * float(math.factorial(k)) for k, c in enumerate(jet)]
    return torch.stack(jet)


def nested_autograd_derivatives(net: nn.Module, x: Tensor, n: int,
                                direction: Tensor | Sequence[float] | None = None) -> Tensor:
    """Reference: u^(k) = d^k/ds^k net(x + s v) by n nested ``torch.autograd.grad(..., create_graph=True)`` calls.

    One leaf s (B, 1) = 0 per point, so the model must be pointwise (row b of the output depends on row b of the
    input only, as for any MLP). Same shapes and arguments as :func:`ntangentprop`; works for any smooth model.
    The cost grows exponentially with n, which is what n-TangentProp avoids.
    """
    v = _direction(x, n, direction)
    with torch.enable_grad():
        s = torch.zeros(x.shape[0], 1, dtype=x.dtype, device=x.device, requires_grad=True)
        u = net(x + s * v)
        if u.dim() != 2 or u.shape[0] != x.shape[0]:
            raise ValueError(f"the model must map (B, d) to (B, out), got output shape {tuple(u.shape)}")
        per_output = []
        for o in range(u.shape[1]):     # one chain per output: differentiating a concatenation would revisit all
            chain = [u[:, o:o + 1]]
            for _ in range(n):
                grad = torch.autograd.grad(chain[-1].sum(), s, create_graph=True, allow_unused=True)[0] \
                    if chain[-1].requires_grad else None
                chain.append(torch.zeros_like(s) if grad is None else grad)
            per_output.append(torch.stack(chain))
    return torch.cat(per_output, dim=2)
