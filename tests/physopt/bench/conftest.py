"""Fixtures of the bench tests: the exp problem (cheap to train) and a fixed held-out sample of it."""
import pytest
import torch

from problems import get_problem


@pytest.fixture(scope="module")
def exp():
    return get_problem("exp")


@pytest.fixture(scope="module")
def held_out(exp):
    return exp.sample(32, torch.Generator().manual_seed(1))
