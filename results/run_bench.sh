#!/usr/bin/env bash
# Issue 6: the speed table (minutes) and the canonical benchmark: every problem at the standard preset with its
# canonical optimizers, 3 seeds each, into results/<problem>/ and results/README.md (about 3 hours on 2 CPU cores;
# it resumes: re-run the same command after an interruption and only missing runs train). Run nothing else
# meanwhile, not even niced: torch's threads on 2 busy cores slow each other down many times over.
# The baselines' learning rates that the papers do not give come from results/run_tune.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
physopt speed --preset standard --repeats 10 --device cpu --out results/speed
physopt bench --preset standard --device cpu --out results
# the toy problem is small enough for the HIG paper's full length on the CPU (results/paper-cpu/hig-toy, ~4 minutes)
physopt bench --preset paper --device cpu --out results --problems hig-toy
