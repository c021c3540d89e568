#!/usr/bin/env bash
# Issue 18 deliverable 5: the HIG paper's claims at its own budget, 600 s of training per run, 3 seeds, on the CPU,
# with the faster HIG update (expand Jacobian engine; on quantum-dipole its closed-form physics Jacobian, the
# 'supplied' engine, for HIG and GN; on oscillators the physics under torch.compile, compiled within the budget),
# into results/paper-cpu/<problem>/:
#   oscillators:    adam, adagrad (the best first-order method at 60 s), gn, hig          (~2 hours)
#                   and adam, hig with cosine-decaying rates (results/paper-cpu/oscillators-cosine, ~1 hour)
#                   and both rates tuned for 600 s on seed 3 (results/tune-600s; paper-cpu/oscillators-tuned,
#                   paper-cpu/oscillators-hig-lr8: ~2.5 hours); those rates are the defaults since: the
#                   issue's command at the defaults (paper-cpu/oscillators-defaults, ~1 hour)
#                   each at its faster torch thread count: Adam's and Adagrad's small steps make ~1.4x more
#                   steps in 600 s on one thread than on two; HIG's makes as many on one as on two (a few more on
#                   two), so HIG and GN (the same Jacobian) keep two
#                   (results/paper-cpu/oscillators-threads: speed.txt, and the same runs at the other count)
#   quantum-dipole: adam, adagrad, rmsprop, gn, hig; adagrad's and rmsprop's rates re-tuned for 600 s first
#                   (3-4 rates each around the 30 s choice, 600 s per candidate: results/tune-600s/)   (~3.7 hours)
#                   the first-order methods on one thread and HIG and GN on two, as on oscillators (an
#                   exploratory 60 s run of seed 0 at both counts pointed the same way)
#   poisson-hig:    adam, hig, and adam>hig@300s (the paper's "HIG after Adam pre-training")     (~1.5 hours)
# Equal wall-clock comparisons: run NOTHING else meanwhile (one worker, both cores). Every finished run is saved,
# so the command resumes; split it over sessions with PROBLEMS, e.g. PROBLEMS=oscillators bash results/run_paper_hig.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for problem in ${PROBLEMS:-oscillators quantum-dipole poisson-hig}; do
    case "$problem" in
    oscillators)
        physopt speed --problems oscillators --preset paper --optimizers adam,adagrad,gn,hig --threads 1,2 \
            --hparam hig.compile_physics=true --hparam gn.compile_physics=true --repeats 30 --device cpu \
            --out results/paper-cpu/oscillators-threads --quiet
        # at the paper's rates (Adam 3e-4, HIG 1: the defaults until the 600 s tuning below replaced them)
        physopt compare oscillators --preset paper --optimizers adam,adagrad,gn,hig --seeds 0,1,2 --device cpu \
            --hparam adam.threads=1 --hparam adagrad.threads=1 --hparam adam.lr=3e-4 --hparam hig.lr=1 \
            --hparam hig.compile_physics=true --hparam gn.compile_physics=true --out results/paper-cpu/oscillators
        # the check: the same runs at the other thread count (Adam and Adagrad on two, HIG on one)
        physopt compare oscillators --preset paper --optimizers adam,adagrad,hig --seeds 0,1,2 --device cpu \
            --hparam adam.lr=3e-4 --hparam hig.lr=1 --hparam hig.threads=1 --hparam hig.compile_physics=true \
            --out results/paper-cpu/oscillators-threads
        # a decaying rate for both (HIG at lr 1 plateaus at 2-3e-5 from ~80 s on in seeds 1 and 2): cosine over 600 s
        physopt compare oscillators --preset paper --optimizers adam,hig --seeds 0,1,2 --device cpu \
            --hparam adam.threads=1 --hparam adam.lr_schedule=cosine --hparam hig.lr_schedule=cosine \
            --hparam adam.lr=3e-4 --hparam hig.lr=1 --hparam hig.compile_physics=true \
            --out results/paper-cpu/oscillators-cosine
        # HIG's and Adam's rates for 600 s, tuned on seed 3 (outside the compare's seeds; lr 1 and 3e-4 are the
        # paper's; a tuning reuses the candidates its file holds, so a wider grid trains only the new ones), then
        # the 3-seed compare at both tuned rates
        physopt tune oscillators --optimizer hig --lrs 1,2,4,8,16,32 --seed 3 --time-budget 600 --device cpu \
            --hparam hig.compile_physics=true --out results/tune-600s --quiet
        physopt tune oscillators --optimizer adam --lrs 3e-4,1e-3,3e-3 --seed 3 --time-budget 600 --device cpu \
            --hparam adam.threads=1 --out results/tune-600s --quiet
        physopt compare oscillators --preset paper --optimizers adam,hig --seeds 0,1,2 --device cpu \
            --hparam-file results/tune-600s/oscillators_adam.json --hparam-file results/tune-600s/oscillators_hig.json \
            --out results/paper-cpu/oscillators-tuned    # (the files carry adam.threads=1, hig.compile_physics)
        # HIG at lr 16 diverges in every seed there: one grid step lower, lr 8, against the same Adam runs (copied:
        # the same settings, so the compare reuses them instead of training them again)
        mkdir -p results/paper-cpu/oscillators-hig-lr8/runs
        cp -n results/paper-cpu/oscillators-tuned/runs/adam_seed*.json results/paper-cpu/oscillators-hig-lr8/runs/
        physopt compare oscillators --preset paper --optimizers adam,hig --seeds 0,1,2 --device cpu \
            --hparam-file results/tune-600s/oscillators_adam.json --hparam hig.lr=8 --hparam hig.compile_physics=true \
            --out results/paper-cpu/oscillators-hig-lr8
        # Adam 1e-3 and HIG 8 are oscillators' default rates since; the issue's command as a new user types it (no
        # thread or compile settings: Adam on two threads, HIG's physics not compiled), ~64 minutes
        physopt compare oscillators --optimizers adam,hig --time-budget 600 --seeds 0,1,2 --device cpu \
            --out results/paper-cpu/oscillators-defaults ;;
    quantum-dipole)
        # (a tuning reuses the candidates its file already holds: 0.01 was added after 0.03 came out best)
        physopt tune quantum-dipole --optimizer adagrad --lrs 0.01,0.03,0.1,0.3 --time-budget 600 --device cpu \
            --hparam adagrad.threads=1 --out results/tune-600s --quiet
        physopt tune quantum-dipole --optimizer rmsprop --lrs 1e-3,3e-3,1e-2 --time-budget 600 --device cpu \
            --hparam rmsprop.threads=1 --out results/tune-600s --quiet
        physopt compare quantum-dipole --preset paper --optimizers adam,adagrad,rmsprop,gn,hig --seeds 0,1,2 \
            --device cpu --hparam adam.threads=1 --hparam-file results/tune-600s/quantum-dipole_adagrad.json \
            --hparam-file results/tune-600s/quantum-dipole_rmsprop.json --out results/paper-cpu/quantum-dipole ;;
    poisson-hig)
        physopt compare poisson-hig --preset paper --optimizers 'adam,hig,adam>hig@300s' --seeds 0,1,2 --device cpu \
            --out results/paper-cpu/poisson-hig ;;
    *) echo "unknown problem '$problem' (oscillators, quantum-dipole, poisson-hig)" >&2; exit 2 ;;
    esac
done
physopt report results
