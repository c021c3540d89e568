"""Default networks of the papers: dense nets and a U-net, all plain ``torch.nn``."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "softplus": nn.Softplus,
}


def mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """Dense network sizes[0] -> sizes[1] -> ... -> sizes[-1], ``activation`` between layers, linear output."""
    if len(sizes) < 2:
        raise ValueError(f"mlp needs at least input and output sizes, got {list(sizes)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{activation}'; choose one of {sorted(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class _DoubleConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, batch_norm: bool):
        layers: list[nn.Module] = []
        for a, b in ((c_in, c_out), (c_out, c_out)):
            layers.append(nn.Conv2d(a, b, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(b))
            layers.append(nn.ReLU())
        super().__init__(*layers)


class UNet(nn.Module):
    """U-net (Ronneberger et al. 2015) with ``levels`` resolutions and ``filters`` channels on every level.

    Encoder: double 3x3 conv per level, 2x2 max-pool between levels; decoder: bilinear upsampling, skip
    concatenation, double conv; 1x1 output conv. Input and output (B, C, H, W) with H, W divisible by
    2^(levels-1). With levels=4, filters=16 and batch norm this has about 38k weights (SIP paper, Poisson/heat).
    """

    def __init__(self, in_channels: int, out_channels: int, levels: int = 4, filters: int = 16,
                 batch_norm: bool = True):
        super().__init__()
        if levels < 1 or filters < 1:
            raise ValueError(f"UNet needs levels >= 1 and filters >= 1, got levels={levels}, filters={filters}")
        self.levels = levels
        self.inc = _DoubleConv(in_channels, filters, batch_norm)
        self.down = nn.ModuleList(_DoubleConv(filters, filters, batch_norm) for _ in range(levels - 1))
        self.up = nn.ModuleList(_DoubleConv(2 * filters, filters, batch_norm) for _ in range(levels - 1))
        self.outc = nn.Conv2d(filters, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        factor = 2 ** (self.levels - 1)
        if x.dim() != 4 or x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"UNet expects (B, C, H, W) with H, W divisible by {factor}, got {tuple(x.shape)}")
        skips = [self.inc(x)]
        for block in self.down:
            skips.append(block(nn.functional.max_pool2d(skips[-1], 2)))
        h = skips.pop()
        for block in self.up:
            skip = skips.pop()
            h = nn.functional.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([skip, h], dim=1))
        return self.outc(h)


class FieldNet(nn.Module):
    """Adapts an image network to scalar fields: (B, H, W) -> (B, 1, H, W) -> net -> (B, H, W).

    With ``preserve_mean`` the output is shifted to the spatial mean of the input, x <- x - mean(x) + mean(y*),
    for physics that conserve the mean (heat: diffusion keeps it; SIP paper's heat setup).
    """

    def __init__(self, net: nn.Module, preserve_mean: bool = False):
        super().__init__()
        self.net = net
        self.preserve_mean = preserve_mean

    def forward(self, y: Tensor) -> Tensor:
        x = self.net(y.unsqueeze(1)).squeeze(1)
        if self.preserve_mean:
            x = x - x.mean(dim=(-2, -1), keepdim=True) + y.mean(dim=(-2, -1), keepdim=True)
        return x
