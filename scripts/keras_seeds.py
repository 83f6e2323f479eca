"""Report 004's model 1 in its own framework: Keras (TensorFlow CPU), as its text prints it, for several seeds.

    /tmp/tfvenv/bin/python scripts/keras_seeds.py 0,1,2

Conv2D(32, 3, 'valid', relu) - MaxPooling2D(2) - Flatten - Dense(128, relu) - Dense(10, softmax), Adam,
sparse categorical cross-entropy, `X/255`, an 80/20 train/validation split, 10 epochs of batch 512, the
last epoch's weights; then the 10,000 test images once. Prints one line per seed. TensorFlow is not a
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


def main(seeds: list[int]) -> None:
    x = read("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1).astype("float32") / 255.0
    y = read("train-labels-idx1-ubyte.gz", 8).astype("int64")
    xt = read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1).astype("float32") / 255.0
    yt = read("t10k-labels-idx1-ubyte.gz", 8).astype("int64")
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        idx = np.random.default_rng(seed).permutation(len(x))
        tr, va = idx[: int(0.8 * len(x))], idx[int(0.8 * len(x)) :]
        model = keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                layers.Conv2D(32, 3, padding="valid", activation="relu"),
                layers.MaxPooling2D(2),
                layers.Flatten(),
                layers.Dense(128, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        t = time.time()
        model.fit(x[tr], y[tr], epochs=10, batch_size=512, verbose=0, validation_data=(x[va], y[va]))
        acc = model.evaluate(xt, yt, verbose=0)[1]
        print(f"report 004 model 1 in Keras, seed {seed}: test accuracy {acc:.4f} ({time.time() - t:.0f} s)")


if __name__ == "__main__":
    main([int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "0,1,2").split(",")])
