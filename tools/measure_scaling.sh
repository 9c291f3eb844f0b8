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
# It builds the compiled kernels in place first and names the CPU at the top of OUTDIR/log.txt.  Each
# configuration runs ROUNDS times, the rounds in alternating order, so a slow minute shows as a spread between
# rounds rather than as a difference between configurations.  Every run's raw output is kept in OUTDIR (NAME.json,
# and NAME.err when it wrote to stderr); OUTDIR/runs.tsv lists every run with its exit status and seconds, and
# OUTDIR/summary.md has the tables (tools/summarize_scaling.py), ready to paste into docs/performance.md.
#
# How to read summary.md: "speed-up" is a ratio to the 1-thread (engine) or 1-process × 1-thread (training) run
# of the same sitting; efficiency = speed-up / cores.  A range a–b is the spread of the per-round medians.
# Runs that failed or timed out are listed at its end and in log.txt; the others are still reported.
#
# Environment (defaults in brackets):
#   PYTHON [python3]  MPIEXEC [mpiexec on PATH]  MPIEXEC_FLAGS [none; e.g. "-bind-to core"]
#   CORES [16]  ROUNDS [2]  ENGINE_RUNS [40]  MPI_BATCH [128, the global batch]  MPI_STEPS [6]
#   RUN_TIMEOUT_S [60, per run]  BUDGET_S [270: no run starts after this many seconds]
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
BUDGET_S="${BUDGET_S:-270}"
if [ "${QUICK:-0}" = 1 ]; then
  ENGINE_RUNS=4; MPI_STEPS=1; MPI_BATCH=$((2 * CORES))
fi

exec > >(tee -a "$out/log.txt") 2>&1
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
runs="$out/runs.tsv"
printf 'name\tkind\tbinarizer\tbatch\tranks\tthreads\tround\trc\tseconds\n' > "$runs"
failed=()

# powers of two up to CORES, and CORES itself
counts() { local n=1; while [ "$n" -lt "$CORES" ]; do echo "$n"; n=$((n * 2)); done; echo "$CORES"; }

echo "== minilab scaling measurement, $(date -u '+%Y-%m-%d %H:%M UTC')"
{
  model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
  sockets=$(lscpu 2>/dev/null | sed -n 's/^Socket(s): *//p' | head -n 1)
  per_socket=$(lscpu 2>/dev/null | sed -n 's/^Core(s) per socket: *//p' | head -n 1)
  per_core=$(lscpu 2>/dev/null | sed -n 's/^Thread(s) per core: *//p' | head -n 1)
  family=$(sed -n 's/^cpu family\s*: *//p' /proc/cpuinfo 2>/dev/null | head -n 1)
  cpumodel=$(sed -n 's/^model\s*: *//p' /proc/cpuinfo 2>/dev/null | head -n 1)
  echo "${model:-unknown} (family ${family:-?} model ${cpumodel:-?}), $(nproc) logical CPUs usable," \
       "${sockets:-?} socket(s) × ${per_socket:-?} cores × ${per_core:-?} thread(s) per core"
} > "$out/cpu.txt"
echo "cpu: $(cat "$out/cpu.txt")"
echo "python: $("$PYTHON" -c 'import sys, numpy; print(sys.version.split()[0], "numpy", numpy.__version__)' 2>&1)"
echo "commit: $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout')"
echo "/dev/shm: $(df -h /dev/shm 2>/dev/null | awk 'NR == 2 {print $2 " total, " $4 " free"}')"
echo "settings: CORES=$CORES ROUNDS=$ROUNDS ENGINE_RUNS=$ENGINE_RUNS MPI_BATCH=$MPI_BATCH MPI_STEPS=$MPI_STEPS" \
     "RUN_TIMEOUT_S=$RUN_TIMEOUT_S BUDGET_S=$BUDGET_S QUICK=${QUICK:-0}"
[ "$(nproc)" -lt "$CORES" ] && echo "warning: CORES=$CORES but only $(nproc) CPUs are usable: threads will share cores"

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
echo "kernels: $isa ($(elapsed) s)"
echo "$isa" > "$out/isa.txt"

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

