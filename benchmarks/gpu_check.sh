#!/usr/bin/env bash
# One GPU check in one call: set up, run the `gpu`-marked tests, measure generation and training.
#
#   OUT=/path/to/results bash benchmarks/gpu_check.sh                 # on a CUDA machine
#   DEVICE=cpu SMOKE=1 OUT=/tmp/gpucheck bash benchmarks/gpu_check.sh  # the same steps, tiny, CPU
#
# Phases, each with its own time limit (seconds, overridable), each run even when an earlier
# one failed (except that nothing runs without a usable Python):
#   setup     (T_SETUP=60)    a python3 whose torch sees CUDA (else: scripts/setup_venv.sh
#                             with TORCH_SPEC under T_INSTALL=150, which needs a package index);
#                             the project's imports; wheels from $WHEELS if any are missing
#   tests     (T_TESTS=90)    pytest -m gpu over the test files that hold gpu or device tests
#   generate  (T_GENERATE=180) benchmarks/bench_gpu_generate.py (store section stops itself
#                             after STORE_DEADLINE_S=75)
#   train     (T_TRAIN=140)   benchmarks/bench_gpu_train.py (its store under /dev/shm when
#                             there is one)
# Files under $OUT (flat, 7 at most): gpu_check.log (everything, with phase timings at the end),
# env.txt, pytest.txt, generate.md, generate.json, train.md, train.json.
# Exit status: 0 when every phase passed, 1 otherwise.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-/tmp/gpu_check_out}"
DEVICE="${DEVICE:-cuda}"
SMOKE="${SMOKE:-0}"
WORK="${WORK:-/tmp/mesynth_gpu_work}"
WHEELS="${WHEELS:-$REPO/benchmarks/wheels}"
T_SETUP="${T_SETUP:-60}"
T_INSTALL="${T_INSTALL:-150}"
T_TESTS="${T_TESTS:-90}"
T_GENERATE="${T_GENERATE:-180}"
T_TRAIN="${T_TRAIN:-140}"
STORE_DEADLINE_S="${STORE_DEADLINE_S:-75}"
PRESET=full
[ "$SMOKE" = "1" ] && PRESET=smoke

mkdir -p "$OUT" "$WORK"
LOG="$OUT/gpu_check.log"
exec > >(tee -a "$LOG") 2>&1
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
cd "$REPO" || exit 1

START=$(date +%s)
PHASES=()
FAILED=0
CUDA=0
PY=""

say() { echo "[gpu_check $(($(date +%s) - START))s] $*"; }

# record NAME STATUS BEGUN_SECONDS: one line of the closing phase table
record() {
    [ "$2" = ok ] || FAILED=1
    PHASES+=("$(printf '%-9s %-26s %5ss' "$1" "$2" "$((SECONDS - $3))")")
    say "== phase $1: $2 in $((SECONDS - $3))s"
}

# run_phase NAME LIMIT_S COMMAND...: run under `timeout` and record how it ended
run_phase() {
    local name="$1" limit="$2" begun=$SECONDS rc status=ok
    shift 2
    say "== phase $name (limit ${limit}s)"
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        status="TIMED OUT after ${limit}s"
    elif [ "$rc" -ne 0 ]; then
        status="FAILED (exit $rc)"
    fi
    record "$name" "$status" "$begun"
}

# a python3 that imports torch (and sees CUDA unless DEVICE=cpu)
usable_python() {
    local want="torch.cuda.is_available()"
    [ "$DEVICE" = cpu ] && want="True"
    timeout "$T_SETUP" "$1" -c "import sys, torch; sys.exit(0 if $want else 1)" >/dev/null 2>&1
}

find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3 /opt/torch/.venv/bin/python3 "$REPO/.venv/bin/python" \
        "$WORK/venv/bin/python"; do
        if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 \
            && usable_python "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

MODULES="mesynth.generation.pipeline, recognizer.training.trainer, recognizer.models, recognizer.datasets, \
recognizer.data.representations, cv2, scipy, skimage, sklearn, pandas, yaml, tqdm, matplotlib, PIL, pytest"

