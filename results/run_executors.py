"""Issue 19 acceptance: `physopt bench --preset quick` (or --preset P) with --executor local:2 against local:1.

Times each command end to end (process start to exit) on the same machine, the cases interleaved over --repeats
rounds (median reported), and compares every
run's final metrics and curve: local:2 must equal local:1 --threads 1 bitwise (a CPU run's numbers depend on its
torch thread count, not on the executor). Writes results/executors/<PRESET>-seeds<SEEDS>[-<PROBLEMS>].{json,txt}.
Run nothing else meanwhile. The commands behind the committed files (about 25 minutes in all on 2 cores):

    python results/run_executors.py --seeds 0
    python results/run_executors.py --seeds 0,1,2
    python results/run_executors.py --preset standard --problems exp,rotated-sine,hig-toy --repeats 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from physopt.bench.storage import write_benchmark

CASES = [("local:1", []), ("local:1 --threads 1", ["--threads", "1"]), ("local:2", [])]


def finals(out: Path) -> dict[str, object]:
    runs = {}
    for path in sorted(out.rglob("runs/*.json")):
        result = json.loads(path.read_text())["result"]
        runs[f"{path.parent.parent.name}/{result['optimizer']}/seed{result['seed']}"] = [
            result["final"], [(c["iteration"], c["loss"], c["x_error"]) for c in result["curve"]]]
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default=None)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--repeats", type=int, default=3, help="times each case runs (interleaved); median reported")
    args = parser.parse_args()
    times: dict[str, list[float]] = {label: [] for label, _ in CASES}
    results, commands = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):                  # the cases interleaved, so drift hits all alike
            for label, extra in CASES:
                out = Path(tmp) / f"{label.replace(' ', '_').replace(':', '')}-{repeat}"
                argv = ["physopt", "bench", "--preset", args.preset, "--device", "cpu", "--seeds", args.seeds, "--quiet",
                        "--executor", label.split()[0], *extra, "--out", str(out)]
                if args.problems:
                    argv += ["--problems", args.problems]
                start = time.perf_counter()
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
                times[label].append(time.perf_counter() - start)
                run = finals(out)
                if results.setdefault(label, run) != run:
                    sys.exit(f"{label}: repeat {repeat} gave other numbers than repeat 0")
                commands[label] = " ".join(argv[:-2])
    rows = [{"executor": label, "wall_s": statistics.median(times[label]), "wall_s_all": times[label],
             "runs": len(results[label]), "command": commands[label]} for label, _ in CASES]
    base = rows[0]["wall_s"]
    for row in rows:
        row["speedup_vs_local1"] = base / row["wall_s"]
    same = results["local:2"] == results["local:1 --threads 1"]
    differ = sorted(k for k in results["local:2"] if results["local:2"][k] != results["local:1"].get(k))
    lines = [f"{'executor':<22} {'runs':>5} {'median wall [s]':>16} {'all [s]':>20} {'local:1 / this':>15}", "-" * 82]
    lines += [f"{r['executor']:<22} {r['runs']:>5} {r['wall_s']:>16.1f} "
              f"{' '.join(f'{t:.1f}' for t in r['wall_s_all']):>20} {r['speedup_vs_local1']:>14.2f}x" for r in rows]
    lines += ["", f"local:2 equals local:1 --threads 1 bitwise (final metrics and curves of every run): {same}",
              f"runs whose numbers differ between local:2 and local:1 (2 threads): {len(differ)} of "
              f"{len(results['local:2'])} ({', '.join(differ) or 'none'})"]
    text = "\n".join(lines)
    print(text)
    command = "python results/run_executors.py " + " ".join(sys.argv[1:])
    name = f"{args.preset}-seeds{args.seeds.replace(',', '')}" + (f"-{args.problems.replace(',', '-')}" if args.problems else "")
    write_benchmark(Path(__file__).parent / "executors", name, command.strip(), torch.device("cpu"), text,
                    {"rows": rows, "bitwise_equal_to_local1_threads1": same, "differ_from_local1": differ})
    if not same:
        sys.exit("local:2 differs from local:1 --threads 1")


if __name__ == "__main__":
    main()
