#!/usr/bin/env bash
# Learning rates of the gradient baselines where the papers give none (poisson-hig, hig-toy,
# quantum-dipole, SGD on navier-stokes):
# short runs from the same weights and data per candidate, scored on a validation seed; records
# results/tune/PROBLEM_OPTIMIZER.json. The rates picked here are the ones in the problems' hyperparameter tables.
# About 15 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
for p in poisson-hig hig-toy; do
    physopt tune $p --optimizer sgd --lrs 1e-4,1e-3,1e-2,1e-1,1,10 --iterations 500 --out results/tune --quiet
    physopt tune $p --optimizer adagrad --lrs 1e-3,1e-2,1e-1,1,10 --iterations 500 --out results/tune --quiet
    physopt tune $p --optimizer adadelta --lrs 0.1,1,10,100,1000 --iterations 500 --out results/tune --quiet
    physopt tune $p --optimizer rmsprop --lrs 1e-5,1e-4,1e-3,1e-2,1e-1 --iterations 500 --out results/tune --quiet
done
physopt tune navier-stokes --optimizer sgd --lrs 1e-5,1e-4,1e-3,1e-2,1e-1 --iterations 30 --out results/tune --quiet
# quantum-dipole compares at equal wall-clock time, so its candidates train for equal time too
physopt tune quantum-dipole --optimizer sgd --lrs 1,3,10,30 --time-budget 30 --out results/tune --quiet
physopt tune quantum-dipole --optimizer adagrad --lrs 0.01,0.1,1 --time-budget 30 --out results/tune --quiet
physopt tune quantum-dipole --optimizer adadelta --lrs 1,10,100 --time-budget 30 --out results/tune --quiet
physopt tune quantum-dipole --optimizer rmsprop --lrs 1e-3,3e-3,1e-2,3e-2,1e-1 --time-budget 30 --out results/tune --quiet
