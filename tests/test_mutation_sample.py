"""scripts/mutation_sample.py: the names it finds, the sample it picks, and the rate it reports."""

import json

from mutation_sample import mutants, pick, rate, results, table, tally  # scripts/ is on the path (conftest)


def _tree(tmp_path):
    pkg = tmp_path / "mutants" / "fmnist"
    pkg.mkdir(parents=True)
    (pkg / "a.py").write_text(
        "def x_f__mutmut_orig(x):\n    return x\n"
        + "".join(f"def x_f__mutmut_{i}(x):\n    return x\n" for i in range(1, 6))
        + "class C:\n    def xǁCǁg__mutmut_1(self):\n        pass\n"
    )
    (pkg / "b.py").write_text("".join(f"def x_h__mutmut_{i}(x):\n    return x\n" for i in range(1, 3)))
    (pkg / "empty.py").write_text("X = 1\n")
    return tmp_path


def test_mutants_are_found_by_module_and_the_original_is_not_one(tmp_path):
    found = mutants(_tree(tmp_path))
    assert sorted(found) == ["fmnist.a", "fmnist.b"]
    assert len(found["fmnist.a"]) == 6 and "fmnist.a.xǁCǁg__mutmut_1" in found["fmnist.a"]
    assert found["fmnist.b"] == ["fmnist.b.x_h__mutmut_1", "fmnist.b.x_h__mutmut_2"]


def test_the_sample_takes_k_per_module_the_same_for_one_seed(tmp_path):
    found = mutants(_tree(tmp_path))
    chosen = pick(found, 3, seed=0)
    assert len([n for n in chosen if n.startswith("fmnist.a.")]) == 3
    assert [n for n in chosen if n.startswith("fmnist.b.")] == found["fmnist.b"]  # fewer than k: all
    assert pick(found, 3, seed=0) == chosen
    assert {tuple(pick(found, 3, seed=s)) for s in range(10)} != {tuple(chosen)}


def test_the_rate_counts_timeouts_as_killed_and_untested_mutants_as_survivors(tmp_path):
    root = _tree(tmp_path)
    codes = {"fmnist.a.x_f__mutmut_1": 1, "fmnist.a.x_f__mutmut_2": -24, "fmnist.a.x_f__mutmut_3": 0}
    codes |= {"fmnist.a.x_f__mutmut_4": 33, "fmnist.b.x_h__mutmut_1": 1}
    (root / "mutants" / "fmnist" / "a.py.meta").write_text(json.dumps({"exit_code_by_key": codes}))
    read = results(root)
    assert read == codes
    names = [f"fmnist.a.x_f__mutmut_{i}" for i in range(1, 6)] + ["fmnist.b.x_h__mutmut_1"]
    rows = tally(names, read)
    assert rows["fmnist.a"] == {"picked": 5, "killed": 2, "survived": 1, "no_tests": 1, "not_run": 1}
    assert rate(rows["fmnist.a"]) == 0.5 and rate(rows["fmnist.b"]) == 1.0
    assert rate({"killed": 0, "survived": 0, "no_tests": 0}) is None
    text = table(rows, {"fmnist.a": 6, "fmnist.b": 2})
    assert "| a | 6 | 4 | 2 | 1 | 1 | 50% |" in text and "| b | 2 | 1 | 1 | 0 | 0 | 100% |" in text
