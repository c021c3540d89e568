#!/usr/bin/env bash
# Issue 6: the speed table (minutes) and the canonical benchmark: every problem at the standard preset with its
# canonical optimizers, 3 seeds each, into results/<problem>/ and results/README.md (about 3 hours on 2 CPU
# cores, with the paper-length hig-toy runs at the end;
# it resumes: re-run the same command after an interruption and only missing runs train). Run nothing else
# meanwhile, not even niced: torch's threads on 2 busy cores slow each other down many times over.
# The baselines' learning rates that the papers do not give come from results/run_tune.sh.
# Finished runs made by another physopt version (every run committed before versions were recorded, too) are
# retrained; KEEP_STALE=1 bash results/run_bench.sh keeps them (the report lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
physopt speed --preset standard --repeats 10 --device cpu --out results/speed
physopt bench --preset standard --device cpu --out results ${KEEP_STALE:+--keep-stale}
# the toy problem is small enough for the HIG paper's full length on the CPU (results/paper-cpu/hig-toy, ~4 minutes)
physopt bench --preset paper --device cpu --out results --problems hig-toy ${KEEP_STALE:+--keep-stale}
# the HIG paper's 600 s budget on oscillators, quantum-dipole and poisson-hig (results/paper-cpu/) is
# results/run_paper_hig.sh: more optimizers, each at its faster thread count
physopt report results
