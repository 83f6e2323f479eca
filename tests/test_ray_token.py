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
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t")
    monkeypatch.setattr(ray_backend, "_probe", lambda address: None)
    monkeypatch.setitem(sys.modules, "ray", _FakeRay(error))
    with pytest.raises(ConnectionError) as e:
        RayBackend("127.0.0.1:6379")
    assert says in str(e.value) and "\n" not in str(e.value) and "second line" not in str(e.value)
