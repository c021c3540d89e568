"""Presets: every problem has quick, standard and paper."""


def test_every_problem_has_the_three_presets():
    from problems import list_problems
    from problems.presets import PRESET_NAMES, PRESETS
    assert set(PRESETS) == set(list_problems())
    assert all(set(table) == set(PRESET_NAMES) for table in PRESETS.values())
