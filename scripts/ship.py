"""Ship a trained checkpoint under its name in fmnist.checkpoints.SHIPPED, its weights unchanged.

    python scripts/ship.py SRC NAME [--note TEXT] [--dir checkpoints] [--force]

For a run that was not written straight to checkpoints/NAME.safetensors by NAME's shipped command: one
trained in pieces (`train --snapshot`), on another machine, or before a preset took its recipe. The
card then carries NAME and the shipped command (what tests/test_shipped.py checks), keeps the command
that ran as `trained_as`, and `--note` says how it ran. Refused in one line unless the run finished and
its options are those the shipped command trains (device, precision and log_every aside): see
fmnist.shipping.ship. A vote is not shipped by copy: its own `python -m fmnist ensemble` command writes it,
and a vote that links NAME is named after a replace, to be made again (its checksum of NAME no longer holds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from fmnist.checkpoints import CheckpointError, shipped_command  # noqa: E402
from fmnist.config import ConfigError  # noqa: E402
from fmnist.shipping import ship, votes_linking  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", help="the trained checkpoint")
    p.add_argument("name", help="its shipped name (a key of fmnist.checkpoints.SHIPPED)")
    p.add_argument("--note", help="how it ran, when not by the shipped command itself")
    p.add_argument("--dir", default=str(ROOT / "checkpoints"), help="the shipped folder (default: checkpoints/)")
    p.add_argument("--force", action="store_true", help="replace NAME's file if it is there")
    a = p.parse_args(argv)
    try:
        out = ship(a.src, a.name, a.dir, note=a.note, force=a.force)
    except (CheckpointError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"shipped {a.src} as {out}")
    for vote in votes_linking(a.name):
        print(f"{vote} links {a.name}: make it again: {shipped_command(vote)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
