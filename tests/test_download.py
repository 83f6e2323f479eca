"""fmnist.data.download against a mirror on loopback ($FMNIST_DATA_MIRROR): checksummed, atomic, shared."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from conftest import ROOT
from fmnist import data
from fmnist.data import GZ_BYTES, RAW_SHA256, DatasetError, download, load_dataset
from mirror import LoopbackMirror


@pytest.fixture
def mirror(monkeypatch):
    with LoopbackMirror() as m:
        monkeypatch.setenv("FMNIST_DATA_MIRROR", m.url)
        yield m


def test_download_from_the_mirror_verifies_and_reports_progress(mirror, tmp_path):
    seen = []
    got = download(tmp_path / "d", progress=lambda frac, name: seen.append((frac, name)))
    assert got == tmp_path / "d"
    assert sorted(p.name for p in got.iterdir() if not p.name.startswith(".")) == sorted(RAW_SHA256)
    assert load_dataset(got).verified
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and 0 < fractions[0] < 0.01
    assert {n for _, n in seen} == set(RAW_SHA256) and sum(GZ_BYTES.values()) == 30_878_645
    assert mirror.requests == {name: 1 for name in RAW_SHA256}
    download(got)  # everything is there and right: nothing is fetched again
    assert mirror.requests == {name: 1 for name in RAW_SHA256}


def test_a_wrong_file_is_refused_and_nothing_is_kept(mirror, tmp_path):
    mirror.files["t10k-labels-idx1-ubyte.gz"] = b"\x1f\x8b not the labels"
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz is not Fashion-MNIST's .*nothing was kept"):
        download(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert "t10k-labels-idx1-ubyte.gz" not in names and not [n for n in names if n.endswith(".part")]
    assert "t10k-images-idx3-ubyte.gz" in names  # the good files before it stay: a retry fetches only the rest


def test_a_file_the_mirror_lacks_and_an_unreachable_mirror_say_so(mirror, tmp_path, monkeypatch):
    del mirror.files["train-labels-idx1-ubyte.gz"]
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte.gz: the server answered 404"):
        download(tmp_path)
    monkeypatch.setenv("FMNIST_DATA_MIRROR", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(DatasetError, match=r"cannot download http://127.0.0.1:9/train-images.*online"):
        download(tmp_path / "other")


def test_two_downloads_into_one_folder_take_turns(mirror, tmp_path):
    errors = []

    def one():
        try:
            download(tmp_path)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and mirror.requests == {name: 1 for name in RAW_SHA256}  # each file fetched once
    assert load_dataset(tmp_path).verified


def test_the_download_goes_where_the_data_is_looked_for(monkeypatch, tmp_path):
    monkeypatch.setenv("FMNIST_DATA_DIR", str(tmp_path / "here"))
    assert data.download_dir() == tmp_path / "here"
    monkeypatch.delenv("FMNIST_DATA_DIR")
    assert data.download_dir() == ROOT / "data" and data.LOCAL_DIR in data.candidate_dirs()
    monkeypatch.setenv("FMNIST_DATA_MIRROR", "http://example.invalid/x")
    assert data.mirror_url() == "http://example.invalid/x/"
    monkeypatch.delenv("FMNIST_DATA_MIRROR")
    assert data.mirror_url() == data.MIRROR


def test_cli_download_one_line_either_way(mirror, tmp_path):
    env = {"FMNIST_DATA_MIRROR": mirror.url, "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [sys.executable, "-m", "fmnist", "download", "--dest", str(tmp_path / "d")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "verified: True" in r.stdout, r.stderr
    env["FMNIST_DATA_MIRROR"] = "http://127.0.0.1:9/"
    r = subprocess.run(
        [sys.executable, "-m", "fmnist", "download", "--dest", str(tmp_path / "e")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cannot download" in r.stderr


def test_each_files_progress_reaches_its_own_end(mirror, tmp_path):
    """Within a file, progress is measured against the size the mirror sends (not the official one)."""
    seen = []
    download(tmp_path, progress=lambda frac, name: seen.append((frac, name)))
    total, done = sum(GZ_BYTES.values()), 0
    for name in RAW_SHA256:
        done += GZ_BYTES[name]
        mine = [f for f, n in seen if n == name]
        assert mine[-2] == mine[-1] == pytest.approx(done / total, abs=1e-12), name  # last chunk == file done


def test_the_default_folder_nested_folders_and_a_folder_that_cannot_be(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_DATA_DIR", str(tmp_path / "a" / "b" / "c"))
    assert download() == tmp_path / "a" / "b" / "c" and load_dataset(tmp_path / "a" / "b" / "c").verified
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match=r"cannot create .*file.*for the dataset: (Not a directory|File exists)"):
        download(tmp_path / "file" / "d")


def test_a_wrong_file_already_there_is_replaced(mirror, tmp_path):
    download(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"damaged")
    download(tmp_path)
    assert mirror.requests["t10k-labels-idx1-ubyte.gz"] == 2 and mirror.requests["train-images-idx3-ubyte.gz"] == 1
    assert load_dataset(tmp_path).verified


def test_a_mirror_that_never_answers_times_out(tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # accepts the connection, never answers
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        monkeypatch.setenv("FMNIST_DATA_MIRROR", f"http://127.0.0.1:{s.getsockname()[1]}/")
        with pytest.raises(DatasetError, match="cannot download .*timed out"):
            download(tmp_path, timeout_s=0.5)


def test_an_unreachable_mirror_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_DATA_MIRROR", "http://127.0.0.1:9/")
    with pytest.raises(DatasetError, match=r"Connection refused\. Is this machine online\?"):
        download(tmp_path)
