#!/usr/bin/env bash
# Every command and the app's training path on one NVIDIA GPU, in one go (about 6 minutes on an H100).
#   bash scripts/gpu_check.sh [OUT_DIR]          (default OUT_DIR: runs/gpu-check)
# Needs the dataset (FMNIST_DATA_DIR, or where `python -m fmnist data` finds it) and torch with CUDA.
# Each step's output is in OUT_DIR/STEP.log; a table of steps, exit codes and seconds is printed at
# the end and kept in OUT_DIR/summary.md, with the GPU's name, for the README. Steps whose optional
# package is missing (optuna, onnx, pillow) say "skipped"; the script goes on after a failure and
# exits non-zero if any step failed.
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_SMOKE=1 bash scripts/gpu_check.sh DIR   the same steps, tiny and on the CPU:
#   how tests/test_gpu_check.py keeps this script working on machines without a GPU.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-runs/gpu-check}
PY=${PYTHON:-}
[ -n "$PY" ] || { [ -x .venv/bin/python ] && PY=.venv/bin/python || PY=python3; }
DEV=${GPU_CHECK_DEVICE:-cuda}
SMOKE=${GPU_CHECK_SMOKE:-0}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.md"
failed=0

if [ "$DEV" = cuda ]; then
  gpu=$("$PY" -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' 2>/dev/null)
  if [ -z "$gpu" ]; then
    echo "error: no CUDA GPU visible to $PY (torch.cuda.is_available() is False)" >&2
    exit 2
  fi
else
  gpu="no GPU: device $DEV$([ "$SMOKE" = 1 ] && echo ', smoke sizes')"
fi
# sizes: the real check, or tiny ones (smoke) that only prove every step still runs
if [ "$SMOKE" = 1 ]; then
  SMALL=(--subset 1500 --epochs 1); REACH=(--subset 20000 --time-budget 1)
  STALL=(--budget 10 --pause 2 -- --device "$DEV" --subset 3000); CLASS=(2 --subset 1000); SLOTS=(2 --subset 1000)
  SLOT_COUNTS=1,2
else
  SMALL=(); BEST_BUDGET=120; REACH=(--time-budget 2)
  STALL=(--budget 40 --pause 20 -- --device "$DEV"); CLASS=(8); SLOTS=(10 --threads 2); SLOT_COUNTS=1,2,4
fi
now() { echo "${EPOCHREALTIME:-$(date +%s)}"; }
{
  echo "GPU check, $(date -u +%Y-%m-%d): $gpu, $("$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)')"
  echo
  echo "| step | result | seconds | figure |"
  echo "|---|---|---|---|"
} > "$SUMMARY"

has() { "$PY" -c "import $1" 2>/dev/null; }

# step NAME FIGURE_PY -- CMD...: run CMD, log it, and add a row (FIGURE_PY reads the log's JSON, may be "")
step() {
  local name=$1 figure=$2; shift 3
  local log="$OUT/$name.log" t0 t1 rc fig=""
  echo "== $name: $*"
  t0=$(now)
  "$@" > "$log" 2>&1; rc=$?
  t1=$(now)
  if [ $rc = 0 ] && [ -n "$figure" ]; then
    fig=$("$PY" -c "import json,sys; r=json.loads([l for l in open(sys.argv[1]) if l.startswith('{')][-1]); print($figure)" "$log" 2>/dev/null)
  fi
  [ $rc = 0 ] || { failed=1; fig="exit $rc: $(grep -v '^\s*$' "$log" | tail -1 | cut -c1-150)"; }
  printf '| %s | %s | %.1f | %s |\n' "$name" "$([ $rc = 0 ] && echo ok || echo FAILED)" "$(awk "BEGIN { print $t1 - $t0 }")" "$fig" >> "$SUMMARY"
  tail -2 "$log"
}
skip() { printf '| %s | skipped | | %s |\n' "$1" "$2" >> "$SUMMARY"; echo "== $1: skipped ($2)"; }

T=(-m fmnist train --device "$DEV" --json)
step quick-budget "f\"{r['test_accuracy']:.2%} test, {r['train_time_s']} s training, {r['precision']}\"" -- \
  "$PY" "${T[@]}" --preset quick --time-budget 60 "${SMALL[@]}" --out "$OUT/quick"
