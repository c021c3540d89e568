"""The correction network C(s | theta) of Solver-in-the-Loop, in the layout of the authors' code (model
"mars_moon", used for the wake flow, Burgers and the PRE networks):

    conv 5x5 -> 32, leaky ReLU;
    5 residual blocks  h <- lrelu(h + conv 5x5(lrelu(conv 5x5(h))));
    conv 5x5 -> out channels, linear.

12 convolutions of 32 features, zero ('same') padding, leaky-ReLU slope 0.3 (Keras' default), Glorot-uniform weights
and zero biases (Keras' defaults). The paper's text describes a smaller net ("typically 10 layers of 16 features",
3x3 or 5x5 kernels): ``features=16, blocks=4, kernel=3`` is that net, about 13x cheaper on the CPU. The code's net is
the one that produced Table 1.

With ``zero_output`` the last convolution starts at zero, so the corrected solver starts as the source solver
(C = 0) and training only ever adds to it. With Glorot's init instead the first corrections are large: on forced
Burgers the first NON epoch's loss is about 70x that of no correction, and the net did not recover within 12 epochs
(docs/solver-in-the-loop.md).

The net sees the state (and the force, for the forced Burgers scenario) divided by their training standard
deviations and returns a correction in units of the velocity standard deviation; :class:`Correction` does that
scaling and keeps the staggered layout: a (..., 2, n, n) periodic staggered field is already n x n per component,
so it goes in and out as two image channels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..base import ProblemError

__all__ = ["LEAKY_SLOPE", "ResidualConvNet", "Correction"]

#: Keras' LeakyReLU default slope, used by the authors' networks
LEAKY_SLOPE = 0.3


def _conv(c_in: int, c_out: int, kernel: int) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
    nn.init.xavier_uniform_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class ResidualConvNet(nn.Module):
    """Fully convolutional residual net (B, in_channels, H, W) -> (B, out_channels, H, W)."""

    def __init__(self, in_channels: int, out_channels: int = 2, features: int = 32, blocks: int = 5,
                 kernel: int = 5, zero_output: bool = False):
        super().__init__()
        self.inp = _conv(in_channels, features, kernel)
        self.blocks = nn.ModuleList(nn.ModuleList((_conv(features, features, kernel), _conv(features, features, kernel)))
                                    for _ in range(blocks))
        self.out = _conv(features, out_channels, kernel)
        if zero_output:
            nn.init.zeros_(self.out.weight)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.inp(x))
        for first, second in self.blocks:
            h = self.act(h + second(self.act(first(h))))
        return self.out(h)


class Correction(nn.Module):
    """C(s, c) = sigma_v * net([s / sigma_v, c / sigma_c]) for staggered states s (B, 2, h, w) and the step's
    condition c.

    ``velocity_std`` (2 values, per component) and ``condition_std`` are the training data statistics
    (:func:`~problems.solver_in_the_loop.training.data_statistics`). ``condition`` says what c is: 'field' (the
    force, (B, 2, h, w): two more input channels), 'scalar' (one number per example, the wake flow's re: one constant
    input channel) or None (no condition). With ``padded`` the states are padded staggered tensors (B, 2, H+1, W+1)
    of an open grid: the net sees the H x W cells (the last face of each axis dropped, as the authors do) and its
    output is padded back with zeros.
    """

    def __init__(self, velocity_std: Tensor, condition_std: Tensor | None = None, condition: str | None = "field",
                 padded: bool = False, **net_kwargs):
        super().__init__()
        if condition not in ("field", "scalar", None):
            raise ValueError(f"unknown condition kind {condition!r}; choose 'field', 'scalar' or None")
        if condition is not None and condition_std is None:
            raise ValueError(f"a '{condition}' condition needs its standard deviation (condition_std)")
        self.condition, self.padded = condition, padded
        self.register_buffer("velocity_std", torch.as_tensor(velocity_std, dtype=torch.float32).reshape(2, 1, 1))
        if condition is not None:
            self.register_buffer("condition_std", torch.as_tensor(condition_std, dtype=torch.float32).reshape(-1, 1, 1))
        extra = {"field": 2, "scalar": 1, None: 0}[condition]
        self.net = ResidualConvNet(2 + extra, 2, **net_kwargs)

    @property
    def forced(self) -> bool:
        return self.condition is not None

    def _cells(self, x: Tensor) -> Tensor:
        return x[..., :-1, :-1] if self.padded else x

    def forward(self, state: Tensor, condition: Tensor | None = None) -> Tensor:
        if state.dim() != 4 or state.shape[1] != 2:
            raise ProblemError(f"solver-in-the-loop: the correction takes staggered states (batch, 2, n, n), got "
                               f"{tuple(state.shape)}")
        cells = self._cells(state)
        features = [cells / self.velocity_std]
        if self.condition == "field":
            if condition is None or condition.shape != state.shape:
                raise ProblemError(f"solver-in-the-loop: this correction needs the force (batch, 2, n, n) beside the "
                                   f"state {tuple(state.shape)}, got "
                                   f"{None if condition is None else tuple(condition.shape)}")
            features.append(self._cells(condition) / self.condition_std)
        elif self.condition == "scalar":
            if condition is None or condition.shape != state.shape[:1]:
                raise ProblemError(f"solver-in-the-loop: this correction needs one condition value per example "
                                   f"(batch,) = ({state.shape[0]},), got "
                                   f"{None if condition is None else tuple(condition.shape)}")
            constant = (condition.to(cells.dtype) / self.condition_std.reshape(())).reshape(-1, 1, 1, 1)
            features.append(constant.expand(-1, 1, *cells.shape[-2:]))
        out = self.net(torch.cat(features, dim=1)) * self.velocity_std
        return F.pad(out, (0, 1, 0, 1)) if self.padded else out
