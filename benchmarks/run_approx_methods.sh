#!/usr/bin/env bash
# lps and symmetry_breaking (issue 13, items 1-2) at the cpu-medium budget of run_acceptance.sh
# (4,4,8,8 fields, 4,000/1,000/2,000 images, 12 epochs, 3 seeds, one thread), on RotMNIST and
# MNIST->C2, one process per task, into benchmarks/results/acceptance/cpu-medium/methods_<task>_approx/.
# Resumable: rerun the same command; finished runs are skipped. Compare with the rows of
# benchmarks/results/acceptance/cpu-medium/summary.json.
# Usage: bash benchmarks/run_approx_methods.sh [python]
set -euo pipefail
PY=${1:-.venv/bin/python}
OUT=benchmarks/results/acceptance/cpu-medium
MEDIUM=(--widths 4,4,8,8 --pools-after 0,1 --hidden none --lr 0.002 --train-size 4000 --val-size 1000
        --test-size 2000 --epochs 12 --eval-every 100 --device cpu --threads 1 --workers 1 --seeds 0 1 2)
SETTINGS='{"symmetry_breaking@maps": {"layer_maps": true}}'
for task in rotmnist mnist-c2; do
  "$PY" benchmarks/compare_methods.py --task "$task" "${MEDIUM[@]}" --settings "$SETTINGS" \
    --methods lps symmetry_breaking symmetry_breaking@maps \
    --out "$OUT/methods_${task}_approx" > "$OUT/methods_${task}_approx.log" 2>&1 &
done
wait
