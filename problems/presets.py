"""Named sizes of a comparison per problem: ``quick`` (seconds, used by the tests), ``standard`` (minutes on a 2-core
CPU: what results/ shows) and ``paper`` (the paper's size and length, for a GPU).

``physopt compare PROBLEM --preset NAME`` and ``physopt bench --preset NAME`` take their settings from here; flags
given explicitly override them.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from physopt import lookup

PRESET_NAMES = ("quick", "standard", "paper")


@dataclasses.dataclass(frozen=True)
class Preset:
    """How long and how large one comparison is.

    Attributes:
        iterations / time_budget: training length per run (either or both; the first reached stops the run).
        config: problem config overrides (e.g. a smaller grid for ``quick``).
        batch_size: one batch size for every optimizer, or None for the paper's per optimizer.
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


def _quick(iterations: int = 3, batch_size: int = 4, **config: Any) -> Preset:
    return Preset(iterations=iterations, batch_size=batch_size, config=config, seeds=(0,), evaluations=1)


PRESETS: dict[str, dict[str, Preset]] = {
    # SIP problems: the settings of the issue-2 runs (standard) and the papers' lengths (paper)
    "poisson": {"quick": _quick(resolution=16), "standard": Preset(iterations=300, batch_size=32),
                "paper": Preset(iterations=10_000)},
    "heat": {"quick": _quick(resolution=16, max_half_size=3.0), "standard": Preset(iterations=300, batch_size=32),
             "paper": Preset(iterations=10_000)},
    "rotated-sine": {"quick": _quick(iterations=5, batch_size=16),
                     "standard": Preset(iterations=3000, config={"xi": 32.0, "phi": 45.0}),
                     "paper": Preset(time_budget=600, config={"xi": 32.0, "phi": 45.0})},
    "exp": {"quick": _quick(iterations=5, batch_size=16), "standard": Preset(iterations=3000),
            "paper": Preset(iterations=100_000)},
    "navier-stokes": {"quick": _quick(iterations=2, batch_size=2, resolution=16, dx=8.0, unet_levels=3),
                      "standard": Preset(iterations=200), "paper": Preset(iterations=20_000)},
    # HIG problems: equal wall-clock time per optimizer, the paper's batch sizes
    "oscillators": {"quick": _quick(), "standard": Preset(time_budget=60), "paper": Preset(time_budget=600)},
    "quantum-dipole": {"quick": _quick(steps=16), "standard": Preset(time_budget=60),
                       "paper": Preset(time_budget=600)},
    "poisson-hig": {"quick": _quick(iterations=2), "standard": Preset(time_budget=60),
                    "paper": Preset(time_budget=600)},
    "hig-toy": {"quick": _quick(iterations=5, batch_size=16), "standard": Preset(iterations=500),
                "paper": Preset(iterations=10_000)},
}


def get_preset(problem: str, name: str) -> Preset:
    """The preset ``name`` of ``problem``; unknown names get an error that lists the known ones."""
    table = lookup("preset table for problem", problem, PRESETS)
    return lookup(f"preset of '{problem}'", name, table)
