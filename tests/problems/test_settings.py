"""Benchmark settings: every problem declares its optimizers, their hyperparameters and sources, and three presets."""


def test_every_problem_has_the_three_presets():
    from problems import PRESET_NAMES, PROBLEMS
    for name, cls in PROBLEMS.items():
        assert set(cls.benchmark.presets) == set(PRESET_NAMES), name


def test_every_problem_declares_its_optimizers_batch_size_held_out_size_and_sources():
    from problems import PROBLEMS
    for name, cls in PROBLEMS.items():
        s = cls.benchmark
        assert s.optimizers and s.batch_size >= 1 and s.held_out_size >= 1 and s.source, name
        for opt, o in s.per_optimizer.items():
            assert o.source, f"{name}: {opt} says where its values come from"


def test_hyperparameters_may_depend_on_the_config():
    from problems import get_problem
    p = get_problem("rotated-sine", xi=4.0)
    assert p.benchmark.hyperparameters("sgd", p.config) == {"lr": 1e-2 / 16}      # authors' code: 1e-2 / xi^2
    assert p.benchmark.hyperparameters("hig", p.config) == {}                     # not declared: the bench's fallback


def test_bad_settings_are_refused_and_unknown_presets_named():
    import pytest
    from problems import BenchmarkSettings, Preset, get_preset
    with pytest.raises(ValueError, match="batch_size"):
        BenchmarkSettings(batch_size=0)
    with pytest.raises(ValueError, match="preset name"):
        BenchmarkSettings(presets={"long": Preset(iterations=1)})
    with pytest.raises(ValueError, match="iterations or time_budget"):
        Preset()
    with pytest.raises(KeyError, match="Available: paper, quick, standard"):
        get_preset("poisson", "fast")
