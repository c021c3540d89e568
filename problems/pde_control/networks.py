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


_POSITIONS: dict[tuple, Tensor] = {}
_UPSAMPLING: dict[tuple, Tensor] = {}


def _positions(length: int, kernel: int, stride: int, pad: tuple[int, int], device: torch.device) -> Tensor:
    """(L_out, kernel) input cells each output cell of a convolution reads; edge padding = clamped positions."""
    key = (length, kernel, stride, pad, device)
    if key not in _POSITIONS:
        out = (length + pad[0] + pad[1] - kernel) // stride + 1
        cells = torch.arange(out, device=device)[:, None] * stride + torch.arange(kernel, device=device) - pad[0]
        _POSITIONS[key] = cells.clamp(0, length - 1)
    return _POSITIONS[key]


def conv_channels_last(conv: nn.Conv1d, x: Tensor, stride: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """``conv`` (its weights; its own stride and padding are not used) applied to x (B, L, C_in) channels-last,
    with ``stride`` and ``pad`` cells of edge padding: y[b, i] = bias + sum_{k,c} W[:, c, k] x[b, i*stride + k - pad_0,
    c] (positions clamped to the edge). One gather and one matrix product: on small inputs several times cheaper than
    ``F.conv1d``'s per-call set-up."""
    cells = _positions(x.shape[1], conv.kernel_size[0], stride, pad, x.device)
    columns = x[:, cells].reshape(x.shape[0], cells.shape[0], -1)              # (B, L_out, kernel * C_in)
    weight = conv.weight.permute(0, 2, 1).reshape(conv.out_channels, -1)      # (C_out, kernel * C_in)
    return F.linear(columns, weight, conv.bias)


def upsample_channels_last(x: Tensor) -> Tensor:
    """Linear 2x upsampling of x (B, L, C) along L, edges repeated: out[2i] = 1/4 x[i-1] + 3/4 x[i],
    out[2i+1] = 3/4 x[i] + 1/4 x[i+1] (the authors' upsample2x; ``F.interpolate`` linear, align_corners=False)."""
    key = (x.shape[1], x.device, x.dtype)
    if key not in _UPSAMPLING:
        n = x.shape[1]
        eye = torch.eye(n, dtype=x.dtype, device=x.device)[None]               # interpolate the identity: the matrix
        _UPSAMPLING[key] = F.interpolate(eye, scale_factor=2, mode="linear", align_corners=False)[0].T
    return torch.matmul(_UPSAMPLING[key], x)


class ResidualBlock1d(nn.Module):
    """y = lrelu(x + conv2(lrelu(conv1(x)))), both convolutions with ``kernel`` and edge padding keeping the length
    ((kernel - 1) // 2 cells before, kernel // 2 after). Works channels-last: (B, L, C) -> (B, L, C)."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.pad = ((kernel - 1) // 2, kernel // 2)
        self.conv1 = nn.Conv1d(channels, channels, kernel)
        self.conv2 = nn.Conv1d(channels, channels, kernel)

    def forward(self, x: Tensor) -> Tensor:
        y = F.leaky_relu(conv_channels_last(self.conv1, x, 1, self.pad), LEAKY_SLOPE)
        return F.leaky_relu(x + conv_channels_last(self.conv2, y, 1, self.pad), LEAKY_SLOPE)


class ResidualUNet1d(nn.Module):
    """The paper's 1-D U-net with residual blocks: (B, in_channels, N) -> (B, N), N divisible by 2^levels.

    The layers are ``nn.Conv1d`` modules (weights (C_out, C_in, kernel)); the forward pass runs them channels-last
    through :func:`conv_channels_last` (the same numbers as ``F.conv1d`` with the padding above, to rounding)."""

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
        y = F.pad(x, (0, 2 ** self.levels - 1)).transpose(1, 2)              # zeros at the high end; (B, L, C)
        skips = [y]
        for conv, blocks in zip(self.down, self.down_blocks):
            y = blocks(F.relu(conv_channels_last(conv, y, stride=2)))
            skips.append(y)
        y = self.bottom(skips.pop())
        for i, skip in enumerate(reversed(skips)):
            y = upsample_channels_last(y)
            y = torch.cat([y, skip[:, :y.shape[1]]], dim=-1)
            if i < len(self.up):
                y = self.up_blocks[i](F.relu(conv_channels_last(self.up[i], y, pad=(0, 1))))
            else:
                y = conv_channels_last(self.out, y, pad=(0, 1))
        return y[..., 0]


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

    def forward(self, state: Tensor, target: Tensor, t: int | Tensor) -> Tensor:
        """``t``: the step of ``state``, one for the batch or one per example (B,)."""
        self.setup.check_state(state, "the CFE's state")
        self.setup.check_state(target, "the CFE's target")
        if isinstance(t, Tensor):
            clock = (t.to(state.dtype) / self.setup.steps)[:, None].expand_as(state)
        else:
            clock = torch.full_like(state, t / self.setup.steps)
        return self.net(torch.stack([state, target, clock], dim=1))
