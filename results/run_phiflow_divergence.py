"""Issue 20: why the PhiFlow and the plain-torch heat curves (results/phiflow/) differ although the physics agree.

Control: the same plain-torch runs at 1 torch thread instead of 2 (``heat-torch-1thread``, made by
results/run_phiflow.sh) differ from the 2-thread runs only in the order of floating-point reductions. Per optimizer,
seed and held-out evaluation this prints the relative difference |a / b - 1| of the held-out loss for
PhiFlow vs torch and for torch at 1 vs 2 threads. Where the two columns are of one size, the PhiFlow curves differ
from torch's by rounding that training amplifies, nothing else. Writes results/phiflow/divergence.md:

    python results/run_phiflow_divergence.py
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "phiflow"
RUNS = {"torch": "heat-torch", "phiflow": "phiflow-heat", "torch-1-thread": "heat-torch-1thread"}
ITERATIONS = (10, 20, 50, 100, 200)


def losses(directory: str) -> dict[tuple[str, str, int], float]:
    with open(ROOT / directory / "curves.csv") as f:
        return {(r["optimizer"], r["seed"], int(r["iteration"])): float(r["loss"]) for r in csv.DictReader(f)}


def table() -> str:
    curves = {name: losses(directory) for name, directory in RUNS.items()}
    keys = sorted({(o, s) for o, s, _ in curves["torch"]})
    lines = ["# PhiFlow vs plain-torch heat: where the curves part", "",
             "Command: `python results/run_phiflow_divergence.py` (reads the curves.csv of results/phiflow/heat-torch, "
             "phiflow-heat and heat-torch-1thread; see results/run_phiflow.sh)", "",
             "Relative difference of the held-out loss, |a / b - 1|, PhiFlow vs torch (both 2 threads) and, as a "
             "control, torch at 1 vs 2 threads (same code and physics, other reduction order).", "",
             "| optimizer | seed | " + " | ".join(f"it {i}: phiflow / control" for i in ITERATIONS) + " |",
             "|---|---|" + "---|" * len(ITERATIONS)]
    for optimizer, seed in keys:
        cells = []
        for i in ITERATIONS:
            base = curves["torch"][optimizer, seed, i]
            cells.append(" / ".join(f"{abs(curves[n][optimizer, seed, i] / base - 1):.0e}"
                                    for n in ("phiflow", "torch-1-thread")))
        lines.append(f"| {optimizer} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    text = table()
    (ROOT / "divergence.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