setup() {
    if ! PY="$(find_python)"; then
        say "no python3 with a usable torch (DEVICE=$DEVICE); trying scripts/setup_venv.sh" \
            "with ${TORCH_SPEC:-torch==2.13.0} (needs a package index; limit ${T_INSTALL}s)"
        PIP_DEFAULT_TIMEOUT=10 PIP_RETRIES=0 EXTRAS="dev,dlib" \
            timeout "$T_INSTALL" bash scripts/setup_venv.sh "$WORK/venv" \
            || say "setup_venv.sh failed (no package index reachable?)"
        if ! PY="$(find_python)"; then
            say "FAILED: no python with torch$([ "$DEVICE" = cpu ] || echo ' and CUDA') here," \
                "and none could be installed. Bring a CUDA build of torch (or a machine" \
                "image with one) and rerun."
            return 1
        fi
    fi
    say "python: $PY"
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
    if ! "$PY" -c "import $MODULES" 2>/dev/null; then
        if compgen -G "$WHEELS/*.whl" >/dev/null; then
            say "installing the wheels of $WHEELS into $WORK/site"
            "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" \
                "$WHEELS"/*.whl
            export PYTHONPATH="$PYTHONPATH:$WORK/site"
        fi
    fi
    {
        echo "# gpu_check environment"
        echo "date: $(date -u +%FT%TZ)  host cores: $(nproc)  DEVICE=$DEVICE SMOKE=$SMOKE"
        echo "repo: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
        "$PY" - <<'EOF'
import importlib, platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| cuda",
      torch.version.cuda, "| cudnn", torch.backends.cudnn.version())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("gpu", p.name, f"{p.total_memory / 2**30:.0f} GiB", f"sm {p.major}.{p.minor}",
          p.multi_processor_count, "SMs")
for name in ("numpy", "scipy", "cv2", "skimage", "sklearn", "pandas", "pytest", "omegaconf",
             "hydra", "kornia"):
    try:
        print(f"{name} {getattr(importlib.import_module(name), '__version__', '?')}")
    except ImportError as err:
        print(f"{name} missing ({err})")
EOF
        free -g 2>/dev/null | head -2
        df -h "$WORK" /dev/shm 2>/dev/null
        if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "nvidia-smi: not found"; fi
    } >"$OUT/env.txt" 2>&1
    cat "$OUT/env.txt"
    "$PY" -c "import $MODULES" || {
        say "FAILED: the project's imports above are missing; carry their wheels in $WHEELS"
        return 1
    }
    if [ "$DEVICE" = cpu ]; then
        say "skipped: no CUDA (DEVICE=cpu): CUDA tests skip, CUDA-only sections print 'skipped'"
    else
        CUDA=1
    fi
}

gpu_tests() {
    local files
    set -o pipefail  # pytest's status, not tee's (this runs in a child bash)
    # the files with gpu-marked tests or tests taking the cpu/cuda `device` fixture
    mapfile -t files < <(grep -rlE 'mark\.gpu|^def test_[a-z0-9_]+\(.*\bdevice\b' tests \
        --include='test_*.py' | sort)
    say "gpu test files: ${files[*]}"
    "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider "${files[@]}" 2>&1 | tee "$OUT/pytest.txt"
}

bench_generate() {
    "$PY" benchmarks/bench_gpu_generate.py --device "$DEVICE" --preset "$PRESET" \
        --work "$WORK" --deadline-s "$STORE_DEADLINE_S" \
        --out "$OUT/generate.md" --json "$OUT/generate.json"
}

bench_train() {
    local work="$WORK"
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then work=/dev/shm/mesynth_gpu_work; fi
    "$PY" benchmarks/bench_gpu_train.py --device "$DEVICE" --preset "$PRESET" --work "$work" \
        --out "$OUT/train.md" --json "$OUT/train.json"
    local rc=$?
    rm -rf /dev/shm/mesynth_gpu_work
    return "$rc"
}

say "gpu_check: DEVICE=$DEVICE SMOKE=$SMOKE OUT=$OUT WORK=$WORK"
begun=$SECONDS
if setup; then
    record setup ok "$begun"
    # the phases run under `timeout`, in a child bash: export what they need
    export -f say gpu_tests bench_generate bench_train
    export PY OUT DEVICE PRESET WORK STORE_DEADLINE_S START
    [ "$CUDA" = 1 ] || say "skipped: no CUDA: the gpu tests run but all skip"
    run_phase tests "$T_TESTS" bash -c gpu_tests
    run_phase generate "$T_GENERATE" bash -c bench_generate
    run_phase train "$T_TRAIN" bash -c bench_train
else
    record setup FAILED "$begun"
    for phase in tests generate train; do record "$phase" "skipped: no usable python" "$SECONDS"; done
fi

echo
say "phase timings:"
printf '  %s\n' "${PHASES[@]}"
if [ "$FAILED" -ne 0 ]; then
    say "RESULT: FAILED (see the phases above)"
    exit 1
fi
say "RESULT: all phases passed"
