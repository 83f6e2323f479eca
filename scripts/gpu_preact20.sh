#!/usr/bin/env bash
# preact20's seeds (issue 23) on one GPU, all at once, each continuing its snapshot, within a time limit.
#   bash scripts/gpu_preact20.sh OUT_DIR [SECONDS] [SEEDS]      (defaults: 540 s, seeds "0 1 2")
# Each seed is its own process: `python -m fmnist train --arch preact20 --seed S --precision fp32
# --snapshot SNAPSHOTS/preact20-seedS.snapshot --out OUT_DIR/preact20-seedS.safetensors`, on the
# recipe's 200 epochs. SNAPSHOTS is checkpoints/unfinished (the repository's copies: a run begun on a
# CPU goes on from its last epoch; a seed without one starts at epoch 1). After SECONDS the runs are
# stopped (SIGTERM: each keeps its last whole epoch), and every snapshot is copied into OUT_DIR, so
# that the device machine's copy comes back; copy them to checkpoints/unfinished/ to go on later. A
# finished seed leaves OUT_DIR/preact20-seedS.safetensors and its --json line (test accuracy) in
# OUT_DIR/seedS.json. A summary line per seed is printed at the end.
# fp32 everywhere: the seed-0 run began on a CPU in fp32. The dataset: FMNIST_DATA_DIR, as for any command.
#   GPU_DEVICE=cpu SNAPSHOTS=DIR TRAIN_EXTRA="--epochs 2 --subset 600" bash scripts/gpu_preact20.sh OUT 60 "0 1"
#   the same on the CPU, tiny: how tests/test_gpu_check.py keeps it working without a GPU.
set -u
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash scripts/gpu_preact20.sh OUT_DIR [SECONDS] [SEEDS]}
SECONDS_LIMIT=${2:-540}
SEEDS=${3:-0 1 2}
PY=${PYTHON:-}
[ -n "$PY" ] || { [ -x .venv/bin/python ] && PY=.venv/bin/python || PY=python3; }
DEV=${GPU_DEVICE:-cuda}
SNAPS=${SNAPSHOTS:-checkpoints/unfinished}
read -r -a EXTRA <<< "${TRAIN_EXTRA:-}"
mkdir -p "$OUT" "$SNAPS"
# "epoch E/N" of a snapshot, read as a continuing run reads it (fmnist.snapshot.progress)
EPOCH_OF='import sys; from fmnist.snapshot import progress; print("epoch %d/%d" % progress(sys.argv[1]))'
pids=()
for s in $SEEDS; do
  "$PY" -m fmnist train --arch preact20 --seed "$s" --precision fp32 --device "$DEV" "${EXTRA[@]}" \
    --snapshot "$SNAPS/preact20-seed$s.snapshot" --out "$OUT/preact20-seed$s.safetensors" --force --json \
    > "$OUT/seed$s.json" 2> "$OUT/seed$s.log" &
  pids+=($!)
done
# the time limit, in bash alone (no GNU timeout): SIGTERM to every run still going after SECONDS_LIMIT.
# A run killed between epochs or while writing keeps its previous snapshot whole (an atomic write).
t0=$SECONDS
stopped=0
while :; do
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  if [ $stopped = 0 ] && [ $((SECONDS - t0)) -ge "$SECONDS_LIMIT" ]; then
    stopped=1
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  fi
  sleep 1
done
failed=0
i=0
for s in $SEEDS; do
  wait "${pids[$i]}"; rc=$?
  i=$((i + 1))
  [ -f "$SNAPS/preact20-seed$s.snapshot" ] && cp "$SNAPS/preact20-seed$s.snapshot" "$OUT/"
  epoch=$("$PY" -c "$EPOCH_OF" "$SNAPS/preact20-seed$s.snapshot" 2>/dev/null)
  if [ $rc = 0 ]; then
    acc=$("$PY" -c "import json,sys; print(json.loads(open(sys.argv[1]).read())['test_accuracy'])" "$OUT/seed$s.json" 2>/dev/null)
    echo "seed $s: finished (${epoch:-no epoch}), test accuracy ${acc:-?}"
  elif [ $stopped = 1 ]; then
    echo "seed $s: stopped at the time limit after ${epoch:-no whole epoch}; its snapshot is in $OUT"
  else
    echo "seed $s: failed (exit $rc): $(tail -1 "$OUT/seed$s.log")"
    failed=1
  fi
done
exit $failed
