#!/usr/bin/env bash
# Levers for the replication experiment: the runs RESULTS.md reports after the reference run.
# Each run reuses the reference run's corpus and base-model results (`--corpus`, `--base-from`)
# so that only the training settings differ, and is scored on the quick benchmarks plus the
# CTIBench-MCQ rotation check that `experiment replicate` runs (first 400 questions, options
# rotated 0-3 places). SecEval is left out: ~30 min per model on 2 cores; the reference run has it.
#
#   experiments/replicate_levers.sh            # all levers, in order; finished stages are skipped
#   experiments/replicate_levers.sh tokens     # one lever
set -euo pipefail
cd "$(dirname "$0")/.."
SF=${SF:-.venv/bin/secfoundry}
REF=${REF:-runs/replicate}   # made by: secfoundry experiment replicate --mirror ... --out runs/replicate --set max_steps=250 --set eval_every=125
[ -f "$REF/summary.json" ] || { echo "run the reference experiment first ($REF/summary.json missing)" >&2; exit 2; }
COMMON=(--corpus "$REF/corpus" --base-from "$REF" --benchmarks ctibench-mcq,cybermetric-500 --no-results-md
        --set max_steps=250 --set eval_every=125)

# Replay weights: 4x each general source's token count. The reference shards hold 1.16 M general
# tokens of 14.6 M (7.9%); x4 makes general text 25.7% of the rows drawn.
REPLAY_X4='data.weights={"general:movie-reviews": 458752, "general:python-docs": 2572288, "general:shakespeare": 311296, "general:speeches": 548864, "general:wikitext": 753664}'

lever() {
  case "$1" in
    conservative)  # peak LR 1e-4 -> 3e-5 and general replay 7.9% -> 25.7% (both act against drift)
      "$SF" experiment replicate --out runs/lever-conservative "${COMMON[@]}" --set optim.lr=3.0e-5 --set "$REPLAY_X4" ;;
    tokens)  # a second 1.02 M-token phase from the reference model (2.05 M in all); LR re-warmed
      # over 40 steps, another data seed so the phase draws other rows (row overlap with phase 1 ~7%).
      "$SF" experiment replicate --out runs/lever-tokens "${COMMON[@]}" \
        --set "model.name_or_path=$PWD/$REF/train/final" --set seed=4321 ;;
    *) echo "unknown lever $1 (conservative | tokens)" >&2; exit 2 ;;
  esac
}

for l in "${@:-conservative tokens}"; do
  for one in $l; do lever "$one"; done
done
