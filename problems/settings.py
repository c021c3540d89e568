"""A problem's benchmark settings: one declared object per problem, apart from its physics config.

What the bench needs to compare optimizers on a problem, and nothing else: the canonical optimizer set, each
optimizer's hyperparameters and batch size (with the paper or the run each value comes from), the presets (how long
and how large a comparison is: ``quick`` for the tests, ``standard`` for a 2-core CPU, ``paper`` for the paper's
length) and the size of the held-out set every run is evaluated on. The bench reads only this object, so changing a
benchmark setting is one line in the problem's module.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from physopt import lookup

PRESET_NAMES = ("quick", "standard", "paper")


@dataclasses.dataclass(frozen=True)
class Preset:
    """How long and how large one comparison is.

    Attributes:
        iterations / time_budget: training length per run (either or both; the first reached stops the run).
        config: problem config overrides (e.g. a smaller grid for ``quick``).
        batch_size: one batch size for every optimizer, or None for each optimizer's own.
        seeds: seeds per optimizer (same initial weights and data per seed across optimizers).
        evaluations: held-out evaluations per run (curve points).
    """
    iterations: int | None = None
    time_budget: float | None = None
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    batch_size: int | None = None
    seeds: tuple[int, ...] = (0, 1, 2)
    evaluations: int = 30

    def __post_init__(self):
        if self.iterations is None and self.time_budget is None:
            raise ValueError("a preset needs iterations or time_budget")


def quick(iterations: int = 3, batch_size: int = 4, **config: Any) -> Preset:
    """The ``quick`` preset: a few iterations on a small batch, one seed, one evaluation (seconds; the tests)."""
    return Preset(iterations=iterations, batch_size=batch_size, config=config, seeds=(0,), evaluations=1)


#: the presets of a problem that declares none: a smoke test, and 1000 iterations over 3 seeds (the paper preset
#: needs the paper, so there is none)
DERIVED_PRESETS: dict[str, Preset] = {"quick": quick(), "standard": Preset(iterations=1000, seeds=(0, 1, 2))}

#: a hyperparameter's value, or a function of the problem's config giving it (e.g. a rate scaled by conditioning)
Value = Any | Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class OptimizerSettings:
    """One optimizer's settings on one problem: hyperparameters (values or functions of the config), its batch size
    (None: the problem's), and where they come from."""
    hyperparameters: Mapping[str, Value] = dataclasses.field(default_factory=dict)
    batch_size: int | None = None
    source: str = ""


def opt(source: str = "", batch_size: int | None = None, **hyperparameters: Value) -> OptimizerSettings:
    """``opt("HIG paper, Table 2", batch_size=128, lr=1.0, truncation=1e-6)``."""
    return OptimizerSettings(hyperparameters, batch_size, source)


@dataclasses.dataclass(frozen=True)
class BenchmarkSettings:
    """A problem's benchmark settings.

    Attributes:
        optimizers: the canonical set a comparison runs by default.
        batch_size: batch size for optimizers that declare none (the paper's).
        per_optimizer: :class:`OptimizerSettings` per optimizer name; optimizers not listed use the bench's
            fallback hyperparameters.
        presets: ``quick``, ``standard``, ``paper``.
        held_out_size: examples in the fixed held-out set.
        source: where the batch size and held-out size come from.
    """
    optimizers: tuple[str, ...] = ("adam", "sgd", "sip")
    batch_size: int = 32
    per_optimizer: Mapping[str, OptimizerSettings] = dataclasses.field(default_factory=dict)
    presets: Mapping[str, Preset] = dataclasses.field(default_factory=dict)
    held_out_size: int = 256
    source: str = ""

    def __post_init__(self):
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if not (isinstance(self.held_out_size, int) and self.held_out_size >= 1):
            raise ValueError(f"held_out_size must be an integer >= 1, got {self.held_out_size!r}")
        unknown = sorted(set(self.presets) - set(PRESET_NAMES))
        if unknown:
            raise ValueError(f"unknown preset name(s) {unknown}; presets are {PRESET_NAMES}")

    def hyperparameters(self, optimizer: str, config: Any) -> dict[str, Any]:
        """The declared hyperparameters of ``optimizer`` for this ``config`` (functions evaluated), with its
        ``batch_size`` where it declares one; {} for an optimizer without settings."""
        s = self.per_optimizer.get(optimizer)
        if s is None:
            return {}
        hp = {k: v(config) if callable(v) else v for k, v in s.hyperparameters.items()}
        if s.batch_size is not None:
            hp["batch_size"] = s.batch_size
        return hp

    def preset(self, name: str, problem: str = "this problem") -> Preset:
        """The preset ``name``; unknown names get an error that lists the known ones. A problem that declares no
        presets (a user's, say) gets :data:`DERIVED_PRESETS` (:meth:`derived` says so)."""
        return lookup(f"preset of '{problem}'", name, self.presets or DERIVED_PRESETS)

    def derived(self) -> bool:
        """Whether the presets are :data:`DERIVED_PRESETS` because the problem declares none."""
        return not self.presets
