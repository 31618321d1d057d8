#!/usr/bin/env bash
# The prepared GPU check (issue 29, point 4), one command on a CUDA machine:
#
#     benchmarks/gpu.sh            # from the repository root or anywhere
#
# 1. Fails at once, with one line and exit 1, without an NVIDIA GPU that torch
#    and JAX both see.
# 2. Installs the wheels of benchmarks/wheels (benchmarks/gpu_wheels.sh makes
#    them) whose module this Python cannot import, into a folder of its own put
#    first on PYTHONPATH: nothing of the machine's Python is replaced.
# 3. On the JAX and torch backends: LeNet-5 trained with `fit` on in-memory
#    arrays must learn (gpu_train.py), then kcnn against torchvision eager at
#    the gpu preset (throughput.py --gpu: batch 64, 224x224, 3 rounds of about
#    1 s per contender and mode) for ResNet-50 and MobileNetV2, in float32 and
#    mixed_bfloat16 (torchvision under torch.autocast to bfloat16).
#
# Never imports TensorFlow (the machines have none). Each step runs under a
# timeout, and the whole under GPU_CHECK_BUDGET seconds (default 280): a step
# that would start with too little time left is skipped and reported, not run.
# Results: benchmarks/results/gpu/*.json, each step's output in
# benchmarks/results/gpu/logs/, and summary.json (every step's status and seconds).
# The exit status is 0 only if every step ran and succeeded.
#
# Environment: PYTHON (default python3), WHEELS (default benchmarks/wheels),
# GPU_CHECK_BUDGET (seconds), GPU_CHECK_OUT (default benchmarks/results/gpu);
# GPU_CHECK_ALLOW_CPU=1 skips the CUDA checks, to try the script itself on a CPU
# (with a fake nvidia-smi on PATH; the timings then mean nothing).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-$ROOT/benchmarks/wheels}
BUDGET=${GPU_CHECK_BUDGET:-280}
OUT=${GPU_CHECK_OUT:-$ROOT/benchmarks/results/gpu}
SITE=${TMPDIR:-/tmp}/kcnn-gpu-site

fail() { echo "gpu.sh: $*" >&2; exit 1; }

# -- 1. A GPU ------------------------------------------------------------------
command -v nvidia-smi >/dev/null 2>&1 || fail "no NVIDIA GPU here (nvidia-smi not found)"
GPU=$(timeout 30 nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
[ -n "$GPU" ] || fail "no NVIDIA GPU here (nvidia-smi lists none or hangs)"
command -v "$PY" >/dev/null 2>&1 || fail "no $PY (set PYTHON)"

# -- 2. Missing packages from the wheels -----------------------------------------
# module:wheel-name prefix; keras's own imports on JAX and torch (gpu_wheels.sh).
# Found, not imported: `import keras` would pick the TensorFlow backend.
read -r -a missing < <(timeout 60 "$PY" - <<'PYTHON'
import importlib.util
pairs = {"keras": "keras", "optree": "optree", "h5py": "h5py", "ml_dtypes": "ml_dtypes",
         "absl": "absl_py", "rich": "rich", "markdown_it": "markdown_it_py",
         "mdurl": "mdurl", "pygments": "pygments", "packaging": "packaging"}
print(" ".join(wheel for module, wheel in pairs.items()
               if importlib.util.find_spec(module) is None))
PYTHON
) || fail "$PY does not run"
if [ ${#missing[@]} -gt 0 ]; then
    wheels=()
    for name in "${missing[@]}"; do
        found=$(ls "$WHEELS"/"$name"-*.whl 2>/dev/null | head -1)
        [ -n "$found" ] || fail "missing Python packages (${missing[*]}) and no $name" \
            "wheel in $WHEELS: run benchmarks/gpu_wheels.sh where there is network," \
            "and copy the folder"
        wheels+=("$found")
    done
    echo "installing into $SITE: ${missing[*]}"
    timeout 120 "$PY" -m pip install --quiet --no-index --no-deps --target "$SITE" \
        "${wheels[@]}" || fail "pip could not install the wheels from $WHEELS"
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi

TRAIN_FLAGS=()
if [ "${GPU_CHECK_ALLOW_CPU:-0}" = 1 ]; then  # a check of this script on a CPU machine
    TRAIN_FLAGS=(--allow-cpu)
else
    timeout 120 "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" \
        >/dev/null 2>&1 || fail "torch sees no CUDA device on $GPU (a CPU-only torch?)"
    timeout 120 "$PY" -c "import sys, jax; sys.exit(0 if jax.devices()[0].platform == 'gpu' else 1)" \
        >/dev/null 2>&1 || fail "JAX sees no GPU on $GPU (jax without its CUDA plugin?)"
fi

# -- 3. The steps ---------------------------------------------------------------
mkdir -p "$OUT/logs"
# JAX's compiled programs are kept, so that a second run after a failed
# first one spends its time measuring, not compiling.
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-${TMPDIR:-/tmp}/kcnn-jax-cache}
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export PYTHONUNBUFFERED=1
STATUS=0
STEPS=()

# step NAME BACKEND LIMIT_SECONDS COMMAND...
step() {
    local name=$1 backend=$2 limit=$3 rc start seconds left
    shift 3
    left=$((BUDGET - SECONDS))
    if [ "$left" -lt 30 ]; then
        echo "== $name: skipped, ${left}s of the ${BUDGET}s budget left"
        STEPS+=("{\"step\": \"$name\", \"status\": \"skipped\", \"seconds\": 0}")
        STATUS=1
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (at most ${limit}s; log $OUT/logs/$name.log)"
    start=$SECONDS
    KERAS_BACKEND=$backend timeout -k 10 "$limit" "$@" > "$OUT/logs/$name.log" 2>&1
    rc=$?
    seconds=$((SECONDS - start))
    if [ "$rc" -eq 0 ]; then
        status=ok
    elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        status="timed out"; STATUS=1
    else
        status="failed (exit $rc)"; STATUS=1
    fi
    grep -E "held-out|^  (kcnn|torchvision) |^wrote|Error|error:" "$OUT/logs/$name.log" | tail -12
    echo "== $name: $status in ${seconds}s"
    STEPS+=("{\"step\": \"$name\", \"status\": \"$status\", \"seconds\": $seconds}")
}

THROUGHPUT=(benchmarks/throughput.py --gpu --models resnet50 mobilenet_v2
            --peers torchvision --out "$OUT")
step train_jax jax 90 "$PY" benchmarks/gpu_train.py --out "$OUT" "${TRAIN_FLAGS[@]}"
step train_torch torch 60 "$PY" benchmarks/gpu_train.py --out "$OUT" "${TRAIN_FLAGS[@]}"
step throughput_torch_float32 torch 60 "$PY" "${THROUGHPUT[@]}"
step throughput_jax_float32 jax 120 "$PY" "${THROUGHPUT[@]}"
step throughput_torch_mixed_bfloat16 torch 60 "$PY" "${THROUGHPUT[@]}" --precision mixed_bfloat16
step throughput_jax_mixed_bfloat16 jax 120 "$PY" "${THROUGHPUT[@]}" --precision mixed_bfloat16

{
    echo "{\"gpu\": \"$GPU\", \"budget_seconds\": $BUDGET, \"seconds\": $SECONDS,"
    echo " \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"steps\": ["
    (IFS=,; echo "  ${STEPS[*]}")
    echo "]}"
} > "$OUT/summary.json"
[ "$STATUS" -eq 0 ] && verdict="every step ok" || verdict="NOT every step ok"
echo "gpu.sh: done in ${SECONDS}s on $GPU, $verdict; results in $OUT"
exit $STATUS
