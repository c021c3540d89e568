#!/usr/bin/env bash
# Regenerates the derivative-engine benchmarks in results/ (issue 5): ZCS vs FuncLoop vs DataVect (one DeepONet
# training step over M, N, P around the acceptance point M=20, N=1000, P=3) and n-TangentProp vs nested autograd
# (n = 1..9, width 64, depth 3, batch 256, float32). About 10 minutes on a 2-core CPU; run nothing else meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
physopt zcs-bench --ms 5,20,40 --ns 250,1000,2000 --ps 1,3,4 --center 20,1000,3 --repeats 3 --device cpu \
    --out results/zcs
physopt tangentprop-bench --orders 1-9 --repeats 5 --device cpu --out results/tangentprop
physopt report results
