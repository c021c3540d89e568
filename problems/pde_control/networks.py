"""The networks of the PDE-control paper's Burgers experiment (App. C; layer sizes of the authors' code).

:class:`ResidualUNet1d` (one network for every role):

1. zero-pad the input at the high end by 2^L - 1 cells (L = 5 levels: 32 -> 63 cells);
2. encoder, per level: a strided convolution (kernel 2, stride 2, ReLU) with 4, 8, 16, 16, 16 filters, then two
   residual blocks (kernel 3): 63 -> 31 -> 15 -> 7 -> 3 -> 1 cells;
3. three residual blocks with 16 features at the bottom;
4. decoder, per level: linear 2x upsampling, the encoder output of that level cropped to the same length and
   concatenated, one cell of edge padding, a convolution (kernel 2, 16 filters, ReLU) and two residual blocks
   (kernel 2); the last level ends in one convolution (kernel 2) to one output channel, no activation.

A residual block is  y = lrelu(x + conv(lrelu(conv(x))))  (leaky slope 0.2, edge padding, no normalisation).
Weights start Glorot-uniform with zero biases (the authors' TensorFlow defaults).

:class:`ObservationPredictors`: one U-net OP_n per time span n = 2, 4, ..., steps, input the two observations
(o_i, o_j) as two channels, output the observation at the midpoint. :class:`ControlForceEstimator`: the CFE chain's
network, input (current state, target, t / steps) as three channels, output the next state.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..base import ProblemError
from .setup import ControlSetup

__all__ = ["ResidualBlock1d", "ResidualUNet1d", "ObservationPredictors", "ControlForceEstimator"]

LEAKY_SLOPE = 0.2        # TensorFlow's leaky_relu default, used by the authors' residual blocks


def _glorot(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv1d):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


class ResidualBlock1d(nn.Module):
    """y = lrelu(x + conv2(lrelu(conv1(x)))), both convolutions with ``kernel`` and edge padding keeping the length
    ((kernel - 1) // 2 cells before, kernel // 2 after)."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.pad = ((kernel - 1) // 2, kernel // 2)
        self.conv1 = nn.Conv1d(channels, channels, kernel)
        self.conv2 = nn.Conv1d(channels, channels, kernel)

    def forward(self, x: Tensor) -> Tensor:
        y = F.leaky_relu(self.conv1(F.pad(x, self.pad, mode="replicate")), LEAKY_SLOPE)
        y = self.conv2(F.pad(y, self.pad, mode="replicate"))
        return F.leaky_relu(x + y, LEAKY_SLOPE)


class ResidualUNet1d(nn.Module):
    """The paper's 1-D U-net with residual blocks: (B, in_channels, N) -> (B, N), N divisible by 2^levels."""

    def __init__(self, in_channels: int, filters: Sequence[int] = (4, 8, 16, 16, 16), up_filters: int = 16,
                 bottom_blocks: int = 3, blocks: int = 2):
        super().__init__()
        self.in_channels = in_channels
        self.levels = len(filters)
        self.down = nn.ModuleList(nn.Conv1d(a, b, 2, stride=2) for a, b in zip((in_channels, *filters), filters))
        self.down_blocks = nn.ModuleList(nn.Sequential(*(ResidualBlock1d(f, 3) for _ in range(blocks)))
                                         for f in filters)
        self.bottom = nn.Sequential(*(ResidualBlock1d(filters[-1], 3) for _ in range(bottom_blocks)))
        skips = [in_channels, *filters[:-1]][::-1]             # the encoder outputs the decoder meets, deepest first
        below = [filters[-1]] + [up_filters] * (len(filters) - 1)
        self.up = nn.ModuleList(nn.Conv1d(b + s, up_filters, 2) for b, s in zip(below[:-1], skips[:-1]))
        self.up_blocks = nn.ModuleList(nn.Sequential(*(ResidualBlock1d(up_filters, 2) for _ in range(blocks)))
                                       for _ in skips[:-1])
        self.out = nn.Conv1d(below[-1] + skips[-1], 1, 2)
        _glorot(self)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[1] != self.in_channels or x.shape[-1] % 2 ** self.levels:
            raise ProblemError(f"ResidualUNet1d expects (batch, {self.in_channels}, N) with N divisible by "
                               f"{2 ** self.levels}, got {tuple(x.shape)}")
        y = F.pad(x, (0, 2 ** self.levels - 1))
        skips = [y]
        for conv, blocks in zip(self.down, self.down_blocks):
            y = blocks(F.relu(conv(y)))
            skips.append(y)
        y = self.bottom(skips.pop())
        for i, skip in enumerate(reversed(skips)):
            y = F.interpolate(y, scale_factor=2, mode="linear", align_corners=False)
            y = F.pad(torch.cat([y, skip[..., :y.shape[-1]]], dim=1), (0, 1), mode="replicate")
            if i < len(self.up):
                y = self.up_blocks[i](F.relu(self.up[i](y)))
            else:
                y = self.out(y)
        return y[:, 0]


class ObservationPredictors(nn.Module):
    """OP_n for every span n of ``setup`` (2, 4, ..., steps): ``self(n, o_i, o_j)`` predicts the observation half-way
    between o_i and o_j = o_{i+n} (each (B, N))."""

    def __init__(self, setup: ControlSetup = ControlSetup(), **unet):
        super().__init__()
        self.setup = setup
        self.spans = setup.spans
        self.nets = nn.ModuleDict({str(n): ResidualUNet1d(2, **unet) for n in self.spans})

    def forward(self, span: int, start: Tensor, end: Tensor) -> Tensor:
        if span not in self.spans:
            raise ProblemError(f"no observation predictor for a span of {span} steps; this model has OP_n for n in "
                               f"{self.spans}")
        self.setup.check_state(start, "the OP's first observation")
        self.setup.check_state(end, "the OP's second observation")
        return self.nets[str(span)](torch.stack([start, end], dim=1))


class ControlForceEstimator(nn.Module):
    """The CFE chain's network: ``self(u_t, target, t)`` -> the next state u_{t+1} (B, N); the force is implied,
    F_t = u_{t+1} - Solver[u_t] (the authors' code; the paper writes the force as the output)."""

    def __init__(self, setup: ControlSetup = ControlSetup(), **unet):
        super().__init__()
        self.setup = setup
        self.net = ResidualUNet1d(3, **unet)

    def forward(self, state: Tensor, target: Tensor, t: int) -> Tensor:
        self.setup.check_state(state, "the CFE's state")
        self.setup.check_state(target, "the CFE's target")
        clock = torch.full_like(state, t / self.setup.steps)
        return self.net(torch.stack([state, target, clock], dim=1))
