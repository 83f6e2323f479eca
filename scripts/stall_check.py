"""A run with a time budget, frozen mid-run as a busy class server freezes a worker: does it finish and save?

    python scripts/stall_check.py                       # student preset, 120 s budget, frozen 45 s after epoch 1
    python scripts/stall_check.py --pause 45 --budget 120 -- --device cuda

It starts `python -m fmnist train`, and when the first epoch's line appears it stops the process
(SIGSTOP) for --pause seconds, then lets it go on (SIGCONT). The frozen seconds count against the
time budget, so the learning-rate schedule jumps ahead to the clock (issue 19: this used to crash
the run at its last step with "Tried to step 81 times"). POSIX only (SIGSTOP).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="student")
    ap.add_argument("--budget", type=float, default=120.0, help="time budget in seconds (default 120)")
    ap.add_argument("--pause", type=float, default=45.0, help="seconds the process is frozen (default 45)")
    ap.add_argument("extra", nargs="*", help="more `train` flags, after --")
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp()) / "stalled.safetensors"
    cmd = [
        sys.executable,
        "-m",
        "fmnist",
        "train",
        "--preset",
        args.preset,
        "--time-budget",
        f"{args.budget:g}",
        "--out",
        str(out),
        *args.extra,
    ]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    frozen = False
    for line in proc.stdout:
        sys.stdout.write(line)
        words = line.split()
        if not frozen and len(words) > 1 and words[0] == "epoch" and words[1].startswith("1/"):
            proc.send_signal(signal.SIGSTOP)
            print(f"-- frozen for {args.pause:g} s after epoch 1", flush=True)
            time.sleep(args.pause)
            proc.send_signal(signal.SIGCONT)
            frozen = True
    rc = proc.wait()
    saved = out.is_file()
    print(f"-- exit {rc}, wall {time.monotonic() - t0:.0f} s, frozen {frozen}, checkpoint saved: {saved}")
    return 0 if rc == 0 and saved and frozen else 1


if __name__ == "__main__":
    raise SystemExit(main())
