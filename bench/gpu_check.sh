#!/usr/bin/env bash
# GPU check (issue #15 item 5): on a machine with one NVIDIA GPU, train with the real trainer
# (`secfoundry train run`) in bf16 autocast and report tokens/s and MFU, then eval (scoring)
# throughput, next to what `secfoundry train plan` predicted for the same recipe.
#
#   1. smollm2-135m: the quickstart recipe configs/train/smollm2-135m-cpt.yaml on SmolLM2-135M
#      (micro-batch raised for a GPU: 32 x 512, 300 steps);
#   2. llama-1b: a 1B-shaped random Llama (Llama-3.2-1B's shape: 16 layers, h 2048, ffn 8192,
#      32/8 heads, vocab 128256, tied) on the same recipe, 8 x 2048, 200 steps.
#   Then per run: bf16 no-grad scoring throughput of the exported model (bench/gpu_check.py score).
#
# Weights and data: the device machine receives only the repository (64 MiB), so by default
# SmolLM2-135M's *architecture* is trained from random init on random-token shards in the real
# packed format: tokens/s and MFU do not depend on weight or token values, losses are meaningless.
# SMOLLM2_DIR=<HF dir> trains the real checkpoint, GPU_CHECK_SHARDS=<packed shards, SmolLM2
# tokenizer> the real quickstart corpus (both needed for the replication experiment of item 5,
# which is NOT run here).
#
# Results under $OUT (the device tool's output folder; default runs/gpu_check): summary.md,
# summary.json (measured figures + the plan JSON of each run), each run's metrics.jsonl,
# gpu_check.log, env.txt. At most 8 files come back from the device: keep it that way.
#
#   bash bench/gpu_check.sh                       # on the GPU machine (PYTHON=python3 there)
#   GPU_CHECK_DRY=1 bash bench/gpu_check.sh       # CPU dry run: tiny model, 2 steps (~1-2 min)
#
# Env: PYTHON (default .venv/bin/python if present, else python3), GPU_CHECK_WORK (scratch,
# default /tmp/gpu_check), GPU_CHECK_PEAK_FLOPS (override the GPU's dense bf16 peak),
# GPU_CHECK_STEPS_SMOL / GPU_CHECK_STEPS_1B (step counts).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DRY=${GPU_CHECK_DRY:-0}
OUT=${OUT:-$REPO/runs/gpu_check}
WORK=${GPU_CHECK_WORK:-/tmp/gpu_check}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH=$REPO/src${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK/results"
LOG=$OUT/gpu_check.log
exec > >(tee -a "$LOG") 2>&1
SF=("$PYTHON" -m secfoundry)
RECIPE=configs/train/smollm2-135m-cpt.yaml
echo "== gpu_check $(date -u +%FT%TZ) dry=$DRY python=$PYTHON out=$OUT work=$WORK"

# Environment and the GPU's peak (the table in secfoundry/train/plan.py, by device name).
{
  nvidia-smi 2>/dev/null || echo "nvidia-smi: not available"
  "$PYTHON" - <<'EOF'
import torch, transformers, accelerate, platform
print("python", platform.python_version(), "torch", torch.__version__, "transformers", transformers.__version__,
      "accelerate", accelerate.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
EOF
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
read -r GPU_KEY PEAK < <("$PYTHON" - <<'EOF'
import torch
from secfoundry.train.plan import GPUS
name = torch.cuda.get_device_name().lower() if torch.cuda.is_available() else ""
key = next((k for k in ("h200", "h100", "a100") if k in name), "h100")
print(key, GPUS[key]["peak_bf16_flops"])
EOF
)
PEAK=${GPU_CHECK_PEAK_FLOPS:-$PEAK}
echo "peak dense bf16 for MFU: $PEAK FLOP/s ($GPU_KEY table entry)"

SMOL_ARCH='{vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, max_position_embeddings: 8192, rope_theta: 100000.0, rms_norm_eps: 1.0e-5, tie_word_embeddings: true}'
L1B_ARCH='{vocab_size: 128256, hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, max_position_embeddings: 131072, rope_theta: 500000.0, rms_norm_eps: 1.0e-5, tie_word_embeddings: true}'
TINY_ARCH='{vocab_size: 512, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256, tie_word_embeddings: true}'

if [ "$DRY" = 1 ]; then
  # name | arch | vocab | seq | micro-batch | steps | shard rows | score batch/iters
  RUNS=("smollm2-135m|$TINY_ARCH|512|32|2|2|64|2|2" "llama-1b|$TINY_ARCH|512|64|2|2|64|2|2")
  EXTRA=(--set compile=false --set threads=2 --set log_every=1)
else
  RUNS=("smollm2-135m|$SMOL_ARCH|49152|512|32|${GPU_CHECK_STEPS_SMOL:-300}|16384|32|20"
        "llama-1b|$L1B_ARCH|128256|2048|8|${GPU_CHECK_STEPS_1B:-200}|2048|8|20")
  EXTRA=(--set threads=8 --set log_every=25)
fi

for spec in "${RUNS[@]}"; do
  IFS='|' read -r NAME ARCH VOCAB SEQ MB STEPS ROWS SB SI <<<"$spec"
  echo "== $NAME: seq $SEQ, micro-batch $MB, $STEPS steps"
  SHARDS=$WORK/shards-$NAME
  MODEL_SET=(--set "model.init_config=$ARCH")
  if [ "$NAME" = smollm2-135m ] && [ -n "${SMOLLM2_DIR:-}" ] && [ "$DRY" != 1 ]; then
    MODEL_SET=(--set "model.name_or_path=$SMOLLM2_DIR")
  fi
  if [ "$NAME" = smollm2-135m ] && [ -n "${GPU_CHECK_SHARDS:-}" ] && [ "$DRY" != 1 ]; then
    SHARDS=$GPU_CHECK_SHARDS
  elif [ ! -f "$SHARDS/manifest.json" ]; then
    "$PYTHON" bench/gpu_check.py shards "$SHARDS" --vocab "$VOCAB" --seq "$SEQ" --rows "$ROWS"
  fi
  SETS=("${MODEL_SET[@]}" --set "data.shards=$SHARDS" --set "data.seq_len=$SEQ" --set "micro_batch_size=$MB"
        --set grad_accum=1 --set "max_steps=$STEPS" --set schedule.warmup_steps=10 --set eval_every=0
        --set save_every=0 --set eval_batches=8 --set "peak_flops=$PEAK" "${EXTRA[@]}")
  "${SF[@]}" train plan "$RECIPE" "${SETS[@]}" --gpus 1 --gpu "$GPU_KEY" --json > "$WORK/results/plan-$NAME.json"
  MEMPID=
  if command -v nvidia-smi >/dev/null 2>&1 && [ "$DRY" != 1 ]; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$WORK/results/mem-$NAME.csv" &
    MEMPID=$!
  fi
  rm -rf "${WORK:?}/results/$NAME"
  "${SF[@]}" train run "$RECIPE" "${SETS[@]}" --out "$WORK/results/$NAME" --no-progress
  [ -n "$MEMPID" ] && kill "$MEMPID" 2>/dev/null || true
  "$PYTHON" bench/gpu_check.py score "$WORK/results/$NAME/final" --seq "$SEQ" --batch "$SB" --iters "$SI" \
    --json "$WORK/results/score-$NAME.json"
  mkdir -p "$OUT/$NAME"
  cp "$WORK/results/$NAME/metrics.jsonl" "$OUT/$NAME/metrics.jsonl"
done

"$PYTHON" bench/gpu_check.py summary "$WORK/results" --to "$OUT"
echo "== done: $OUT/summary.md"
