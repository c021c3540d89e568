"""Problems whose unknown x is a scalar field on a square grid, with a U-net as the default network."""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch import nn

from .base import Problem, ProblemConfig
from .networks import FieldNet, UNet


@dataclasses.dataclass
class FieldConfig(ProblemConfig):
    """Grid and network settings shared by field problems: resolution^2 cells of size dx, a U-net of
    ``unet_levels`` levels x ``unet_filters`` filters (with batch norm unless ``unet_batch_norm`` is False: HIG's
    per-example Jacobians need a network without batch statistics), and the size of the held-out set."""
    resolution: int = 64
    dx: float = 1.0
    unet_levels: int = 4
    unet_filters: int = 16
    unet_batch_norm: bool = True


class FieldProblem(Problem):
    """x has shape (resolution, resolution); the default network is a U-net on (B, 1, H, W) (SIP paper's 4 levels x
    16 filters, about 38k weights); with ``preserve_mean`` its output is shifted to the mean of its input."""

    preserve_mean: ClassVar[bool] = False

    @property
    def x_shape(self) -> tuple[int, ...]:
        n = self.config.resolution
        return (n, n)

    def default_network(self) -> nn.Module:
        c = self.config
        unet = UNet(1, 1, c.unet_levels, c.unet_filters, batch_norm=c.unet_batch_norm)
        return FieldNet(unet, preserve_mean=self.preserve_mean).to(self.device, self.dtype)
