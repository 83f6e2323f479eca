"""Plant one bug by hand, run the tests that should catch it, and put the code back.

    python scripts/plant_bug.py FILE OLD NEW -- PYTEST_ARGS...

OLD must occur exactly once in FILE. Prints one line: the file, the planted text and pytest's
summary ("1 failed, ..." means the tests caught it). The file is restored even when pytest is
interrupted. docs/RELIABILITY.md lists the bugs planted this way and what caught each one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def plant(path: Path, old: str, new: str, pytest_args: list[str]) -> str:
    original = path.read_text()
    if original.count(old) != 1:
        raise SystemExit(f"plant_bug: {old!r} occurs {original.count(old)} times in {path}, not once")
    try:
        path.write_text(original.replace(old, new))
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args],
            capture_output=True,
            text=True,
            # no .pyc of the planted code: one written in the same second as the restore, for a file of the
            # same size, would be taken for the restored file's and keep the bug alive
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    finally:
        path.write_text(original)
    lines = out.stdout.strip().splitlines()
    return f"{path} | {new.strip()} | {lines[-1] if lines else out.stderr.strip()[-200:]}"


if __name__ == "__main__":
    if len(sys.argv) < 5 or sys.argv[4] != "--":
        raise SystemExit(__doc__)
    print(plant(Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[5:]))
