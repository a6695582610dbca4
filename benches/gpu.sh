#!/usr/bin/env bash
# The CUDA checks and measurements, for a machine with an NVIDIA GPU, its driver and a CUDA
# toolkit 13.x up to 13.4 (`nvcc` on PATH, or `eval "$(cargo xtask cuda-setup)"` first):
#   1. builds `ntm` in release with `--features cuda`;
#   2. runs the device tests of `ntm` and `ntm-train` on the GPU (NTM_TEST_DEVICE=cuda);
#   3. `ntm bench` on the copy task at batch 1, 32, 256, 1024 and 4096;
#   4. trains the copy task with Adam at batch 256 until 0.1 bits per sequence, or the time
#      limit;
# then prints one table. Logs, the JSON of each bench and the training run go to a new folder
# under target/gpu-bench/. It exits non-zero if anything failed.
#
# Environment: CUDA_COMPUTE_CAP (default: the GPU's, from nvidia-smi), BENCH_SECONDS (seconds
# measured per batch size, default 10), TRAIN_SECONDS (training time limit, default 900).
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
    echo "error: $*" >&2
    exit 1
}

# Fail fast, before building anything, where no GPU or driver can be used.
command -v nvidia-smi >/dev/null 2>&1 ||
    die "nvidia-smi not found: this script needs an NVIDIA GPU and its driver"
if ! gpu=$(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader 2>&1); then
    die "nvidia-smi cannot reach a GPU: $(head -n 1 <<<"$gpu")"
fi
gpu=$(head -n 1 <<<"$gpu")
[[ -n $gpu ]] || die "nvidia-smi lists no GPU"
IFS=, read -r gpu_name driver cap <<<"$gpu"
driver=${driver# }
cap=${cap# }
command -v nvcc >/dev/null 2>&1 ||
    die "nvcc not found: install a CUDA toolkit 13.x up to 13.4 (with cuBLAS, cuRAND and NVRTC) and put its bin/ on PATH"
# candle's kernels are PTX, compiled by the driver when they are loaded: the driver must know
# the toolkit's CUDA release (nvidia-smi's "CUDA Version"), or loading fails with an
# unsupported PTX version.
toolkit_cuda=$(nvcc --version | grep -o 'release [0-9]*\.[0-9]*' | cut -d' ' -f2)
driver_cuda=$(nvidia-smi | grep -o 'CUDA Version: *[0-9]*\.[0-9]*' | grep -o '[0-9.]*$' || true)
if [[ -n $toolkit_cuda && -n $driver_cuda ]]; then
    newest=$(printf '%s\n%s\n' "$toolkit_cuda" "$driver_cuda" | sort -V | tail -n 1)
    [[ $newest == "$driver_cuda" ]] ||
        die "the driver ($driver, CUDA $driver_cuda) is older than the toolkit (nvcc, CUDA $toolkit_cuda): update the driver or use an older toolkit"
fi
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-${cap//./}}
bench_seconds=${BENCH_SECONDS:-10}
train_seconds=${TRAIN_SECONDS:-900}

out=target/gpu-bench/$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
echo "GPU: $gpu_name, driver $driver, compute capability $cap; logs in $out" >&2
failures=0

echo "== building ntm (release, --features cuda)" >&2
cargo build --release --features cuda -p ntm-cli --bin ntm
ntm=${CARGO_TARGET_DIR:-target}/release/ntm

echo "== device tests (log: $out/tests.log)" >&2
tests=passed
if ! NTM_TEST_DEVICE=cuda cargo test --release --features cuda -p ntm -p ntm-train \
    >"$out/tests.log" 2>&1; then
    tests="FAILED, see $out/tests.log"
    failures=$((failures + 1))
fi

# The value of a field of a JSON object (flat, or pretty-printed), or `-`.
field() {
    local v
    v=$(grep -o "\"$2\": *[^,}]*" "$1" 2>/dev/null | head -n 1 | sed 's/^[^:]*: *//; s/"//g; s/ *$//') || true
    echo "${v:--}"
}

# A number rounded to $2 decimals; anything else as it is.
round() {
    if [[ $1 =~ ^-?[0-9.]+([eE][-+]?[0-9]+)?$ ]]; then
        printf "%.${2}f" "$1"
    else
        printf '%s' "$1"
    fi
}

rows=()
for batch in 1 32 256 1024 4096; do
    echo "== bench, copy, batch $batch ($bench_seconds s)" >&2
    json=$out/bench-$batch.json
    if "$ntm" --device cuda bench --task copy --batch "$batch" --seconds "$bench_seconds" --json \
        >"$json" 2>"$out/bench-$batch.log"; then
        rows+=("| bench copy, batch $batch | $(round "$(field "$json" seq_per_s)" 0) seq/s | $(round "$(field "$json" ms_per_step)" 3) ms per time step, $(field "$json" updates) updates |")
    else
        rows+=("| bench copy, batch $batch | FAILED | $(tail -n 1 "$out/bench-$batch.log") |")
        failures=$((failures + 1))
    fi
done

echo "== training copy, Adam 1e-3, batch 256, to 0.1 bits/seq (at most $train_seconds s)" >&2
run=$out/train-copy
# train.max_seconds ends the run (with its summary.json); the timeout only guards against a hang.
# Validation every 20 updates (5,120 sequences; 4 batches of 250) places the convergence point
# finely enough; max_sequences is raised so that only convergence or the time limit ends it.
if timeout "$((train_seconds + 300))" "$ntm" --device cuda train --task copy --out "$run" \
    --set train.batch_size=256 --set train.optimizer.kind=adam --set train.optimizer.lr=1e-3 \
    --set train.target_cost=0.1 --set train.max_seconds="$train_seconds" \
    --set train.max_sequences=1000000000 --set train.eval_every=20 --set train.val_batch=250 \
    >"$out/train.out" 2>"$out/train.log"; then
    s=$run/summary.json
    detail="$(round "$(field "$s" val_bits_per_seq)" 3) bits/seq, $(round "$(field "$s" seq_per_s)" 0) seq/s"
    if [[ $(field "$s" converged) == true ]]; then
        train="converged at $(field "$s" converged_at_sequences) sequences in $(round "$(field "$s" converged_at_seconds)" 0) s"
    else
        train="did not converge in $train_seconds s"
        failures=$((failures + 1))
    fi
else
    train=FAILED
    detail=$(tail -n 1 "$out/train.log")
    failures=$((failures + 1))
fi

{
    echo
    echo "$gpu_name, driver $driver (CUDA ${driver_cuda:-?}), nvcc $toolkit_cuda, CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP"
    echo
    echo "| check | result | detail |"
    echo "|---|---|---|"
    echo "| device tests (ntm, ntm-train) | $tests | |"
    printf '%s\n' "${rows[@]}"
    echo "| train copy, Adam 1e-3, batch 256 | $train | $detail |"
} | tee "$out/table.md"

((failures == 0)) || die "$failures of the checks above failed; logs in $out"
