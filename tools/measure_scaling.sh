#!/usr/bin/env bash
# Reproduce the scaling tables of docs/performance.md on a many-core machine (16 cores unless CORES says):
#
#   engine    `python -m minilab.bench model`, LAB-BNN at 224 px with random weights, LAB and sign binarizers:
#             latency at batch 1 on 1, 2, 4, ..., CORES threads and throughput at batch 8 on 1, 4 and CORES
#             threads (the medians of --runs timed forwards).
#   training  `python -m minilab.bench scaling`, Bi-RealNet-18 at 64 px, one fixed global batch, forward +
#             backward + Adam: every split of the cores into R ranks × T threads with R × T = CORES (1×16, 2×8,
#             4×4, 8×2, 16×1), each under `mpiexec -n R`, and one plain process × 1 thread as the serial reference.
#
# Usage: tools/measure_scaling.sh [OUTDIR]        (default ./scaling-out)
#
# It first builds the compiled kernels in place and names the CPU, compiler, Python and MPI library (top of
# OUTDIR/log.txt, and OUTDIR/setting.txt).  Each configuration runs ROUNDS times, the rounds in alternating
# order, so a slow minute shows as a spread between rounds rather than as a difference between configurations.
# Every run's raw output is kept in OUTDIR (NAME.json, and NAME.err when it wrote to stderr); OUTDIR/runs.tsv
# lists every run with its exit status and seconds, and OUTDIR/summary.md has the tables
# (tools/summarize_scaling.py), ready to paste into docs/performance.md.  Each run has a time limit and a failed
# run does not stop the others; the script exits 1 when any run failed or was skipped, after the summary.
#
# How to read summary.md: "speed-up" is a ratio to the 1-thread (engine) or 1-process × 1-thread (training) run
# of the same round; efficiency = speed-up / cores.  A range a–b is the spread of the per-round medians.
# Runs that failed, timed out or were skipped are listed at its end and in log.txt.
#
# Environment (defaults in brackets):
#   PYTHON [python3]  MPIEXEC [mpiexec on PATH]  MPIEXEC_FLAGS [none; e.g. "-bind-to core"]
#   COMMIT [git rev-parse HEAD; name it where the copy has no .git]
#   CORES [16]  ROUNDS [2]  ENGINE_RUNS [40]  MPI_BATCH [128, the global batch]  MPI_STEPS [6]
#   RUN_TIMEOUT_S [60, per run]  BUDGET_S [240: no run starts after this many seconds]
#   QUICK=1   a dry run of the logic with few forwards and steps (for checking the script, not for numbers)
set -uo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-scaling-out}"
mkdir -p "$out" && out="$(cd "$out" && pwd)"
cd "$here" || exit 1

PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
MPIEXEC="${MPIEXEC:-mpiexec}"
MPIEXEC_FLAGS="${MPIEXEC_FLAGS:-}"
CORES="${CORES:-16}"
ROUNDS="${ROUNDS:-2}"
ENGINE_RUNS="${ENGINE_RUNS:-40}"
MPI_BATCH="${MPI_BATCH:-128}"
MPI_STEPS="${MPI_STEPS:-6}"
RUN_TIMEOUT_S="${RUN_TIMEOUT_S:-60}"
BUDGET_S="${BUDGET_S:-240}"
if [ "${QUICK:-0}" = 1 ]; then
  ENGINE_RUNS=4; MPI_STEPS=1; MPI_BATCH=$((2 * CORES))
fi

exec > >(tee -a "$out/log.txt") 2>&1
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
runs="$out/runs.tsv"
printf 'name\tkind\tbinarizer\tbatch\tranks\tthreads\tround\trc\tseconds\n' > "$runs"
failed=()
: > "$out/problems.txt"
# problem TEXT: a failure that is not one run's (summary.md lists these too)
problem() { echo "FAILED: $1"; echo "$1" >> "$out/problems.txt"; failed+=("$1"); }

# powers of two up to CORES, and CORES itself
counts() { local n=1; while [ "$n" -lt "$CORES" ]; do echo "$n"; n=$((n * 2)); done; echo "$CORES"; }

