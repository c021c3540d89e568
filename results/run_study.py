"""Issue 19 acceptance for `physopt tune --space`: Adam's learning-rate search as an Optuna study of 12 trials.

- heat, median pruner (the acceptance's command, at 100 iterations and the standard batch): how many trials the
  pruner stops early, with one process and with --executor local:2;
- exp, no pruner (every trial trains its full 3000 iterations, so both studies do the same amount of work): one
  process against --executor local:2, timed end to end in the same run.

Writes each study's tuning file to results/tune-optuna/<case>/local1 and local2 and the comparison to
results/tune-optuna/<case>.{json,txt}. About 8 minutes on 2 cores; run nothing else meanwhile.

    python results/run_study.py
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from physopt.bench.storage import write_benchmark

OUT = Path(__file__).parent / "tune-optuna"
CASES = {"heat-median": ["heat", "--iterations", "100", "--batch-size", "32", "--pruner", "median"],
         "exp-no-pruner": ["exp", "--iterations", "3000", "--pruner", "none"]}


def main() -> None:
    for case, (problem, *rest) in CASES.items():
        measure(case, problem, ["physopt", "tune", problem, "--optimizer", "adam", "--space", "adam.lr=log:1e-6:1e-1",
                                "--trials", "12", *rest, "--quiet", "--force"])


def measure(case: str, problem: str, tune: list[str]) -> None:
    rows = []
    for label, extra in (("local:1", []), ("local:2", ["--executor", "local:2"])):
        out = OUT / case / label.replace(":", "")
        argv = [*tune, *extra, "--out", str(out)]
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        result = json.loads((out / f"{problem}_adam.json").read_text())
        states = [t["state"] for t in result["trials"]]
        rows.append({"executor": label, "wall_s": seconds, "trials": len(states), "pruned": states.count("pruned"),
                     "complete": states.count("complete"), "best": result["best"], "command": " ".join(argv)})
    for row in rows:
        row["speedup_vs_local1"] = rows[0]["wall_s"] / row["wall_s"]
    lines = [f"{'executor':<9} {'trials':>6} {'pruned':>6} {'wall [s]':>9} {'local:1 / this':>15}  best lr", "-" * 70]
    lines += [f"{r['executor']:<9} {r['trials']:>6} {r['pruned']:>6} {r['wall_s']:>9.1f} {r['speedup_vs_local1']:>14.2f}x"
              f"  {r['best']['settings']['lr']:.3g} (validation {r['best']['value']:.4g})" for r in rows]
    text = "\n".join(lines)
    print(text)
    write_benchmark(OUT, case, "python results/run_study.py", torch.device("cpu"), text, {"rows": rows})


if __name__ == "__main__":
    sys.exit(main())
