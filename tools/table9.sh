#!/usr/bin/env bash
# Reproduce "Where LAB goes" (the paper's Table 9 on Imagenette): LAB-BNN trained with the Imagenette recipe for
# every LAB placement below, two runs at a time with one thread each, then the packed models timed in one sitting.
#
# Usage: tools/table9.sh [RUNS_DIR]          (default ./runs/table9)
#
# Each run is RUNS_DIR/lab-MASK-sSEED (checkpoint.npz, metrics.jsonl, train.log).  The script can be stopped at
# any moment and started again: a run with a checkpoint continues with --resume, a finished run (marked by a file
# `finished` written after it exits 0) is skipped.  When every run has finished it copies each run's
# metrics.jsonl to docs/table9/ (the checkpoints stay in RUNS_DIR), times the packed models in one sitting
# (tools/table9_latency.py: `python -m minilab.bench model` per mask, into docs/table9/latency.json; on quiet
# cores, so nothing else should run then) and prints the table and draws the figure
# (`python -m minilab.plot --placement docs/table9`).
#
# Environment: PYTHON [python3]  DATA [imagenette]  PARALLEL [2]  NICE [0; e.g. 19 to run beside other work]
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/table9}
PYTHON=${PYTHON:-python3}
DATA=${DATA:-imagenette}
PARALLEL=${PARALLEL:-2}
NICE=${NICE:-0}
# mask seed: the seven placements, and a second seed where the table shows the noise between seeds
JOBS="0000:0 1111:0 0111:0 0011:0 0001:0 1000:0 1110:0 0000:1 0111:1 1111:1"
RECIPE=(--arch labbnn --data "$DATA" --image-size 64 --width 0.5 --epochs 30 --batch-size 32 --augment padcrop
        --threads 1 --no-progress)
mkdir -p "$RUNS"

run_one() {   # mask seed
    local dir="$RUNS/lab-$1-s$2" resume=()
    [ -f "$dir/finished" ] && return 0
    [ -f "$dir/checkpoint.npz" ] && resume=(--resume)
    echo "$(date -u +%FT%TZ) start lab-$1-s$2 ${resume[*]}"
    if nice -n "$NICE" "$PYTHON" -m minilab.train "${RECIPE[@]}" --lab-blocks "$1" --seed "$2" --out "$dir" \
         "${resume[@]}" >> "$RUNS/lab-$1-s$2.log" 2>&1; then
        touch "$dir/finished"
        echo "$(date -u +%FT%TZ) finished lab-$1-s$2"
    else
        echo "$(date -u +%FT%TZ) lab-$1-s$2 stopped (exit $?); run this script again to continue it"
    fi
}

start=$(date +%s)
for job in $JOBS; do
    while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do wait -n; done
    run_one "${job%%:*}" "${job##*:}" &
done
wait
echo "training: $(( ($(date +%s) - start) / 60 )) min"

for job in $JOBS; do
    [ -f "$RUNS/lab-${job%%:*}-s${job##*:}/finished" ] || { echo "not every run has finished: run again"; exit 1; }
done
mkdir -p docs/table9
for job in $JOBS; do
    cp "$RUNS/lab-${job%%:*}-s${job##*:}/metrics.jsonl" "docs/table9/lab-${job%%:*}-s${job##*:}.jsonl"
done
echo "metrics copied to docs/table9/"
"$PYTHON" tools/table9_latency.py docs/table9 --rounds 2 || exit 1
"$PYTHON" -m minilab.plot --placement docs/table9 --out docs/_static/where_lab_goes.png