# the engine configurations, one per line: binarizer batch threads runs
engine_configs() {
  local t
  for t in $(counts); do
    echo "lab 1 $t $ENGINE_RUNS"; echo "sign 1 $t $ENGINE_RUNS"
  done
  for t in $(printf '%s\n' 1 4 "$CORES" | awk -v c="$CORES" '$1 <= c' | sort -nu); do
    echo "lab 8 $t $(( (ENGINE_RUNS + 1) / 2 ))"; echo "sign 8 $t $(( (ENGINE_RUNS + 1) / 2 ))"
  done
}

ordered() { if [ $(($1 % 2)) -eq 1 ]; then cat; else tac; fi; }   # odd rounds forward, even rounds reversed

echo "== engine: bench model, labbnn 224 px ($ROUNDS rounds)"
for round in $(seq 1 "$ROUNDS"); do
  while read -r binarizer batch threads n; do
    run "engine-$binarizer-b$batch-t$threads-r$round" engine "$binarizer" "$batch" 1 "$threads" "$round" -- \
      "$PYTHON" -m minilab.bench model --arch labbnn --image-size 224 --binarizer "$binarizer" \
      --batch-size "$batch" --threads "$threads" --runs "$n" --float-runs 1 --json
  done < <(engine_configs | ordered "$round")
done

echo "== training: bench scaling, birealnet18 64 px, global batch $MPI_BATCH, $MPI_STEPS timed steps"
launcher=()
check_mpi() {   # the launcher starts 2 ranks that see each other
  timeout -k 5 60 "$MPIEXEC" "$@" -n 2 "$PYTHON" < /dev/null -c \
    "from mpi4py import MPI; c = MPI.COMM_WORLD; print(c.allreduce(1), c.size)" 2>&1 | tail -n 3
}
if ! command -v "$MPIEXEC" > /dev/null; then
  echo "FAILED: no MPI launcher ($MPIEXEC not found; set MPIEXEC): only the one-process reference runs"
  failed+=("mpiexec not found: $MPIEXEC")
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
    echo "FAILED: $MPIEXEC cannot start 2 ranks (above): only the one-process reference runs"
    failed+=("mpiexec cannot start ranks")
  else
    echo "launcher: ${launcher[*]} ($("$PYTHON" -c 'from mpi4py import MPI; print(MPI.Get_library_version().splitlines()[0])' 2>&1))"
  fi
fi

scaling_args=(-m minilab.bench scaling --arch birealnet18 --image-size 64 --batch-size "$MPI_BATCH"
              --steps "$MPI_STEPS" --ranks 1 --json)
mpi_configs() {   # ranks threads; "ref" is the plain process × 1 thread
  echo "ref 1"
  local r
  for r in $(counts); do
    [ $((CORES % r)) -eq 0 ] || continue
    if [ $((MPI_BATCH % r)) -ne 0 ] || [ $((MPI_BATCH / r)) -lt 2 ]; then
      echo "note: $r ranks skipped: the global batch $MPI_BATCH does not split into ≥ 2 images per rank" >&2
      continue
    fi
    [ ${#launcher[@]} -gt 0 ] && echo "$r $((CORES / r))"
  done
}
for round in $(seq 1 "$ROUNDS"); do
  while read -r ranks threads; do
    if [ "$ranks" = ref ]; then
      run "train-plain-1x1-r$round" train - "$MPI_BATCH" 1 1 "$round" -- \
        env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$PYTHON" "${scaling_args[@]}" --threads 1
    else
      run "train-mpi-${ranks}x$threads-r$round" train - "$MPI_BATCH" "$ranks" "$threads" "$round" -- \
        env OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" \
        "${launcher[@]}" -n "$ranks" "$PYTHON" "${scaling_args[@]}" --threads "$threads"
    fi
  done < <(mpi_configs | ordered "$round")
done

echo "== summary"
"$PYTHON" tools/summarize_scaling.py "$out" > "$out/summary.md" || failed+=("summarize_scaling.py")
cat "$out/summary.md"
echo "== done in $(elapsed) s; raw outputs in $out"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED or skipped (${#failed[@]}): ${failed[*]}"
  exit 1
fi
