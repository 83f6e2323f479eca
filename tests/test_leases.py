"""app_support.leases: a sweep's stop signal follows its browser session, with a grace period."""

from app_support import leases
from app_support.leases import Lease, forget, register, release_sweeps, touch_sweeps


def test_a_lease_stops_by_hand_or_after_its_session_is_gone_for_the_grace_period(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(leases.time, "monotonic", lambda: now[0])
    lease = Lease(grace_s=60)
    assert not lease.is_set()
    lease.release()  # the tab closed
    now[0] = 160.0
    assert not lease.is_set()  # exactly the grace period: still kept
    now[0] = 160.5
    assert lease.is_set()
    lease.touch()  # the tab came back (a dropped connection)
    assert not lease.is_set()
    lease.stop()
    assert lease.is_set()


def test_the_registry_releases_touches_and_forgets_a_sessions_leases(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(leases.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(leases, "_LEASES", {})
    a, b, other = Lease(10), Lease(10), Lease(10)
    register("tab1", a)
    register("tab1", b)
    register("tab2", other)
    release_sweeps("tab1")
    now[0] = 11.0
    assert a.is_set() and b.is_set() and not other.is_set()  # only that session's sweeps
    touch_sweeps("tab1")
    assert not a.is_set() and not b.is_set()
    forget("tab1", a)
    assert leases._LEASES["tab1"] == [b]
    forget("tab1", b)
    assert "tab1" not in leases._LEASES and leases._LEASES["tab2"] == [other]  # no entry left behind
    forget("tab3", a)  # an unknown session or lease: nothing happens
    release_sweeps("tab3")
    assert {"tab2": [other]} == leases._LEASES