# note KEY VALUE: one line of the setting, in the log and in setting.txt (summary.md lists them)
note() { echo "$1: $2"; echo "$1: $2" >> "$out/setting.txt"; }
: > "$out/setting.txt"
echo "== minilab scaling measurement"
{
  model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
  [ -n "$model" ] || model=$(sed -n 's/^model name\s*: *//p' /proc/cpuinfo 2>/dev/null | head -n 1)
  sockets=$(lscpu 2>/dev/null | sed -n 's/^Socket(s): *//p' | head -n 1)
  per_socket=$(lscpu 2>/dev/null | sed -n 's/^Core(s) per socket: *//p' | head -n 1)
  per_core=$(lscpu 2>/dev/null | sed -n 's/^Thread(s) per core: *//p' | head -n 1)
  family=$(sed -n 's/^cpu family\s*: *//p' /proc/cpuinfo 2>/dev/null | head -n 1)
  cpumodel=$(sed -n 's/^model\s*: *//p' /proc/cpuinfo 2>/dev/null | head -n 1)
  echo "${model:-unknown} (family ${family:-?} model ${cpumodel:-?}), $(nproc) logical CPUs usable," \
       "${sockets:-?} socket(s) × ${per_socket:-?} cores × ${per_core:-?} thread(s) per core"
} > "$out/cpu.txt"
note date "$(date -u '+%Y-%m-%d %H:%M UTC')"
note cpu "$(cat "$out/cpu.txt")"
note python "$("$PYTHON" -c 'import sys, numpy; print(sys.version.split()[0], "with NumPy", numpy.__version__)' 2>&1)"
note compiler "$(gcc --version 2>/dev/null | head -n 1 || echo unknown)"
note commit "${COMMIT:-$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout (set COMMIT)')}"
[ -r /sys/fs/cgroup/cpu.max ] && note "cgroup cpu.max" "$(cat /sys/fs/cgroup/cpu.max)"
note "/dev/shm" "$(df -h /dev/shm 2>/dev/null | awk 'NR == 2 {print $2 " total, " $4 " free"}')"
note settings "CORES=$CORES ROUNDS=$ROUNDS ENGINE_RUNS=$ENGINE_RUNS MPI_BATCH=$MPI_BATCH MPI_STEPS=$MPI_STEPS \
RUN_TIMEOUT_S=$RUN_TIMEOUT_S BUDGET_S=$BUDGET_S QUICK=${QUICK:-0}"
[ "$(nproc)" -lt "$CORES" ] && note warning "CORES=$CORES but only $(nproc) CPUs are usable: threads share cores"

echo "== build the compiled kernels in place"
jobs=()
"$PYTHON" setup.py build_ext --help 2>/dev/null | grep -q -- '--parallel' && jobs=(-j "$(nproc)")
if ! timeout -k 10 300 "$PYTHON" setup.py build_ext --inplace -q "${jobs[@]}" > "$out/build.log" 2>&1; then
  tail -n 30 "$out/build.log"
  echo "FAILED: the build (full output in build.log); without the compiled kernels there is nothing to measure"
  exit 1
fi
isa=$("$PYTHON" -c 'import minilab._kernels as k; print(k.isa())' 2>&1) || {
  echo "FAILED: minilab._kernels does not import after the build: $isa"; exit 1; }
note kernels "$isa, the default native build (built in $(elapsed) s)"

# run NAME KIND BINARIZER BATCH RANKS THREADS ROUND -- COMMAND...: stdout to NAME.json, one line in runs.tsv
run() {
  local name=$1 kind=$2 binarizer=$3 batch=$4 ranks=$5 threads=$6 round=$7; shift 8
  if [ "$(elapsed)" -ge "$BUDGET_S" ]; then
    echo "skipped $name: the ${BUDGET_S} s budget is spent"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\tskipped\t0\n' "$name" "$kind" "$binarizer" "$batch" "$ranks" "$threads" \
      "$round" >> "$runs"
    failed+=("$name (skipped: budget)")
    return
  fi
  local t0=$SECONDS rc
  # stdin from /dev/null: mpiexec forwards its stdin to rank 0 and would eat the list of runs still to do
  timeout -k 10 "$RUN_TIMEOUT_S" "$@" < /dev/null > "$out/$name.json" 2> "$out/$name.err"
  rc=$?
  [ -s "$out/$name.err" ] || rm -f "$out/$name.err"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$kind" "$binarizer" "$batch" "$ranks" "$threads" \
    "$round" "$rc" $((SECONDS - t0)) >> "$runs"
  if [ "$rc" -ne 0 ]; then
    local why="exit status $rc"
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && why="timed out after ${RUN_TIMEOUT_S} s"
    echo "FAILED: $name ($why): $*"
    [ -f "$out/$name.err" ] && tail -n 5 "$out/$name.err"
    failed+=("$name ($why)")
  else
    echo "ok $name ($((SECONDS - t0)) s, $(elapsed) s in all)"
  fi
}

