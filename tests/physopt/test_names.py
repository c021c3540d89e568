"""names: registry lookup by name, forgiving case and spaces; an unknown name raises UnknownNameError, which lists
the choices and suggests the closest one."""
import pytest

from physopt.names import UnknownNameError, lookup

TABLE = {"adam": 1, "sgd": 2, "sip": 3, "rmsprop": 4}


def test_a_known_name_gives_its_entry_whatever_its_case_and_surrounding_spaces():
    assert lookup("optimizer", "sip", TABLE) == 3
    assert lookup("optimizer", "  RMSProp ", TABLE) == 4


def test_an_unknown_name_suggests_the_closest_and_lists_the_choices_sorted():
    with pytest.raises(UnknownNameError) as err:
        lookup("optimizer", "Adamw", TABLE)
    assert str(err.value) == "unknown optimizer 'Adamw'. Did you mean 'adam'? Available: adam, rmsprop, sgd, sip"


def test_without_a_close_name_there_is_no_suggestion():
    with pytest.raises(UnknownNameError) as err:
        lookup("problem", "navier", {"poisson": 0, "heat": 1})
    assert str(err.value) == "unknown problem 'navier'. Available: heat, poisson"


def test_the_error_is_caught_as_key_error_or_value_error_and_its_message_is_not_quoted():
    for caught in (KeyError, ValueError):
        with pytest.raises(caught):
            lookup("route", "gramm", {"gram": 0})
    try:
        lookup("route", "gramm", {"gram": 0})
    except KeyError as err:     # KeyError's own str() would wrap the message in quotes
        assert str(err).startswith("unknown route 'gramm'.")


def test_a_name_that_is_not_a_string_is_an_unknown_name_not_a_crash():
    for name in (None, 3):
        with pytest.raises(UnknownNameError, match=f"unknown optimizer '{name}'. Available: adam, rmsprop, sgd, sip"):
            lookup("optimizer", name, TABLE)
