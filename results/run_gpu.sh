#!/usr/bin/env bash
# The CUDA results (issue 6 deliverable 7, and the CUDA runs of issues 3-5). Needs a CUDA device; run nothing else
# on the machine meanwhile. Three parts:
#   bash results/run_gpu.sh timings   # GPU tests, PDE-control inference, HIG update timing, Navier-Stokes step, the
#                                     # speed table at the paper's sizes, ZCS -> results/cuda/ (~6 min on one H200)
#   bash results/run_gpu.sh long      # Navier-Stokes network vs iterative solver (200 SIP iterations, ~2.5 min on
#                                     # an H200), n-TangentProp to order 9 -> results/cuda/
#   bash results/run_gpu.sh paper     # the paper preset of the problems that fit -> results/paper-cuda/<problem>
# All resume: finished benchmark runs are skipped when the same command is run again (made by this physopt
# version; KEEP_STALE=1 keeps those of other versions too).
set -uo pipefail
cd "$(dirname "$0")/.."
part=${1:?usage: run_gpu.sh timings|long|paper}
mkdir -p results/cuda
if [ "$part" = timings ]; then
    python -m pytest -m gpu -n 0 -q -p no:cacheprovider 2>&1 | tee results/cuda/pytest-gpu.txt
    physopt speed --preset paper --repeats 3 --in-process --device cuda --out results/cuda/speed
    physopt hig-timing --setups oscillators,quantum-dipole --routes factored,gram,svd --dtypes float32,float64 \
        --repeats 3 --device cuda --out results/cuda/hig-timing-small
    physopt ns-step-bench --batch 64 --resolution 64 --repeats 5 --device cuda --out results/cuda/navier-stokes
    physopt zcs-bench --ms 5,20,40 --ns 250,1000,2000 --ps 1,3,4 --center 20,1000,3 --repeats 3 --in-process \
        --device cuda --out results/cuda/zcs
    physopt hig-timing --setups poisson-hig --routes factored,gram,svd --dtypes float32,float64 --repeats 1 \
        --device cuda --out results/cuda/hig-timing-poisson
    # PDE-control Table 1: the committed CPU-trained models, inference timed on the GPU (issue 21)
    mkdir -p results/cuda/pde-control && cp -r results/pde-control/seed0 results/pde-control/seed1 \
        results/pde-control/seed2 results/cuda/pde-control/
    physopt pde-control --plan cpu --seeds 0,1,2 --threads 8 --timing-device cuda --no-op-count \
        --out results/cuda/pde-control --quiet
    rm -r results/cuda/pde-control/seed0 results/cuda/pde-control/seed1 results/cuda/pde-control/seed2 \
        results/cuda/pde-control/fig4.png  # the CPU-made figure again
    # the same with every timed call replayed from a CUDA graph (no kernel-launch cost on either side)
    mkdir -p results/cuda/pde-control-graphs && cp -r results/pde-control/seed0 results/pde-control/seed1 \
        results/pde-control/seed2 results/cuda/pde-control-graphs/
    physopt pde-control --plan cpu --seeds 0,1,2 --threads 8 --timing-device cuda --cuda-graphs --no-op-count \
        --out results/cuda/pde-control-graphs --quiet
    rm -r results/cuda/pde-control-graphs/seed0 results/cuda/pde-control-graphs/seed1 \
        results/cuda/pde-control-graphs/seed2 results/cuda/pde-control-graphs/fig4.png
elif [ "$part" = long ]; then
    physopt ns-inference --train-iterations 200 --batch 64 --device cuda --out results/cuda/navier-stokes
    physopt tangentprop-bench --orders 1-9 --repeats 5 --device cuda --out results/cuda/tangentprop
elif [ "$part" = paper ]; then
    physopt bench --preset paper --device cuda --out results --problems "${PROBLEMS:-poisson,heat,hig-toy}" \
        ${KEEP_STALE:+--keep-stale}
else
    echo "unknown part '$part' (timings | long | paper)" >&2; exit 2
fi
