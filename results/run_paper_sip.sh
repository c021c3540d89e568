#!/usr/bin/env bash
# Issue 19 deliverable 3: the SIP paper's long runs on the CPU, through the executor: poisson to 5,000 iterations
# and heat to 10,000 (adam, sgd, sip; 3 seeds; the standard preset's batch 32 and evaluations) into
# results/paper-cpu/poisson and results/paper-cpu/heat. Two local workers, one torch thread each (a run's numbers
# depend on its thread count: keep one thread per worker when resuming). Recorded on this machine (wall_time_s in
# the run files): a poisson run 19-69 minutes on one core; a heat run 0.23-0.26 s per iteration with the machine to
# itself (38-43 minutes), up to 0.74 s with other work beside it (about 5 hours for the 9 heat runs on 2 cores, over
# several sessions). The command resumes (runs save their state as they go, and `kill` saves it at once): run it
# again after an interruption and only unfinished runs train, from where they stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
physopt compare poisson --preset standard --iterations 5000 --optimizers adam,sgd,sip --seeds 0,1,2 \
    --executor local:2 --device cpu --out results/paper-cpu/poisson "$@"
physopt compare heat --preset standard --iterations 10000 --optimizers adam,sgd,sip --seeds 0,1,2 \
    --executor local:2 --threads 1 --device cpu --out results/paper-cpu/heat "$@"
physopt report results