step quick-budget-reached "f\"{r['status']}: {r['message'][:60]}\"" -- \
  "$PY" "${T[@]}" --preset quick "${REACH[@]}" --out "$OUT/quick-reached"
step student-budget "f\"{r['test_accuracy']:.2%} test, {r['train_time_s']} s training\"" -- \
  "$PY" "${T[@]}" --preset student "${SMALL[@]}" --out "$OUT/student"
if [ "$SMOKE" = 1 ]; then
  skip best-budget "smoke run (the best model's test-set evaluation alone takes a minute on a CPU)"
else
  step best-budget "f\"{r['test_accuracy']:.2%} test, {r['train_time_s']} s, {r['message'][:70]}\"" -- \
    "$PY" "${T[@]}" --preset best --time-budget "$BEST_BUDGET" --out "$OUT/best"
fi
step stall "" -- "$PY" scripts/stall_check.py --preset quick "${STALL[@]}"
if has optuna; then
  step sweep-2-trials "f\"best trial {r['best']['number']}: {r['best']['value']:.2%}\"" -- \
    "$PY" -m fmnist sweep --arch cnn2 --epochs 2 --subset 6000 --trials 2 --param lr=1e-4:1e-2:log \
    --device "$DEV" "${SMALL[@]}" \
    --storage "sqlite:///$OUT/sweep.db" --out "$OUT/sweep" --json
else
  skip sweep-2-trials "optuna is not installed"
fi
step evaluate "f\"{r['accuracy']:.2%} test\"" -- "$PY" -m fmnist evaluate "$OUT/quick.safetensors" --json
if has PIL; then
  "$PY" - "$OUT" <<'EOF'
import sys
from pathlib import Path
from PIL import Image
from fmnist.data import load_dataset
ds = load_dataset()
for i in range(8):
    Image.fromarray(255 - ds.test_images[i].numpy()).resize((280, 280)).save(Path(sys.argv[1]) / f"test{i}.png")
EOF
  step predict "f\"{len(r['predictions'])} images classified\"" -- \
    "$PY" -m fmnist predict "$OUT/quick.safetensors" "$OUT"/test*.png --json
else
  skip predict "pillow is not installed"
fi
if has onnx && has onnxruntime; then
  step export-onnx "" -- "$PY" -m fmnist export "$OUT/quick.safetensors" --out "$OUT/quick.onnx"
else
  skip export-onnx "onnx/onnxruntime are not installed"
fi
step map-and-layers "f\"map {r['map_s']:.1f} s ({r['method']} of {r['points']}), {r['layers']} conv layers, maps on the {r['device']}\"" -- \
  "$PY" - "$OUT/quick.safetensors" "$DEV" "$SMOKE" <<'EOF'
import json, sys, time
from fmnist.checkpoints import load_checkpoint
from fmnist.data import load_dataset
from fmnist.embedding import embedding_map
from fmnist.explain import grad_cam, saliency
from fmnist.inside import conv_activations, conv_step, first_filters
path, device, smoke = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
model = load_checkpoint(path).model.to(device).eval()  # the trained model where it trained
ds = load_dataset()
t0 = time.perf_counter()
m = embedding_map(model, ds, "pca" if smoke else "tsne", n=300 if smoke else 2000)
map_s = time.perf_counter() - t0
image = ds.test_images[0]
layers = conv_activations(model, image)
step = conv_step(layers[0], 0, 5, 5)
assert step.output == step.output and first_filters(model).device.type == "cpu"
assert saliency(model, image, 0).shape == (28, 28) and grad_cam(model, image, 0).shape == (28, 28)
print(json.dumps({"map_s": map_s, "method": m.method, "points": len(m.xy), "layers": len(layers), "device": str(next(model.parameters()).device)}))
EOF
step app-training-path "f\"{r['results'][0]['runs']} student runs, 2 at once: last done after {r['results'][0]['total_s']} s\"" -- \
  "$PY" scripts/class_throughput.py "${CLASS[@]}" --slots 2 --device "$DEV" --json
step slots "' / '.join(f\"{x['slots']} at once: {x['total_s']} s\" for x in r['results'])" -- \
  "$PY" scripts/class_throughput.py "${SLOTS[@]}" --slots "$SLOT_COUNTS" --device "$DEV" --json

echo
cat "$SUMMARY"
exit $failed
