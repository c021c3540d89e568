"""The correction network C(s | theta) of Solver-in-the-Loop, in the layout of the authors' code (model
"mars_moon", used for the wake flow, Burgers and the PRE networks):

    conv 5x5 -> 32, leaky ReLU;
    5 residual blocks  h <- lrelu(h + conv 5x5(lrelu(conv 5x5(h))));
    conv 5x5 -> out channels, linear.

12 convolutions of 32 features, zero ('same') padding, leaky-ReLU slope 0.3 (Keras' default), Glorot-uniform weights
and zero biases (Keras' defaults). The paper's text describes a smaller net ("typically 10 layers of 16 features");
the code's net is the one that produced Table 1.

The net sees the state (and the force, for the forced Burgers scenario) divided by their training standard
deviations and returns a correction in units of the velocity standard deviation; :class:`Correction` does that
scaling and keeps the staggered layout: a (..., 2, n, n) periodic staggered field is already n x n per component,
so it goes in and out as two image channels.
"""
from __future__ import annotations

import torch
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
                 kernel: int = 5):
        super().__init__()
        self.inp = _conv(in_channels, features, kernel)
        self.blocks = nn.ModuleList(nn.ModuleList((_conv(features, features, kernel), _conv(features, features, kernel)))
                                    for _ in range(blocks))
        self.out = _conv(features, out_channels, kernel)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.inp(x))
        for first, second in self.blocks:
            h = self.act(h + second(self.act(first(h))))
        return self.out(h)


class Correction(nn.Module):
    """C(s, f) = sigma_v * net([s / sigma_v, f / sigma_f]) for staggered fields s, f (B, 2, n, n).

    ``velocity_std`` and ``force_std`` (2 values each, per component) are the standard deviations of |v| and |f|
    over the training frames (the authors' data statistics); ``force_std`` None builds the unforced variant.
    """

    def __init__(self, velocity_std: Tensor, force_std: Tensor | None = None, **net_kwargs):
        super().__init__()
        self.register_buffer("velocity_std", torch.as_tensor(velocity_std, dtype=torch.float32).reshape(2, 1, 1))
        self.forced = force_std is not None
        if self.forced:
            self.register_buffer("force_std", torch.as_tensor(force_std, dtype=torch.float32).reshape(2, 1, 1))
        self.net = ResidualConvNet(4 if self.forced else 2, 2, **net_kwargs)

    def forward(self, state: Tensor, force: Tensor | None = None) -> Tensor:
        if state.dim() != 4 or state.shape[1] != 2:
            raise ProblemError(f"solver-in-the-loop: the correction takes staggered states (batch, 2, n, n), got "
                               f"{tuple(state.shape)}")
        features = [state / self.velocity_std]
        if self.forced:
            if force is None or force.shape != state.shape:
                raise ProblemError(f"solver-in-the-loop: this correction needs the force (batch, 2, n, n) beside the "
                                   f"state {tuple(state.shape)}, got "
                                   f"{None if force is None else tuple(force.shape)}")
            features.append(force / self.force_std)
        return self.net(torch.cat(features, dim=1)) * self.velocity_std