echo "== MPI launcher"
launcher=()
check_mpi() {   # the launcher starts 2 ranks that see each other
  timeout -k 5 30 "$MPIEXEC" "$@" -n 2 "$PYTHON" < /dev/null -c \
    "from mpi4py import MPI; c = MPI.COMM_WORLD; n = c.allreduce(1); c.rank or print(n, c.size)" 2>&1 | tail -n 3
}
if ! command -v "$MPIEXEC" > /dev/null; then
  problem "no MPI launcher ($MPIEXEC not found; set MPIEXEC): only the one-process training reference ran"
else
  for flags in "$MPIEXEC_FLAGS" "$MPIEXEC_FLAGS -launcher fork"; do
    # shellcheck disable=SC2086  # the flags are words
    answer=$(check_mpi $flags)
    if grep -qx '2 2' <<< "$answer"; then
      read -r -a launcher <<< "$MPIEXEC $flags"
      break
    fi
    echo "mpiexec ${flags:-without flags} did not start 2 ranks: $answer"
  done
  if [ ${#launcher[@]} -eq 0 ]; then
    problem "$MPIEXEC cannot start 2 ranks (see log.txt): only the one-process training reference ran"
  else
    note mpi "${launcher[*]}; $("$PYTHON" -c 'import mpi4py; from mpi4py import MPI
print(" ".join(MPI.Get_library_version().splitlines()[0].replace("Version:", "").split()), "and mpi4py", mpi4py.__version__)' 2>&1)"
  fi
fi

# every run of one round, one per line:  engine BINARIZER BATCH THREADS RUNS  |  train RANKS THREADS
# (train 1 1 is the plain process, no launcher)
rank_counts=()
for r in $(counts); do
  [ $((CORES % r)) -eq 0 ] || continue
  if [ $((MPI_BATCH % r)) -ne 0 ] || [ $((MPI_BATCH / r)) -lt 2 ]; then
    problem "$r ranks × $((CORES / r)) threads left out: the global batch $MPI_BATCH does not split into ≥ 2 images per rank"
    continue
  fi
  rank_counts+=("$r")
done
round_runs() {
  local t r
  for t in $(counts); do
    echo "engine lab 1 $t $ENGINE_RUNS"; echo "engine sign 1 $t $ENGINE_RUNS"
  done
  for t in $(printf '%s\n' 1 4 "$CORES" | awk -v c="$CORES" '$1 <= c' | sort -nu); do
    echo "engine lab 8 $t $(( (ENGINE_RUNS + 1) / 2 ))"; echo "engine sign 8 $t $(( (ENGINE_RUNS + 1) / 2 ))"
  done
  echo "train 1 1"
  if [ ${#launcher[@]} -gt 0 ]; then
    for r in "${rank_counts[@]}"; do echo "train $r $((CORES / r))"; done
  fi
}
ordered() { if [ $(($1 % 2)) -eq 1 ]; then cat; else tac; fi; }   # odd rounds forward, even rounds reversed

scaling_args=(-m minilab.bench scaling --arch birealnet18 --image-size 64 --batch-size "$MPI_BATCH"
              --steps "$MPI_STEPS" --ranks 1 --json)
echo "== $ROUNDS round(s): engine (bench model, labbnn 224 px) and training (bench scaling, birealnet18 64 px," \
     "global batch $MPI_BATCH, $MPI_STEPS timed steps)"
for round in $(seq 1 "$ROUNDS"); do
  while read -r kind a b c d; do
    if [ "$kind" = engine ]; then       # a binarizer, b batch, c threads, d runs
      run "engine-$a-b$b-t$c-r$round" engine "$a" "$b" 1 "$c" "$round" -- \
        "$PYTHON" -m minilab.bench model --arch labbnn --image-size 224 --binarizer "$a" \
        --batch-size "$b" --threads "$c" --runs "$d" --float-runs 1 --json
    elif [ "$a" = 1 ] && [ "$b" = 1 ]; then   # a ranks, b threads
      run "train-plain-1x1-r$round" train - "$MPI_BATCH" 1 1 "$round" -- \
        env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$PYTHON" "${scaling_args[@]}" --threads 1
    else
      run "train-mpi-${a}x$b-r$round" train - "$MPI_BATCH" "$a" "$b" "$round" -- \
        env OMP_NUM_THREADS="$b" OPENBLAS_NUM_THREADS="$b" \
        "${launcher[@]}" -n "$a" "$PYTHON" "${scaling_args[@]}" --threads "$b"
    fi
  done < <(round_runs | ordered "$round")
done

echo "== summary"
"$PYTHON" tools/summarize_scaling.py "$out" > "$out/summary.md" || failed+=("summarize_scaling.py")
cat "$out/summary.md"
echo "== done in $(elapsed) s; raw outputs in $out"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED or skipped (${#failed[@]}): ${failed[*]}"
  exit 1
fi
