"""DeepONet (Lu et al. 2021) in the Cartesian-product form of the ZCS paper: u_ij = <b(p_i), t(x_j)> + bias."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..networks import mlp


class DeepONet(nn.Module):
    """Branch MLP on the function features p (M, Q), trunk MLP on the coordinates x (N, d), same output width.

    ``forward(p, x)`` returns the (M, N) field u_ij = sum_k b_ik t_jk + bias; ``pairwise(P, X)`` returns the (K,)
    values u_k = <b(P_k), t(X_k)> + bias for K matched pairs (the data-vectorised baseline). The network is
    pointwise in x, as ZCS requires.
    """

    def __init__(self, branch_sizes: Sequence[int], trunk_sizes: Sequence[int], activation: str = "tanh"):
        super().__init__()
        if branch_sizes[-1] != trunk_sizes[-1]:
            raise ValueError(f"branch and trunk must end in the same width, got {branch_sizes[-1]} and "
                             f"{trunk_sizes[-1]}")
        self.branch = mlp(branch_sizes, activation)
        self.trunk = mlp(trunk_sizes, activation)
        self.bias = nn.Parameter(torch.zeros(()))

    def _check(self, p: Tensor, x: Tensor) -> None:
        if p.dim() != 2 or x.dim() != 2:
            raise ValueError(f"DeepONet expects p (M, features) and x (N, d), got {tuple(p.shape)} and "
                             f"{tuple(x.shape)}")

    def forward(self, p: Tensor, x: Tensor) -> Tensor:
        self._check(p, x)
        return self.branch(p) @ self.trunk(x).T + self.bias

    def pairwise(self, p: Tensor, x: Tensor) -> Tensor:
        self._check(p, x)
        if p.shape[0] != x.shape[0]:
            raise ValueError(f"pairwise needs as many feature rows as points, got {p.shape[0]} and {x.shape[0]}")
        return (self.branch(p) * self.trunk(x)).sum(-1) + self.bias


def deeponet(features: int, dim: int, width: int = 128, depth: int = 3, activation: str = "tanh") -> DeepONet:
    """The ZCS paper's DeepONet: branch [features, width x depth], trunk [dim, width x depth] (128, 3 layers)."""
    if width < 1 or depth < 1:
        raise ValueError(f"deeponet needs width >= 1 and depth >= 1, got width={width}, depth={depth}")
    return DeepONet([features] + [width] * depth, [dim] + [width] * depth, activation)
