"""physopt.validation: one checker, torch.optim's message style plus the rule that was broken."""
import math

import pytest
import torch

from physopt.validation import check_choice, check_integer, check_number


@pytest.mark.parametrize("value", [1e-3, 1, torch.tensor(0.5), torch.tensor(2)])
def test_numbers_and_scalar_tensors_in_range_pass_as_floats(value):
    got = check_number("lr", value, low=0, low_inclusive=False)
    assert isinstance(got, float) and got == pytest.approx(float(value))


@pytest.mark.parametrize("value, rule", [
    (0.0, "> 0"), (-1, "> 0"), (math.nan, "> 0"), (math.inf, "> 0"), ("0.1", "> 0"), (True, "> 0"),
    (None, "> 0"), (torch.ones(2), "> 0"),
])
def test_bad_numbers_are_named_with_the_rule(value, rule):
    with pytest.raises(ValueError, match=f"^Invalid lr: .*; it must be a finite number {rule}$"):
        check_number("lr", value, low=0, low_inclusive=False)


def test_bounds_are_inclusive_or_not_as_asked():
    assert check_number("truncation", 0, low=0, high=1) == 0.0
    with pytest.raises(ValueError, match="must be a finite number >= 0 and < 1"):
        check_number("truncation", 1.0, low=0, high=1)
    assert check_number("p", 1.0, low=0, high=1, high_inclusive=True) == 1.0
    assert check_number("max_step", None, low=0, optional=True) is None
    with pytest.raises(ValueError, match="or None"):
        check_number("max_step", -1, low=0, optional=True)


def test_integers():
    assert check_integer("chunk_size", 4, low=1) == 4 and check_integer("chunk_size", 4.0, low=1) == 4
    assert check_integer("chunk_size", None, low=1, optional=True) is None
    for bad in (0, 2.5, True, "3"):
        with pytest.raises(ValueError, match="^Invalid chunk_size: .*; it must be an integer >= 1$"):
            check_integer("chunk_size", bad, low=1)


def test_choices_list_what_is_allowed():
    assert check_choice("route", "svd", ("auto", "svd")) == "svd"
    with pytest.raises(ValueError, match="^Invalid route: 'qr'; choose one of 'auto', 'svd'$"):
        check_choice("route", "qr", ("auto", "svd"))
