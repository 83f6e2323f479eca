"""Mutation testing by sample: a seeded random sample of each module's mutants, and the kill rate per module.

mutmut makes about 8,000 mutants of fmnist/; on 2 cores the whole set takes most of a day. A sample of
k mutants per module estimates each module's kill rate within about +-1/sqrt(k), enough to say which
modules are under 90% and what survives there. Run inside a `git archive` copy of the tree, after
`mutmut run "nothing*"` has made the mutants (docs/RELIABILITY.md):

    python scripts/mutation_sample.py pick --per-module 30 --seed 0 > picked.txt
    mutmut run --max-children 2 $(cat picked.txt)
    python scripts/mutation_sample.py summary --names picked.txt     # a markdown table
    python scripts/mutation_sample.py survivors --names picked.txt   # what survived, by name
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import defaultdict
from pathlib import Path

DEF = re.compile(r"^\s*def ((?:x_\w+|xǁ\w+ǁ\w+)__mutmut_\d+)\(", re.M)
# mutmut 3's exit codes per mutant: what each one means for the kill rate
KILLED, SURVIVED, TIMEOUT, NO_TESTS = 1, 0, -24, 33


def mutants(root: Path, package: str = "fmnist") -> dict[str, list[str]]:
    """Every mutant's name, by module: {"fmnist.jobs": ["fmnist.jobs.x_cores__mutmut_1", ...]}."""
    found = {}
    for path in sorted((root / "mutants" / package).glob("*.py")):
        module = f"{package}.{path.stem}"
        names = [f"{module}.{m}" for m in DEF.findall(path.read_text(encoding="utf-8"))]
        if names:
            found[module] = names
    return found


def pick(by_module: dict[str, list[str]], per_module: int, seed: int) -> list[str]:
    """A seeded sample of `per_module` mutants of each module (all of them where it has fewer)."""
    rng = random.Random(seed)
    chosen = []
    for module in sorted(by_module):
        names = sorted(by_module[module])
        chosen += sorted(rng.sample(names, min(per_module, len(names))))
    return chosen


def results(root: Path) -> dict[str, int]:
    """Each tested mutant's exit code, from mutmut's .meta files."""
    codes = {}
    for meta in (root / "mutants").rglob("*.py.meta"):
        codes.update(
            {k: v for k, v in json.loads(meta.read_text()).get("exit_code_by_key", {}).items() if v is not None}
        )
    return codes


def module_of(name: str) -> str:
    return name.rsplit(".", 1)[0]


def tally(names: list[str], codes: dict[str, int]) -> dict[str, dict[str, int]]:
    """Per module: picked, killed (a failing test or a timeout), survived, no tests, not run."""
    rows: dict[str, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(("picked", "killed", "survived", "no_tests", "not_run"), 0)
    )
    for name in names:
        row = rows[module_of(name)]
        row["picked"] += 1
        code = codes.get(name)
        if code is None:
            row["not_run"] += 1
        elif code in (KILLED, TIMEOUT):
            row["killed"] += 1
        elif code == NO_TESTS:
            row["no_tests"] += 1
        else:
            row["survived"] += 1
    return dict(rows)


def rate(row: dict[str, int]) -> float | None:
    """Killed / run, where a mutant no test runs counts as survived. None when none ran."""
    ran = row["killed"] + row["survived"] + row["no_tests"]
    return row["killed"] / ran if ran else None


def table(rows: dict[str, dict[str, int]], totals: dict[str, int]) -> str:
    out = [
        "| module | mutants | sampled | killed | survived | no tests | rate |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for module in sorted(rows):
        r, k = rows[module], rate(rows[module])
        run = r["picked"] - r["not_run"]
        shown = "-" if k is None else f"{k:.0%}"
        out.append(
            f"| {module.split('.', 1)[1]} | {totals.get(module, 0)} | {run} | {r['killed']} | {r['survived']} | "
            f"{r['no_tests']} | {shown} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("pick", "summary", "survivors"))
    p.add_argument("--root", type=Path, default=Path("."), help="the tree mutmut ran in")
    p.add_argument("--per-module", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--names", type=Path, help="the picked names, one per line")
    a = p.parse_args(argv)
    by_module = mutants(a.root)
    if a.action == "pick":
        print("\n".join(pick(by_module, a.per_module, a.seed)))
        return
    names = a.names.read_text().split() if a.names else [n for ns in by_module.values() for n in ns]
    codes = results(a.root)
    if a.action == "summary":
        print(table(tally(names, codes), {m: len(ns) for m, ns in by_module.items()}))
    else:
        print("\n".join(n for n in names if codes.get(n) in (SURVIVED, NO_TESTS)))


if __name__ == "__main__":
    main()
