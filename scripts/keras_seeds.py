"""A seed report's model in its own framework: Keras (TensorFlow CPU), as its text prints it, for several seeds.

    /tmp/tfvenv/bin/python scripts/keras_seeds.py 0,1,2 [keras1|mlp|mlp-as-printed]

keras1 (report 004's model 1): Conv2D(32, 3, 'valid', relu) - MaxPooling2D(2) - Flatten - Dense(128, relu) -
Dense(10, softmax), Adam, sparse categorical cross-entropy, `X/255`, an 80/20 train/validation split, 10
epochs of batch 512, the last epoch's weights.
mlp (report 002): Flatten - Dense(128, relu) - Dropout(0.2) - Dense(10, softmax), Adam, sparse categorical
cross-entropy, all 60,000 images, `fit(epochs=10)` at Keras's default batch 32, the last epoch's weights,
images / 255. mlp-as-printed: the same, but as the report's listing prints its loader, whose
`# train_images = train_images / 255.0` is commented out: training images 0..255, test images / 255.
Then the 10,000 test images once. Prints one line per seed. TensorFlow is not a
dependency of this project: `python -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0`
(as scripts/keras_ratio.py). It reads the dataset from $FMNIST_DATA_DIR or Debian's folder.
"""

import gzip
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np
from keras import layers

DATA = Path(os.environ.get("FMNIST_DATA_DIR", "/usr/share/datasets/fashion-mnist"))


def read(name: str, skip: int) -> np.ndarray:
    return np.frombuffer(gzip.open(DATA / name).read(), np.uint8, offset=skip)


def build(name: str) -> keras.Sequential:
    if name == "keras1":
        body = [
            layers.Conv2D(32, 3, padding="valid", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
        ]
    else:
        body = [layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(0.2)]
    return keras.Sequential([keras.Input((28, 28, 1)), *body, layers.Dense(10, activation="softmax")])


def main(seeds: list[int], name: str) -> None:
    raw = read("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1).astype("float32")
    x = raw if name == "mlp-as-printed" else raw / 255.0
    y = read("train-labels-idx1-ubyte.gz", 8).astype("int64")
    xt = read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1).astype("float32") / 255.0
    yt = read("t10k-labels-idx1-ubyte.gz", 8).astype("int64")
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        model = build(name)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        t = time.time()
        if name == "keras1":
            idx = np.random.default_rng(seed).permutation(len(x))
            tr, va = idx[: int(0.8 * len(x))], idx[int(0.8 * len(x)) :]
            model.fit(x[tr], y[tr], epochs=10, batch_size=512, verbose=0, validation_data=(x[va], y[va]))
        else:  # report 002 watches the test set during fit; that selects nothing, so it is left out
            model.fit(x, y, epochs=10, batch_size=32, verbose=0)
        acc = model.evaluate(xt, yt, verbose=0)[1]
        print(f"{name} in Keras, seed {seed}: test accuracy {acc:.4f} ({time.time() - t:.0f} s)")


if __name__ == "__main__":
    which = sys.argv[2] if len(sys.argv) > 2 else "keras1"
    if which not in ("keras1", "mlp", "mlp-as-printed"):
        sys.exit(f"unknown model {which!r}: keras1, mlp or mlp-as-printed")
    main([int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "0,1,2").split(",")], which)
