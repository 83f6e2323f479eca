"""scripts/plant_bug.py: a planted bug is reported with the tests' verdict, and the file comes back intact."""

import pytest
from plant_bug import plant  # scripts/ is on the path (conftest)


def test_a_planted_bug_is_run_against_the_tests_and_removed(tmp_path):
    mod = tmp_path / "mod.py"
    mod.write_text("def double(x):\n    return 2 * x\n")
    test = tmp_path / "test_mod.py"
    test.write_text(
        f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nfrom mod import double\n\n\n"
        "def test_double():\n    assert double(3) == 6\n"
    )
    caught = plant(mod, "2 * x", "3 * x", [str(test)])
    assert caught.endswith("| 3 * x | 1 failed in " + caught.rsplit(" in ", 1)[1])
    assert mod.read_text() == "def double(x):\n    return 2 * x\n"
    assert not (tmp_path / "__pycache__").exists()  # no bytecode of the bug left to outlive the restore
    missed = plant(mod, "2 * x", "x + x", [str(test)])
    assert "1 passed" in missed and mod.read_text().count("2 * x") == 1
    with pytest.raises(SystemExit, match="occurs 0 times"):
        plant(mod, "4 * x", "5 * x", [str(test)])
