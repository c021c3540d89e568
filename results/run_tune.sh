#!/usr/bin/env bash
# Learning rates of the gradient baselines where the papers give none (poisson-hig, hig-toy, SGD on navier-stokes):
# short runs from the same weights and data per candidate, scored on a validation seed; records
# results/tune/PROBLEM_OPTIMIZER.json. The rates picked here are the ones in the problems' hyperparameter tables.
# About 5 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
for p in poisson-hig hig-toy; do
    physopt tune $p --optimizer sgd --lrs 1e-4,1e-3,1e-2,1e-1,1,10 --iterations 500 --quiet
    physopt tune $p --optimizer adagrad --lrs 1e-3,1e-2,1e-1,1,10 --iterations 500 --quiet
    physopt tune $p --optimizer adadelta --lrs 0.1,1,10,100,1000 --iterations 500 --quiet
    physopt tune $p --optimizer rmsprop --lrs 1e-5,1e-4,1e-3,1e-2,1e-1 --iterations 500 --quiet
done
physopt tune navier-stokes --optimizer sgd --lrs 1e-5,1e-4,1e-3,1e-2,1e-1 --iterations 30 --quiet
