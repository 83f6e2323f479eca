import torch

from app_support import frame


def test_the_heap_is_frozen_once_per_page_not_per_run(monkeypatch):
    frozen = []
    monkeypatch.setattr(frame.gc, "freeze", lambda: frozen.append(True))
    monkeypatch.setattr(frame.gc, "collect", lambda: 0)
    monkeypatch.setattr(frame, "_frozen_after", set())
    for page in ("predict", "predict", "", "predict", ""):
        frame.freeze_imported_heap(page)
    assert len(frozen) == 2  # what is frozen is never collected: not once per session or run


def test_server_threads_default_to_one_and_follow_the_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("FMNIST_SERVER_THREADS", raising=False)
        frame.one_thread_per_request()
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("FMNIST_SERVER_THREADS", "2")
        frame.one_thread_per_request()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
