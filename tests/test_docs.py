"""scripts/docs_check.py: the docs say what the tree does, and a hand edit of a generated table is caught."""

from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import docs_check

RESULTS = ROOT / "docs" / "RESULTS.md"


def test_the_docs_match_the_tree():
    assert docs_check.check() == []
    assert docs_check.main([]) == 0


def test_a_hand_edited_calibration_table_fails():
    text = RESULTS.read_text()
    assert "| resnet64 | 0.568 |" in text
    problems = docs_check.check_generated(ROOT, RESULTS, text.replace("| resnet64 | 0.568 |", "| resnet64 | 0.667 |"))
    assert problems == [
        "RESULTS.md: the table from scripts/calibration_table.py is stale (run it and paste its output)"
    ]
    assert docs_check.check_generated(ROOT, RESULTS, text) == []


def test_paths_commands_and_variables_that_do_not_exist_are_named():
    doc = ROOT / "docs" / "X.md"
    text = (
        "Run `scripts/nope.py` and `docs/TEACHING.md`, then `python -m fmnist train --epochs 2 --nope 3`,\n"
        "`python -m fmnist fly`, `make demo`, `make lunch`; set " + "FMNIST_" + "NOPE, or `scripts/NAME.py`.\n"
    )
    problems = docs_check.check_paths(ROOT, {doc: text}) + docs_check.check_commands(ROOT, {doc: text})
    problems += docs_check.check_vars(ROOT, {doc: text})
    assert sorted(problems) == sorted(
        [
            "X.md: `scripts/nope.py` does not exist",
            "X.md: `python -m fmnist train` has no --nope",
            "X.md: `python -m fmnist fly` is not a command",
            "X.md: `make lunch` is not a Makefile target",
            "X.md: " + "FMNIST_" + "NOPE is read nowhere in the code",  # (spelt in two parts: no literal here)
        ]
        + [
            f"DEPLOY.md: {v} is read by the code but missing from the variables table"
            for v in sorted(docs_check.code_vars(ROOT))
        ]
    )


def test_every_variable_the_code_reads_is_in_deploys_table():
    deploy = ROOT / "docs" / "DEPLOY.md"
    text = deploy.read_text()
    assert docs_check.check_vars(ROOT, {deploy: text}) == []
    cut = "\n".join(line for line in text.splitlines() if "`FMNIST_SWEEP_STORAGE`" not in line)
    assert docs_check.check_vars(ROOT, {deploy: cut}) == [
        "DEPLOY.md: FMNIST_SWEEP_STORAGE is read by the code but missing from the variables table"
    ]
