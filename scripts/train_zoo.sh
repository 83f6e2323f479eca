#!/usr/bin/env bash
# Retrain every shipped checkpoint with the project's own CLI, one after another.
# Each checkpoint's model card records the exact command and the wall time it took.
# Usage: bash scripts/train_zoo.sh [name ...]   (default: all, in this order)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p checkpoints logs
all=(quick logreg mlp mlp2 cnn2 keras1 keras2 keras3 best cnn3bn)
for name in "${@:-${all[@]}}"; do
  echo "== $name $(date +%T)"
  $PY -m fmnist train --preset "$name" --out "checkpoints/$name.safetensors" --force 2>&1 | tee "logs/train-$name.log"
done
if [ $# -eq 0 ]; then
  echo "== ensemble $(date +%T)"
  $PY -m fmnist ensemble checkpoints/cnn2.safetensors checkpoints/keras2.safetensors \
    checkpoints/cnn3bn.safetensors checkpoints/best.safetensors --vote soft \
    --out checkpoints/ensemble.safetensors | tee logs/train-ensemble.log
fi
