#!/usr/bin/env bash
# The acceptance experiments of the issues; writes benchmarks/results/acceptance/<profile>/.
#   equal_params: D4 vs C1 G-CNN of equal parameter count on RotMNIST, the paper's MNIST backbone
#   methods_<task>: EquiNAS_E, EquiNAS_D (uniform and D4-prior alpha), C1, C4, D4, RPP at one small
#                   budget, 3 seeds, on RotMNIST
#                   and on MNIST trained upright / tested on C2-rotated digits
#   cr: constraint relaxation vs plain training of the same D4 network on RotMNIST
#   bases: C8 and D8 G-CNNs (ambient D8, half the fields: same conv widths) with pixel vs harmonic
#          kernels on RotMNIST, small budget (cpu profile widths 2,2,4,4)
#   (cpu-medium) methods: every method of the comparison plus the grid of all 10 subgroups, at budgets
#                where the searches converge (12 epochs per fixed network, EquiNAS_E 6 generations),
#                both tasks at once (one process each); summary.json merges their rows
#   (cpu-medium) eqd: EquiNAS_D's default recipe on RotMNIST and Fashion-MNIST (+ fixed C1/D1/C4/D4),
#                one process: bash benchmarks/run_acceptance.sh cpu-medium PY 1 eqd
# Profiles: cpu (small backbone and subsets, about 1.5 h on 2 cores), cpu-medium (the same backbone
# and data at 4x the epochs, about 2 h on 2 cores) or gpu (paper backbone).
# Usage: bash benchmarks/run_acceptance.sh cpu|cpu-medium|gpu [python] [workers] [part ...]
set -euo pipefail
PROFILE=${1:-cpu}
PY=${2:-.venv/bin/python}
WORKERS=${3:-1}
shift $(( $# < 3 ? $# : 3 ))
PARTS=("${@:-equal_params methods cr}")
OUT=benchmarks/results/acceptance/$PROFILE
mkdir -p "$OUT"
if [ "$PROFILE" = cpu-medium ]; then
  MEDIUM=(--widths 4,4,8,8 --pools-after 0,1 --hidden none --lr 0.002 --train-size 4000 --val-size 1000
          --test-size 2000 --epochs 12 --eval-every 100 --device cpu --threads 1 --workers 1 --seeds 0 1 2)
  E='{"generations": 6, "population": 2, "epochs_per_generation": 2.0, "children_per_parent": 3}'
  EFAST='{"generations": 6, "population": 2, "epochs_per_generation": 2.0, "children_per_parent": 3,
          "halving": true, "space": ["paper"]}'
  # EquiNAS_D's paper recipe (every candidate to the end, then retrain): rows equinas_d-paper,
  # -fast and -prior in methods_<task>; its default recipe is the eqd part's row equinas_d
  PAPER_D='"decide_at": 0, "prior": 0, "warmup_epochs": 0, "normalize": false, "retrain": true'
  SETTINGS="{\"equinas_e\": $E, \"equinas_e@fast\": $EFAST,
    \"equinas_d@paper\": {\"arch_lr\": 0.2, \"search_epochs\": 12.0, $PAPER_D},
    \"equinas_d@prior\": {\"arch_lr\": 0.005, \"search_epochs\": 12.0, $PAPER_D, \"prior\": 2.0},
    \"equinas_d@fast\": {\"arch_lr\": 0.2, \"groups\": [\"paper\"], \"search_epochs\": 6.0, $PAPER_D}}"
  if [ "${PARTS[*]}" = eqd ]; then
    # EquiNAS_D's default recipe (issue 21), RotMNIST and a task no issue names, with fixed baselines
    "$PY" benchmarks/compare_methods.py --task rotmnist "${MEDIUM[@]}" --methods equinas_d \
      --out "$OUT/methods_rotmnist_eqd" > "$OUT/methods_rotmnist_eqd.log" 2>&1
    "$PY" benchmarks/compare_methods.py --task fashion-mnist "${MEDIUM[@]}" \
      --methods equinas_d fixed:C1 fixed:D1 fixed:C4 fixed:D4 \
      --out "$OUT/methods_fashion-mnist_eqd" > "$OUT/methods_fashion-mnist_eqd.log" 2>&1
    exit 0
  fi
  for task in rotmnist mnist-c2; do
    "$PY" benchmarks/compare_methods.py --task "$task" "${MEDIUM[@]}" --settings "$SETTINGS" \
      --methods grid equinas_g equinas_e equinas_e@fast equinas_d@paper equinas_d@fast equinas_d@prior rpp \
      --out "$OUT/methods_$task" > "$OUT/methods_$task.log" 2>&1 &
  done
  wait
  "$PY" benchmarks/merge_summaries.py "$OUT/summary.json" "$OUT"/methods_*/summary.json
  exit 0
fi
if [ "$PROFILE" = gpu ]; then
  DEVICE=cuda; SMALL_EPOCHS=2; SMALL=(--train-size 10000 --test-size 10000 --epochs $SMALL_EPOCHS)
  E='{"generations": 3, "population": 2, "epochs_per_generation": 0.5, "children_per_parent": 4}'
  PAPER=(--epochs 5 --test-size 10000)
  HALF=8,8,8,8,16,16,16,16
else
  DEVICE=cpu; SMALL_EPOCHS=3
  SMALL=(--widths 4,4,8,8 --pools-after 0,1 --hidden none --lr 0.002 --train-size 4000 --val-size 1000
         --test-size 2000 --epochs $SMALL_EPOCHS)
  E='{"generations": 2, "population": 2, "epochs_per_generation": 1.0, "children_per_parent": 3}'
  PAPER=(--epochs 1 --test-size 10000)
  HALF=2,2,4,4
fi
COMMON=(--device "$DEVICE" --workers "$WORKERS" --threads $(( WORKERS > 1 ? 1 : 2 )) --seeds 0 1 2)
PAPER_D="\"decide_at\": 0, \"prior\": 0, \"warmup_epochs\": 0, \"normalize\": false, \"retrain\": true,
  \"search_epochs\": $SMALL_EPOCHS"
SEARCH="{\"equinas_e\": $E, \"equinas_d\": {\"arch_lr\": 0.005, $PAPER_D},
  \"equinas_d@prior\": {\"arch_lr\": 0.005, $PAPER_D, \"prior\": 2.0}}"
for part in ${PARTS[*]}; do
  case $part in
    equal_params)
      "$PY" benchmarks/compare_methods.py --task rotmnist --methods fixed:C1 fixed:D4 --width-rule params \
        "${PAPER[@]}" --out "$OUT/equal_params_rotmnist" "${COMMON[@]}" ;;
    methods)
      for task in rotmnist mnist-c2; do
        "$PY" benchmarks/compare_methods.py --task "$task" "${SMALL[@]}" --settings "$SEARCH" \
          --methods equinas_e equinas_d equinas_d@prior fixed:C1 fixed:C4 fixed:D4 rpp --out "$OUT/methods_$task" "${COMMON[@]}"
      done ;;
    cr)
      "$PY" benchmarks/compare_methods.py --task rotmnist "${SMALL[@]}" --methods fixed:D4 cr \
        --out "$OUT/cr_rotmnist" "${COMMON[@]}" ;;
    bases)
      for basis in pixel harmonic; do
        "$PY" benchmarks/compare_methods.py --task rotmnist "${SMALL[@]}" --widths "$HALF" --ambient D8 \
          --kernel-basis "$basis" --methods fixed:D8 fixed:C8 --out "$OUT/bases_rotmnist_$basis" "${COMMON[@]}"
      done ;;
    *) echo "unknown part $part" >&2; exit 2 ;;
  esac
done
