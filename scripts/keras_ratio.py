"""Our trainer against the seed's own framework: Keras (TensorFlow CPU) vs `python -m fmnist train`.

    python scripts/keras_ratio.py --keras-python /tmp/tfvenv/bin/python           # fp32, 2 rounds
    python scripts/keras_ratio.py --keras-python ... --precision auto --rounds 3 --json

Both sides are whole processes, started one after the other and alternating (Keras, ours, Keras,
ours, ...), on the same machine: the seed-000 CNN (conv32-pool-conv64-pool-dense128-dense10, Adam,
batch 128, 90/10 split, `--epochs` epochs), then the test set scored once. Keras runs in its own
virtual environment (TensorFlow is not a dependency of this project): `python -m venv /tmp/tfvenv &&
/tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0`. Reported: each run's wall time, the medians,
their ratio (Keras / ours: above 1 means ours is faster), the CPU flags and our precision.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmnist.data import find_data_dir  # noqa: E402
from fmnist.runtime import machine, machine_line  # noqa: E402

# The seed's model and training, as its report describes it, reading the same gz files as ours.
KERAS = """
import gzip, sys, time
from pathlib import Path
import numpy as np
import keras
from keras import layers

d, epochs = Path(sys.argv[1]), int(sys.argv[2])
read = lambda name, skip: np.frombuffer(gzip.open(d / name).read(), np.uint8, offset=skip)
x = read("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1).astype("float32") / 255.0
y = read("train-labels-idx1-ubyte.gz", 8)
xt = read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1).astype("float32") / 255.0
yt = read("t10k-labels-idx1-ubyte.gz", 8)
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((28, 28, 1)),
    layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
    layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
    layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10),
])
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
model.fit(x, y, batch_size=128, epochs=epochs, validation_split=0.1, verbose=0)
print("test_acc", model.evaluate(xt, yt, verbose=0)[1])
"""


def timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd[:3])} ... exited with {done.returncode}: {done.stderr.strip()[-400:]}")
    return wall, done.stdout


def ours_cmd(data: Path, epochs: int, precision: str, out: Path) -> list[str]:
    flags = f"--arch cnn2 --epochs {epochs} --batch-size 128 --precision {precision} --force --json".split()
    return [sys.executable, "-m", "fmnist", "train", *flags, "--data-dir", str(data), "--out", str(out)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keras-python", required=True, help="a Python with tensorflow-cpu (and keras) installed")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="Keras-then-ours pairs")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "auto", "bf16"], help="ours (default fp32)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    data = find_data_dir()
    out = Path("/tmp") / "keras_ratio_cnn2.safetensors"
    keras_s, ours_s, accs = [], [], {"keras": [], "ours": []}
    for _ in range(a.rounds):
        wall, text = timed([a.keras_python, "-c", KERAS, str(data), str(a.epochs)])
        keras_s.append(round(wall, 1))
        accs["keras"].append(float(text.split()[-1]))
        wall, text = timed(ours_cmd(data, a.epochs, a.precision, out))
        ours_s.append(round(wall, 1))
        accs["ours"].append(json.loads(text)["test_accuracy"])
    m = machine()
    report = {
        "machine": machine_line(m),
        "ours_precision": a.precision,
        "epochs": a.epochs,
        "keras_s": keras_s,
        "ours_s": ours_s,
        "test_acc": accs,
        "ratio": round(statistics.median(keras_s) / statistics.median(ours_s), 2),
    }
    if a.json:
        print(json.dumps(report))
    else:
        print(report["machine"])
        print(f"Keras {keras_s} s, ours ({a.precision}) {ours_s} s: ours is {report['ratio']}x Keras's speed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
