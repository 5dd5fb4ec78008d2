#!/usr/bin/env bash
# Everything to run on a lent GPU machine, offline, in under 8 minutes:
#   1. build and install pykernels against the machine's own torch/triton (CUDA for sm_90 only),
#   2. python3 -m kernels info,
#   3. the CUDA/Triton correctness tests (pytest -m cuda): failures are recorded, not fatal,
#   4. benchmarks/gpu/bench_ops.py: every op's backends timed with do_bench; its table is printed last.
#
# Usage, from anywhere:  bash benchmarks/gpu/run_all.sh [RESULTS_DIR]
# RESULTS_DIR (default: $OUT when set) receives run_all.log (this whole output) and gpu_results.txt
# (the benchmark report). Without either, the report goes to
# benchmarks/results/<machine tag>/<UTC date>_<machine tag>.txt, where results are recorded.
# Time limits per phase can be changed with PYKERNELS_GPU_TOTAL_S (default 450, the whole script).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"
RESULTS_DIR="${1:-${OUT:-}}"
TOTAL_S="${PYKERNELS_GPU_TOTAL_S:-450}"
DEADLINE=$((SECONDS + TOTAL_S))
PY="${PYTHON:-python3}"
FAILED=()

if [[ -n "$RESULTS_DIR" ]]; then
    mkdir -p "$RESULTS_DIR"
    exec > >(tee "$RESULTS_DIR/run_all.log") 2>&1
    TEE_PID=$!
    # Let tee write the last lines before the script (and the caller collecting the log) ends.
    trap 'exec >&- 2>&-; wait "$TEE_PID" 2>/dev/null || sleep 1' EXIT
fi

header() { printf '\n===== %s (t=%ds) =====\n' "$1" "$SECONDS"; }
remaining() { echo $((DEADLINE - SECONDS)); }
# The smaller of a phase's own cap and the time left minus what later phases need.
cap() { local own=$1 reserve=$2 left; left=$(($(remaining) - reserve)); echo $((left < own ? left : own)); }
# Runs a phase under a time limit; a failure is recorded in FAILED (and PHASE_RC) and the script
# goes on. SIGINT first, so pytest still prints what it ran.
phase() {
    local name=$1 limit=$2
    shift 2
    PHASE_RC=0
    if ((limit < 10)); then
        echo "skipped: only ${limit}s left for $name"
        PHASE_RC=124
    else
        timeout --signal=INT --kill-after=15 "$limit" "$@" || PHASE_RC=$?
        ((PHASE_RC == 124)) && echo "$name: stopped at its ${limit}s limit"
    fi
    ((PHASE_RC == 0)) || FAILED+=("$name (exit $PHASE_RC)")
    return 0
}

header "machine"
command -v nvidia-smi >/dev/null &&
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
"$PY" -c 'import sys, torch, triton; print("python", sys.version.split()[0], "| torch", torch.__version__,
"| CUDA", torch.version.cuda, "| triton", triton.__version__, "| cuda available:", torch.cuda.is_available())' ||
    echo "torch/triton do not import: the phases below will say more"
command -v nvcc >/dev/null && nvcc --version | tail -n 2 || echo "nvcc not on PATH"
echo "cmake: $(cmake --version 2>/dev/null | head -n 1 || echo missing)   cores: $(nproc)"

header "build: pip install -e . (CUDA on, sm_90 only, no network)"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
export PYKERNELS_CUDA=ON
# A system Python may refuse pip installs (PEP 668); this machine is ours for the run.
export PIP_BREAK_SYSTEM_PACKAGES=1
phase build "$(cap 240 200)" "$PY" -m pip install --no-build-isolation --no-deps --no-index -e . \
    -Ccmake.define.PYKERNELS_CUDA=ON -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90
if ((PHASE_RC != 0)); then
    # Triton and reference backends still run from the source tree; kernels info says what is missing.
    echo "build failed: continuing from the source tree (PYTHONPATH=$REPO_ROOT)"
    export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi

header "python3 -m kernels info"
phase info "$(cap 60 180)" "$PY" -m kernels info

header "correctness: pytest tests -m cuda"
# The method packages' tests need their extras (scikit-learn, PyAV...), which an offline GPU machine
# may lack: a module that fails to import must not stop the kernels' CUDA tests from running.
phase tests "$(cap 150 140)" "$PY" -m pytest tests -m cuda -q -p no:cacheprovider --continue-on-collection-errors
if ((PHASE_RC == 5)); then  # pytest: nothing collected, which is not a failure of any kernel
    echo "no test is marked cuda yet"
    unset 'FAILED[${#FAILED[@]}-1]'
fi

header "benchmarks: benchmarks/gpu/bench_ops.py"
TAG="$("$PY" benchmarks/machine_tag.py)"
if [[ -n "$RESULTS_DIR" ]]; then
    REPORT="$RESULTS_DIR/gpu_results.txt"
else
    REPORT="benchmarks/results/$TAG/$(date -u +%Y-%m-%d)_$TAG.txt"
fi
BUDGET=$(($(remaining) - 45))
phase bench "$((BUDGET + 35))" "$PY" benchmarks/gpu/bench_ops.py --out "$REPORT" --budget-s "$BUDGET"

header "summary"
echo "machine tag: $TAG   report: $REPORT   total: ${SECONDS}s"
if ((${#FAILED[@]})); then
    echo "FAILED phases: ${FAILED[*]}"
else
    echo "all phases passed"
fi
# The results table last, as the one thing to read.
if [[ -f "$REPORT" ]]; then
    echo
    sed -n '/^===== results table/,$p' "$REPORT"
fi
((${#FAILED[@]} == 0))
