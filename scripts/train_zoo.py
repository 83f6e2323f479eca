"""Retrain shipped checkpoints with the project's own CLI, one after another.

The list and the commands are fmnist.checkpoints.SHIPPED; each card records its command and time.
Usage: python scripts/train_zoo.py [NAME ...]   (default: all, in SHIPPED's order)
Train on an otherwise idle machine: the cards' timings are part of the results.
"""

import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from fmnist.checkpoints import SHIPPED, shipped_command  # noqa: E402


def main(names: list[str]) -> int:
    unknown = set(names) - set(SHIPPED)
    if unknown:
        print(f"error: not shipped: {', '.join(sorted(unknown))}; shipped: {', '.join(SHIPPED)}", file=sys.stderr)
        return 2
    (ROOT / "logs").mkdir(exist_ok=True)
    for name in names or list(SHIPPED):
        args = shlex.split(shipped_command(name))[1:]  # drop "python": run this interpreter
        print(f"== {name} {time.strftime('%H:%M:%S')}: {shipped_command(name)}", flush=True)
        with open(ROOT / "logs" / f"train-{name}.log", "w") as log:
            code = subprocess.run([sys.executable, *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
        if code:
            print(f"error: {name} failed (exit {code}); see logs/train-{name}.log", file=sys.stderr)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
