"""fmnist.settings: every FMNIST_* variable read in one place, with one-line errors, used by the CLI and the app."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

from conftest import ROOT
from fmnist.settings import CHECKPOINT_DIR, SWEEP_STORAGE, VARS, Settings, SettingsError, table

PRODUCT = [*ROOT.glob("fmnist/*.py"), *ROOT.glob("app_support/*.py"), *ROOT.glob("views/*.py"), ROOT / "app.py"]
ENV_READERS = {"fmnist/settings.py", "fmnist/ray_backend.py"}  # ray_backend: Ray's own RAY_AUTH_* variables
NAMES = {v.name for v in VARS}


def env_reads(path: Path) -> list[str]:
    """Where a file touches the process environment, or names an FMNIST_* variable as a bare string."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv", "unsetenv"):
            found.append(f"{node.lineno}: os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"{node.lineno}: from os import {a.name}" for a in node.names if a.name in ("environ", "getenv")]
        elif isinstance(node, ast.Constant) and node.value in NAMES:
            found.append(f"{node.lineno}: {node.value!r}")
    return found


def test_nothing_but_settings_reads_the_environment():
    assert len(PRODUCT) > 40  # the scan saw the tree
    offenders = {str(p.relative_to(ROOT)): env_reads(p) for p in PRODUCT if str(p.relative_to(ROOT)) not in ENV_READERS}
    assert {k: v for k, v in offenders.items() if v} == {}
    ray = env_reads(ROOT / "fmnist/ray_backend.py")
    assert ray and not any("FMNIST_" in r for r in ray)  # it reads the environment, but only Ray's variables


@pytest.mark.parametrize(
    "source",
    [
        'import os\nx = os.environ.get("FMNIST_SERVER_THREADS", "1")\n',
        'import os\nx = os.getenv("HOME")\n',
        "from os import environ\n",
        'KEY = "FMNIST_MAX_TRAININGS"\n',
    ],
)
def test_the_scan_finds_an_environment_read(tmp_path, source):
    f = tmp_path / "m.py"
    f.write_text(source)
    assert env_reads(f)


def test_defaults_and_the_variables_table_come_from_one_list():
    s = Settings()
    assert {v.field for v in VARS} == set(Settings.__dataclass_fields__)
    assert all(getattr(s, v.field) == v.default for v in VARS)
    assert Settings.from_env({}) == s
    assert s.checkpoint_dir == CHECKPOINT_DIR == ROOT / "checkpoints" and s.sweep_storage == SWEEP_STORAGE
    assert s.max_saved_bytes == 2048 * 2**20
    rows = table().split("\n")
    assert rows[:2] == ["| variable | default | what it sets |", "|---|---|---|"] and len(rows) == 2 + len(VARS)
    assert all(t == f"| `{v.name}` | {v.shown} | {v.help} |" for v, t in zip(VARS, rows[2:]))


def test_every_variable_is_read_and_parsed():
    env = {
        "FMNIST_MAX_TRAININGS": "3",
        "FMNIST_ORPHAN_GRACE_S": "2.5",
        "FMNIST_MAX_SAVED_MODELS": "7",
        "FMNIST_MAX_SAVED_MB": "1.5",
        "FMNIST_CHECKPOINT_DIR": "/srv/models",
        "FMNIST_DATA_DIR": "/srv/data",
        "FMNIST_DATA_MIRROR": "http://proxy.school/fm/",
        "FMNIST_RAY_ADDRESS": "10.0.0.5:6379",
        "FMNIST_RAY_CPUS_PER_RUN": "4",
        "FMNIST_SERVER_THREADS": "2",
        "FMNIST_SWEEP_STORAGE": "postgresql://db/sweeps",
        "FMNIST_TEACHER_KEY": " chalk-and-talk ",
    }
    assert set(env) == NAMES
    s = Settings.from_env(env)
    assert s == Settings(
        3,
        2.5,
        7,
        1.5,
        Path("/srv/models"),
        Path("/srv/data"),
        "http://proxy.school/fm/",
        "10.0.0.5:6379",
        4,
        2,
        "postgresql://db/sweeps",
        "chalk-and-talk",
    )
    assert s.max_saved_bytes == int(1.5 * 2**20)
    assert Settings.from_env({"FMNIST_MAX_TRAININGS": " 2 ", "FMNIST_DATA_DIR": ""}) == Settings(max_trainings=2)


@pytest.mark.parametrize(
    "name, raw, says",
    [
        ("FMNIST_MAX_TRAININGS", "0", "an integer of at least 1"),
        ("FMNIST_MAX_TRAININGS", "two", "an integer of at least 1"),
        ("FMNIST_MAX_TRAININGS", "1.5", "an integer of at least 1"),
        ("FMNIST_ORPHAN_GRACE_S", "-1", "a number of at least 0"),
        ("FMNIST_ORPHAN_GRACE_S", "nan", "a number of at least 0"),
        ("FMNIST_ORPHAN_GRACE_S", "inf", "a number of at least 0"),
        ("FMNIST_MAX_SAVED_MB", "0.5", "a number of at least 1"),
        ("FMNIST_SERVER_THREADS", "0", "an integer of at least 1"),
        ("FMNIST_RAY_ADDRESS", "auto", "host:port"),
        ("FMNIST_RAY_ADDRESS", "head:99999", "host:port"),
        ("FMNIST_RAY_ADDRESS", "head:65536", "host:port"),
        ("FMNIST_RAY_ADDRESS", "head:0", "host:port"),
        ("FMNIST_RAY_ADDRESS", "head:", "host:port"),
        ("FMNIST_RAY_ADDRESS", ":6379", "host:port"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(name, raw, says):
    with pytest.raises(SettingsError) as e:
        Settings.from_env({name: raw})
    assert str(e.value) == f"{name} must be {says}" + (
        f" (the Ray head's address), got {raw!r}" if says == "host:port" else f", got {raw!r}"
    )


@pytest.mark.parametrize("address", ["head:1", "head:65535", "10.0.0.5:6379", "[::1]:6379"])
def test_a_ray_address_is_host_and_port(address):
    assert Settings.from_env({"FMNIST_RAY_ADDRESS": address}).ray_address == address


def test_lowest_values_are_accepted():
    s = Settings.from_env({"FMNIST_MAX_TRAININGS": "1", "FMNIST_ORPHAN_GRACE_S": "0", "FMNIST_MAX_SAVED_MB": "1"})
    assert (s.max_trainings, s.orphan_grace_s, s.max_saved_mb) == (1, 0.0, 1.0)


def test_the_cli_saves_into_the_checkpoint_folder_the_app_lists(tmp_path, monkeypatch, capsys):
    from fmnist.cli import main

    monkeypatch.setenv("FMNIST_CHECKPOINT_DIR", str(tmp_path / "shared"))
    code = main(["train", "--arch", "logreg", "--epochs", "1", "--subset", "500", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and Path(out["checkpoint"]).parent == tmp_path / "shared"


def test_the_cli_names_a_bad_variable_in_one_line(monkeypatch, capsys):
    from fmnist.cli import main

    monkeypatch.setenv("FMNIST_CHECKPOINT_DIR", "/x")
    monkeypatch.setenv("FMNIST_MAX_TRAININGS", "many")
    assert main(["data"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: FMNIST_MAX_TRAININGS must be an integer of at least 1, got 'many'"


def test_the_cli_data_dir_goes_to_the_core_not_into_the_environment(tmp_path, monkeypatch, capsys, ds):
    from fmnist.cli import main

    monkeypatch.delenv("FMNIST_DATA_DIR", raising=False)
    assert main(["data", "--data-dir", str(ds.root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["root"] == str(ds.root)
    assert "FMNIST_DATA_DIR" not in os.environ
    assert main(["data", "--data-dir", str(tmp_path)]) == 2  # that folder, and no other
    assert "missing in" in capsys.readouterr().err


def test_the_job_manager_takes_its_limits_from_settings():
    from fmnist.jobs import JobManager, default_max_running

    s = Settings(max_trainings=3, orphan_grace_s=5.0)
    m = JobManager(settings=s, heartbeat_s=None)
    try:
        assert (m.max_running, m.orphan_grace_s) == (3, 5.0)
    finally:
        m.shutdown()
    assert default_max_running(8, Settings(), gpus=0) == 8 and default_max_running(2, Settings(), gpus=0) == 2
    assert default_max_running(2, Settings(max_trainings=5)) == 5


def test_the_job_manager_on_a_cluster_hands_it_every_run_unless_limited():
    from fmnist.jobs import CLUSTER_MAX_RUNNING, JobManager

    class Cluster:  # what JobManager asks of a backend that queues runs itself
        queues_itself, cpus_per_run = True, 3

        def close(self):
            pass

    m = JobManager(backend=Cluster(), heartbeat_s=None, settings=Settings())
    assert (m.max_running, m.threads) == (CLUSTER_MAX_RUNNING, 3)
    m.shutdown()
    m = JobManager(backend=Cluster(), heartbeat_s=None, settings=Settings(max_trainings=6))
    assert m.max_running == 6
    m.shutdown()


def test_folder_limits_follow_settings():
    from fmnist.checkpoints import FolderLimits

    assert FolderLimits.from_settings(Settings(max_saved_models=7, max_saved_mb=1.5)) == FolderLimits(
        7, int(1.5 * 2**20)
    )
    assert FolderLimits() == FolderLimits.from_settings(Settings())


def test_a_teachers_key_has_six_characters_at_least():
    with pytest.raises(SettingsError) as e:
        Settings.from_env({"FMNIST_TEACHER_KEY": "12345"})
    assert str(e.value) == "FMNIST_TEACHER_KEY must be at least 6 characters long, got 5"
    assert Settings.from_env({"FMNIST_TEACHER_KEY": "123456"}).teacher_key == "123456"
    assert Settings.from_env({"FMNIST_TEACHER_KEY": "  "}).teacher_key is None  # blank: no board
