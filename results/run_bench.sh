#!/usr/bin/env bash
# Issue 6: the speed table (minutes) and the canonical benchmark at the standard preset (hours on 2 CPU cores; it
# resumes: re-run the same command after an interruption and only missing runs train). Run nothing else meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
physopt speed --preset standard --repeats 3 --device cpu --out results/speed
physopt bench --preset standard --device cpu --out results
