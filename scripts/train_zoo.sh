#!/usr/bin/env bash
# Retrain every shipped checkpoint with the project's own CLI, one after another.
# Each checkpoint's model card records the exact command and the time it took.
# Usage: bash scripts/train_zoo.sh [name ...]   (default: all, in this order)
# Train on an otherwise idle machine: the cards' timings are part of the results.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p checkpoints logs
all=(quick logreg mlp mlp2 cnn2 keras1 keras2 keras3 best cnn3bn cnn2-k5 cnn2-k7 ensemble)
for name in "${@:-${all[@]}}"; do
  echo "== $name $(date +%T)"
  case "$name" in
    cnn2-k5|cnn2-k7)  # the report's ensemble members: the same CNN with other kernel sizes
      k=${name#cnn2-k}
      $PY -m fmnist train --preset cnn2 --model-kwargs "{\"kernel_size\": $k}" \
        --out "checkpoints/$name.safetensors" --force 2>&1 | tee "logs/train-$name.log" ;;
    ensemble)  # majority vote of the three kernel sizes, as in the public report
      $PY -m fmnist ensemble checkpoints/cnn2.safetensors checkpoints/cnn2-k5.safetensors \
        checkpoints/cnn2-k7.safetensors --vote majority --out checkpoints/ensemble.safetensors --force 2>&1 \
        | tee logs/train-ensemble.log ;;
    *)
      $PY -m fmnist train --preset "$name" --out "checkpoints/$name.safetensors" --force 2>&1 \
        | tee "logs/train-$name.log" ;;
  esac
done
