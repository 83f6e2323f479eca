"""Where the Ray driver finds its token, and the one line it gives without one (no cluster needed)."""

from __future__ import annotations

import sys

import pytest

from fmnist import ray_backend
from fmnist.ray_backend import NO_TOKEN, RayBackend, token_source


def test_token_sources_in_rays_order(tmp_path):
    home = tmp_path / "home"
    assert token_source({}, home) is None  # nothing anywhere
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("  \n")
    assert token_source({}, home) is None  # an empty file is no token
    (home / ".ray" / "auth_token").write_text("abc\n")
    assert token_source({}, home) == str(home / ".ray" / "auth_token")
    f = tmp_path / "tok"
    assert token_source({"RAY_AUTH_TOKEN_PATH": str(f)}, home) is None  # a named file that is missing wins
    f.write_text("def")
    assert token_source({"RAY_AUTH_TOKEN_PATH": str(f)}, home) == str(f)
    assert token_source({"RAY_AUTH_TOKEN": "xyz", "RAY_AUTH_TOKEN_PATH": str(f)}, home) == "RAY_AUTH_TOKEN"
    assert token_source({"RAY_AUTH_TOKEN": " "}, tmp_path / "nohome") is None


def test_no_token_is_one_line_before_ray_is_imported(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(ray_backend, "_probe", lambda address: None)  # as if a head answered there
    monkeypatch.setitem(sys.modules, "ray", None)  # importing ray would fail: it must not be reached
    with pytest.raises(ConnectionError) as e:
        RayBackend("127.0.0.1:6379")
    assert str(e.value) == NO_TOKEN and "\n" not in NO_TOKEN and "ray get-auth-token --generate" in NO_TOKEN


def test_nothing_listening_is_said_before_the_token(monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    with pytest.raises(ConnectionError, match="nothing answers there"):
        RayBackend("127.0.0.1:1")


def test_a_driver_with_token_mode_off_is_not_asked_for_a_token(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the user's explicit choice is kept
    monkeypatch.setattr(ray_backend, "_probe", lambda address: None)
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError):  # got past the token check, to importing ray
        RayBackend("127.0.0.1:6379")


class _FakeRay:
    """Just enough of `ray` for RayBackend's connection step: init fails as given."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error, says",
    [
        (ConnectionError("Failed to connect to Ray cluster"), "did not let this machine in: is its token the head's?"),
        (
            RuntimeError("first line\nsecond line"),
            "cannot reach the Ray cluster at 127.0.0.1:6379: RuntimeError: first line",
        ),
    ],
)
def test_a_failed_join_is_one_line(monkeypatch, tmp_path, error, says):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t")
    monkeypatch.setattr(ray_backend, "_probe", lambda address: None)
    monkeypatch.setitem(sys.modules, "ray", _FakeRay(error))
    with pytest.raises(ConnectionError) as e:
        RayBackend("127.0.0.1:6379")
    assert says in str(e.value) and "\n" not in str(e.value) and "second line" not in str(e.value)


class _RecordingRay:
    """A stand-in for `ray` that connects at once and records how it was asked to."""

    def __init__(self) -> None:
        self.inits: list[dict] = []
        self.shutdowns = 0
        self.connected = False

    def is_initialized(self) -> bool:
        return self.connected

    def init(self, **kwargs) -> None:
        self.inits.append(kwargs)
        self.connected = True

    def shutdown(self) -> None:
        self.shutdowns += 1
        self.connected = False

    def remote(self, cls):
        return cls


def test_one_connection_shared_and_closed_by_the_last_backend(monkeypatch):
    fake = _RecordingRay()
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)  # restored to unset afterwards
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t")
    monkeypatch.setenv("FMNIST_RAY_CPUS_PER_RUN", "3")
    monkeypatch.setattr(ray_backend, "_probe", lambda address: None)
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(ray_backend, "_USERS", 0)
    a = RayBackend("10.0.0.5:6379")
    b = RayBackend("10.0.0.5:6379", cpus_per_run=1, local_data=False)
    assert fake.inits == [
        {
            "address": "10.0.0.5:6379",
            "runtime_env": {"py_modules": [str(ray_backend.PACKAGE_DIR)]},
            "log_to_driver": False,
            "logging_level": "ERROR",
        }
    ]
    assert (a.address, a.cpus_per_run, a.local_data, a.ray) == ("10.0.0.5:6379", 3, True, fake)
    assert (b.cpus_per_run, b.local_data) == (1, False) and ray_backend._USERS == 2
    assert a._actor.__name__ == "RayRun" and a._data_ref is None and a._lock.acquire(blocking=False)
    a.close()
    assert fake.shutdowns == 0  # b still uses the connection
    b.close()
    assert fake.shutdowns == 1 and ray_backend._USERS == 0
    assert __import__("os").environ["RAY_AUTH_MODE"] == "token"


def test_make_manager_gives_the_cluster_the_settings_cpus_per_run(monkeypatch):
    from fmnist.ray_backend import make_manager
    from fmnist.settings import Settings

    fake = _RecordingRay()
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t")
    monkeypatch.delenv("FMNIST_RAY_CPUS_PER_RUN", raising=False)
    monkeypatch.setattr(ray_backend, "_probe", lambda address: None)
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(ray_backend, "_USERS", 0)
    m, note = make_manager(Settings(ray_cpus_per_run=5), "10.0.0.5:6379", heartbeat_s=None)
    try:
        assert note is None and m.backend.name == "ray" and (m.backend.cpus_per_run, m.threads) == (5, 5)
    finally:
        m.shutdown()
