"""Streamlit AppTest: drive every page as a user would."""

import io
import json

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from app_support import keys
from app_support.nav import EVALUATE, MISCLASSIFIED, PAGES, PREDICT, TRAIN
from app_support.state import ModelRef
from conftest import ROOT

TIMEOUT = 120


def app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    return at.run()


def goto(at: AppTest, page) -> AppTest:
    at.switch_page(page.path)
    return at.run()


def text(at: AppTest) -> str:
    parts = [*at.markdown, *at.caption, *at.info, *at.success, *at.error, *at.warning, *at.title, *at.subheader]
    return "\n".join(str(p.value) for p in parts)


def picker_options(at: AppTest) -> list[str]:
    """The sidebar model picker's visible labels."""
    return list(at.sidebar.selectbox[0].options)


@pytest.fixture
def at(ckpt_dir):
    return app()


def test_home(at):
    assert not at.exception
    assert "Fashion-MNIST" in at.title[0].value
    assert len(at.get("plotly_chart")) == 2  # gallery and class balance
    zoo = at.dataframe[0].value
    assert "cnn2" in set(zoo["model"]) and zoo.loc[zoo["model"] == "quickcnn", "measured test acc (%)"].item() > 90
    before = at.get("plotly_chart")[0].proto.spec
    at.button(key="home_shuffle").click().run()
    assert not at.exception and at.get("plotly_chart")[0].proto.spec != before  # new samples


def test_pages_without_models_point_to_train(tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_CHECKPOINT_DIR", str(tmp_path))  # empty: no model anywhere
    at = app()
    for page in (EVALUATE, PREDICT, MISCLASSIFIED):
        goto(at, page)
        assert not at.exception
        assert "needs a trained model" in text(at)


def test_train_save_then_evaluate(at, ckpt_dir):
    goto(at, TRAIN)
    assert not at.exception
    at.number_input(key="tr_student_epochs").set_value(1)
    at.number_input(key="tr_student_subset").set_value(600)
    at.button(key="tr_start").click().run()
    run = at.session_state[keys.RUN]
    assert run.config.subset == 600 and run.config.epochs == 1
    assert run.wait(TIMEOUT)
    at.run()
    assert not at.exception
    assert "Finished" in text(at)
    assert any("this session" in o for o in picker_options(at))  # usable before saving
    at.text_input(key="tr_save_name").set_value("../My class model!")
    at.button(key="tr_save").click().run()
    assert not at.exception
    saved = ckpt_dir / "My-class-model.safetensors"  # sanitised, inside the folder
    assert saved.exists()
    goto(at, EVALUATE)
    assert not at.exception
    assert at.session_state[keys.MODEL] == ModelRef.file(saved)  # selected in the shared picker
    assert any(c.value.startswith("My-class-model:") for c in at.caption)  # Evaluate shows it
    assert "Test accuracy" in [m.label for m in at.metric]
    assert any(o.startswith("My-class-model (") for o in picker_options(at))
    assert any(o.startswith("My-class-model (") for o in picker_options(app()))  # other sessions too


def test_train_diverged_offers_no_model(at):
    goto(at, TRAIN)
    at.number_input(key="tr_student_lr").set_value(10.0)
    at.number_input(key="tr_student_epochs").set_value(1)
    at.number_input(key="tr_student_subset").set_value(600)
    at.button(key="tr_start").click().run()
    at.session_state[keys.RUN].wait(TIMEOUT)
    at.run()
    assert "diverged" in text(at)
    assert not at.get("download_button") and not [b for b in at.button if b.key == "tr_save"]


def test_stop_button(at):
    import time

    goto(at, TRAIN)
    at.number_input(key="tr_student_epochs").set_value(20)
    at.button(key="tr_start").click().run()
    run = at.session_state[keys.RUN]
    t0 = time.monotonic()  # stop it while it trains: on a busy server it may still be queued (then it is removed)
    while not run.snapshot().batches and time.monotonic() - t0 < 60:
        time.sleep(0.05)
    at.button(key="tr_stop").click().run()
    assert run.wait(30)
    at.run()
    assert run.result.status == "stopped" and "Stopped" in text(at)


def test_evaluate_dashboard(at):
    goto(at, EVALUATE)
    assert not at.exception
    acc = next(m for m in at.metric if m.label == "Test accuracy").value
    assert float(acc.rstrip("%")) > 90
    counts_spec = at.get("plotly_chart")[0].proto.spec
    at.radio(key="ev_norm").set_value("Row-normalised (recall per class)").run()
    assert at.get("plotly_chart")[0].proto.spec != counts_spec
    assert len(at.dataframe[0].value) == 10
    at.selectbox(key="ev_cell_true").set_value(6)
    at.selectbox(key="ev_cell_pred").set_value(0)
    at.button(key="ev_cell_go").click().run()
    assert not at.exception
    assert at.session_state["mis_true"] == 6 and at.session_state["mis_pred"] == 0


def test_evaluate_compare(at, ckpt_dir):
    import shutil

    shutil.copy(ckpt_dir / "quick.safetensors", ckpt_dir / "quick-copy.safetensors")
    at.run()
    goto(at, EVALUATE)
    assert any(o.startswith("quick-copy (") for o in at.selectbox(key="ev_compare").options)
    at.selectbox(key="ev_compare").set_value(ModelRef.file(ckpt_dir / "quick-copy.safetensors")).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 4  # matrix, confusion diff, curves, calibration
    assert "Δ accuracy" in at.dataframe[0].value.columns
    assert (at.dataframe[0].value["Δ accuracy"] == 0).all()  # same weights: no difference


def _png_of_test_image(ds, i: int) -> bytes:
    img = Image.fromarray(255 - ds.test_images[i].numpy()).resize((224, 224))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_predict_upload(at, ds):
    goto(at, PREDICT)
    assert not at.exception
    at.radio(key="pr_source").set_value("Upload an image").run()
    at.file_uploader(key="pr_upload").upload("trouser.png", _png_of_test_image(ds, 2), "image/png")  # a trouser
    at.run()
    assert not at.exception
    assert "Trouser" in [m.value for m in at.markdown if m.value.startswith("###")][0]
    assert "How the image became 28x28" in text(at)
    steps = [i for i in at.get("image") if len(i.proto.imgs) == 5]  # one element holds all five steps
    assert steps and "what the model sees" in steps[0].proto.imgs[-1].caption
    assert all(im.alt.startswith("Step ") for im in steps[0].proto.imgs)  # a screen reader names each step


def test_predict_camera_photo_finds_the_garment_and_refuses_an_empty_table(at, ds):
    import numpy as np
    from photos import render, render_empty

    goto(at, PREDICT)
    at.radio(key="pr_source").set_value("Camera").run()
    assert "only on `localhost` or over HTTPS" in text(at)
    photo = render(ds.test_images[2].numpy(), "phone", np.random.default_rng(0))  # trousers on a table
    at.camera_input(key="pr_camera").set_value(("photo.jpg", photo, "image/jpeg")).run()
    assert not at.exception
    assert "Trouser" in [m.value for m in at.markdown if m.value.startswith("###")][0]
    steps = [i for i in at.get("image") if len(i.proto.imgs) == 5][0].proto.imgs
    assert steps[1].caption.startswith("2. Garment found")  # the mask, among the steps
    at.camera_input(key="pr_camera").set_value(
        ("table.jpg", render_empty("phone", np.random.default_rng(1)), "image/jpeg")
    ).run()
    assert not at.exception and any("no garment found" in e.value for e in at.error)


def test_a_photo_is_answered_by_the_photo_model_and_the_page_says_so(ckpt_dir, ds):
    """With checkpoints/photo.safetensors present, a photo goes to it (the toggle gives it back to the
    selected model); an image that is not a photo stays with the selected model."""
    import shutil

    import numpy as np
    from photos import render

    shutil.copy(ckpt_dir / "quick.safetensors", ckpt_dir / "photo.safetensors")  # stands in for the photo model
    at = app()
    goto(at, PREDICT)
    at.radio(key="pr_source").set_value("Upload an image").run()
    photo = render(ds.test_images[2].numpy(), "dark", np.random.default_rng(0))  # trousers on dark cloth
    at.file_uploader(key="pr_upload").upload("photo.jpg", photo, "image/jpeg").run()
    assert not at.exception
    said = [i.value for i in at.info if "Answered by" in i.value]
    assert said and said[0].startswith("Answered by **photo") and "not quick" in said[0]
    assert any("Top-5 probabilities: photo" in m.value for m in at.markdown)
    at.toggle(key="pr_photo_model").set_value(False).run()
    assert not [i for i in at.info if "Answered by" in i.value]
    assert any("Top-5 probabilities: quick" in m.value for m in at.markdown)
    buf = io.BytesIO()
    Image.fromarray(ds.test_images[2].numpy()).resize((112, 112)).save(buf, "PNG")  # dataset-style: not a photo
    at.file_uploader(key="pr_upload").upload("trouser.png", buf.getvalue(), "image/png").run()
    assert not at.exception and all(t.key != "pr_photo_model" for t in at.toggle)
    assert any("Top-5 probabilities: quick" in m.value for m in at.markdown)


def test_the_photo_vote_answers_photos_before_the_photo_model_and_a_chosen_photo_model_answers_itself(ckpt_dir, ds):
    """checkpoints/photo-vote.safetensors first, then photo.safetensors (app_support.inference.PHOTO_MODELS):
    the page names the vote and why; a student who picked either photo model keeps it, with no toggle."""
    import shutil

    import numpy as np
    from photos import render

    from app_support.state import ModelRef

    for name in ("photo", "photo-vote"):  # quick stands in for both
        shutil.copy(ckpt_dir / "quick.safetensors", ckpt_dir / f"{name}.safetensors")
    at = app()
    goto(at, PREDICT)
    at.radio(key="pr_source").set_value("Upload an image").run()
    photo = render(ds.test_images[2].numpy(), "phone", np.random.default_rng(0))
    at.file_uploader(key="pr_upload").upload("photo.jpg", photo, "image/jpeg").run()
    said = [i.value for i in at.info if "Answered by" in i.value]
    assert said and said[0].startswith("Answered by **photo-vote") and "not quick" in said[0]
    assert "soft vote of the photo model" in said[0]
    assert any("Top-5 probabilities: photo-vote" in m.value for m in at.markdown)
    for name in ("photo", "photo-vote"):
        at.session_state["model_ref"] = ModelRef.file(ckpt_dir / f"{name}.safetensors")
        at.run()
        assert not at.exception and all(t.key != "pr_photo_model" for t in at.toggle)
        assert not [i for i in at.info if "Answered by" in i.value]
        assert any(f"Top-5 probabilities: {name}" in m.value for m in at.markdown)


def _blank_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "payload, name",
    [(b"not an image", "x.png"), (b"\x89PNG\r\n\x1a\n\x00\x00", "trunc.png"), (_blank_png(), "blank.png")],
)
def test_predict_bad_upload_keeps_working(at, payload, name):
    goto(at, PREDICT)
    at.radio(key="pr_source").set_value("Upload an image").run()
    at.file_uploader(key="pr_upload").upload(name, payload, "image/png")
    at.run()
    assert not at.exception
    assert any(name in e.value and "cannot be used" in e.value for e in at.error)
    at.radio(key="pr_source").set_value("Test sample").run()  # the page still works
    assert not at.exception and not at.error and len(at.get("image")) >= 2  # input + saliency


def test_predict_test_sample(at, ds):
    goto(at, PREDICT)
    at.radio(key="pr_source").set_value("Test sample").run()
    at.number_input(key="pr_index").set_value(2).run()
    assert not at.exception
    verdict = [m.value for m in at.markdown if m.value.startswith("###")][0]
    assert "Trouser" in verdict and "correct" in verdict
    assert len(at.table[0].value) >= 1  # every model's vote


def test_predict_votes_are_cached_per_image_and_follow_the_folder(at, ckpt_dir):
    import shutil

    goto(at, PREDICT)
    at.radio(key="pr_source").set_value("Test sample").run()
    at.number_input(key="pr_index").set_value(2).run()
    assert list(at.table[0].value.index) == ["quick (91.7%)"]
    shutil.copy(ROOT / "checkpoints" / "mlp.safetensors", ckpt_dir / "mlp.safetensors")  # a model saved meanwhile
    at.run()
    votes = at.table[0].value
    assert [m.split(" ")[0] for m in votes.index] == ["mlp", "quick"] and set(votes["prediction"]) == {"Trouser"}
    at.number_input(key="pr_index").set_value(0).run()  # another image: its own votes
    assert set(at.table[0].value["prediction"]) == {"Ankle boot"}


def test_misclassified_filters(at, ckpt_dir):
    from fmnist.checkpoints import load_checkpoint
    from fmnist.data import load_dataset
    from fmnist.evaluate import evaluate

    ds = load_dataset()
    res = evaluate(load_checkpoint(ckpt_dir / "quick.safetensors").model, ds.test_images, ds.test_labels)
    goto(at, MISCLASSIFIED)
    assert not at.exception
    total = int((res.preds != res.labels).sum())
    assert f"**{total} errors**" in at.markdown[0].value
    at.selectbox(key="mis_true").set_value(6).run()
    at.selectbox(key="mis_pred").set_value(0).run()
    expected = int(((res.labels == 6) & (res.preds == 0)).sum())
    assert f"**{expected} errors**" in at.markdown[0].value
    tiles = [b for b in at.button if b.key.startswith("mis_detail_")]
    assert 0 < len(tiles) <= 32
    shown = [int(b.key.rsplit("_", 1)[1]) for b in tiles]
    assert all(res.labels[i] == 6 and res.preds[i] == 0 for i in shown)
    cell = np.flatnonzero((res.labels == 6) & (res.preds == 0))
    most_confident = cell[np.argsort(-res.probs.max(1)[cell], kind="stable")][: len(tiles)]
    assert set(shown) == set(most_confident.tolist())  # page 1 = the most confident mistakes
    tiles[0].click().run()
    assert not at.exception and at.session_state["mis_selected"] == shown[0]
    assert any("Test image #" in s.value for s in at.subheader)


def test_two_sessions_never_share_a_run(ckpt_dir):
    alice, bob = app(), app()
    goto(alice, TRAIN)
    alice.number_input(key="tr_student_epochs").set_value(1)
    alice.number_input(key="tr_student_subset").set_value(600)
    alice.button(key="tr_start").click().run()
    goto(bob, TRAIN)
    assert keys.RUN not in bob.session_state  # Bob's session has no run ...
    assert any("press **Start training**" in i.value for i in bob.info)  # ... and sees none
    assert alice.session_state[keys.RUN].wait(TIMEOUT)
    alice.run()
    bob.run()
    assert not any("this session" in o for o in picker_options(bob))  # nor Alice's unsaved model
    assert any("this session" in o for o in picker_options(alice))


def _trained_session(arch: str = "logreg") -> AppTest:
    at = app()
    goto(at, TRAIN)
    at.selectbox(key="tr_student_arch").set_value(arch)
    at.number_input(key="tr_student_epochs").set_value(1)
    at.number_input(key="tr_student_subset").set_value(600)
    at.button(key="tr_start").click().run()
    assert at.session_state[keys.RUN].wait(TIMEOUT)
    return at.run()


def test_a_queued_run_says_when_it_starts_and_how_long_it_takes(ckpt_dir):
    from app_support.training import job_manager
    from fmnist.config import TrainConfig

    manager = job_manager()
    long = TrainConfig(arch="mlp", epochs=200, subset=2000, precision="fp32")
    others = [manager.submit(long, owner=f"another-tab-{i}") for i in range(manager.max_running)]
    try:
        at = goto(app(), TRAIN)
        at.selectbox(key="tr_student_arch").set_value("logreg")
        at.number_input(key="tr_student_subset").set_value(600)
        at.button(key="tr_start").click().run()
        assert not at.exception
        line = next(i.value for i in at.info if "in the queue" in i.value)
        assert "Position 1 in the queue" in line and "starts in about" in line and ", then takes about" in line
        goto(at, EVALUATE)  # the sidebar's line, on every page, says the same
        assert any("Your run: queued, position 1: starts in about" in c.value for c in at.sidebar.caption)
    finally:
        for job in [*others, at.session_state[keys.RUN]]:
            job.stop()


def test_two_sessions_that_both_train_keep_their_own_models(ckpt_dir):
    """Each session's unsaved model is its own, even when both train (no shared store)."""
    alice, bob = _trained_session("mlp"), _trained_session("logreg")
    assert [o for o in picker_options(alice) if "this session" in o] == ["mlp-run1 (this session, unsaved)"]
    assert [o for o in picker_options(bob) if "this session" in o] == ["logreg-run1 (this session, unsaved)"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.url_path or "home")
def test_every_page_has_the_shared_sidebar(ckpt_dir, monkeypatch, page):
    monkeypatch.setenv("FMNIST_TEACHER_KEY", "a-teachers-key")  # the Class page exists with a key only
    at = goto(app(), page)
    assert not at.exception
    assert at.sidebar.title[0].value == "Fashion-MNIST Studio"
    assert picker_options(at) and picker_options(at)[0].startswith("quick (")


def test_no_legacy_pages_folder():
    """A pages/ folder beside app.py switches Streamlit to its legacy multipage mode: deep links lose the sidebar."""
    assert not (ROOT / "pages").exists()
    assert {p.path for p in PAGES} == {f"views/{f.name}" for f in (ROOT / "views").glob("*.py")}


def _save(at: AppTest, name: str) -> AppTest:
    at.text_input(key="tr_save_name").set_value(name)
    return at.button(key="tr_save").click().run()


def test_save_conflict_quota_and_one_save_per_run(ckpt_dir, monkeypatch):
    """Two students, one name: one wins, the other is told. A full folder says so. A run saves once."""
    alice, bob = _trained_session(), _trained_session()
    _save(alice, "our-model")
    assert not alice.exception and (ckpt_dir / "our-model.safetensors").exists()
    assert any("Saved as **our-model**" in s.value for s in alice.success)
    assert not [b for b in alice.button if b.key == "tr_save"]  # one save per run
    assert any("Saved as **our-model**" in c.value for c in alice.caption)
    mine = (ckpt_dir / "our-model.safetensors").read_bytes()

    _save(bob, "our-model")
    assert not bob.exception and any("already exists" in e.value for e in bob.error)
    assert (ckpt_dir / "our-model.safetensors").read_bytes() == mine  # Alice's model is untouched
    monkeypatch.setenv("FMNIST_MAX_SAVED_MODELS", "1")  # Alice's model fills the folder
    _save(bob, "bobs-model")
    assert any("folder is full" in e.value for e in bob.error)
    assert not (ckpt_dir / "bobs-model.safetensors").exists()
    monkeypatch.delenv("FMNIST_MAX_SAVED_MODELS")
    _save(bob, "bobs-model")
    assert (ckpt_dir / "bobs-model.safetensors").exists()
    for at in (alice, bob):
        shown = text(at)
        assert str(ckpt_dir) not in shown and str(ROOT) not in shown  # no server paths for visitors


def test_bad_files_in_the_model_folder_do_not_take_pages_down(ckpt_dir, monkeypatch):
    import os

    monkeypatch.setenv("FMNIST_TEACHER_KEY", "a-teachers-key")
    import torch
    from safetensors.torch import save as st_save

    from fmnist.checkpoints import FORMAT

    deep = "[" * 100_000 + "]" * 100_000  # RecursionError in the sidebar before
    (ckpt_dir / "deep.safetensors").write_bytes(st_save({"w": torch.zeros(1)}, {"format": FORMAT, "card": deep}))
    os.mkfifo(ckpt_dir / "fifo.safetensors")
    (ckpt_dir / "empty.safetensors").write_bytes(b"")
    at = app()
    for page in PAGES:
        goto(at, page)
        assert not at.exception
        assert [o.split(" (")[0] for o in picker_options(at)] == ["quick"]


def test_classroom_server_defaults():
    """Visitors never see tracebacks (server paths), nor the Deploy/developer menu; loopback unless opened."""
    import tomllib

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["client"]["showErrorDetails"] in ("type", "none")
    assert cfg["client"]["toolbarMode"] in ("minimal", "viewer")
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["server"]["maxUploadSize"] <= 20 and cfg["server"]["maxMessageSize"] <= 50
    assert "--server.address 0.0.0.0" in (ROOT / "Makefile").read_text()  # `make classroom` opens it to the room


class _ForgedCanvas:
    """What st_canvas returns, with a payload a tampered browser could send."""

    def __init__(self, payload):
        self.payload = payload

    @property
    def image_bytes(self):
        if isinstance(self.payload, Exception):
            raise self.payload
        return self.payload


def _fake_canvas(monkeypatch, payload) -> None:
    """The Predict page imports st_canvas on each run: give it one that returns `payload`."""
    import sys
    import types

    module = types.ModuleType("streamlit_drawable_canvas")
    module.st_canvas = lambda **kw: _ForgedCanvas(payload)
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", module)


@pytest.mark.parametrize(
    "payload, shown",
    [
        (ValueError("not enough values to unpack"), "could not be read"),  # no ';base64,' in the data URL
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "not a readable image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a readable image"),
        (None, "Draw something"),
    ],
    ids=["not-a-data-url", "eps", "junk-png", "nothing-drawn"],
)
def test_predict_forged_drawings_get_a_message(at, monkeypatch, payload, shown):
    _fake_canvas(monkeypatch, payload)
    goto(at, PREDICT)
    at.radio(key="pr_source").set_value("Draw").run()
    assert not at.exception
    assert shown in text(at)


def test_predict_drawing_bytes_are_classified(at, monkeypatch, ds):
    """The canvas's PNG goes through fmnist.preprocess once and reaches the verdict."""
    rgba = np.zeros((300, 300, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[..., :3] = np.asarray(Image.fromarray(ds.test_images[2].numpy()).resize((300, 300)))[..., None]  # a trouser
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    _fake_canvas(monkeypatch, buf.getvalue())
    goto(at, PREDICT)
    at.radio(key="pr_source").set_value("Draw").run()
    assert not at.exception
    assert "Trouser" in [m.value for m in at.markdown if m.value.startswith("###")][0]


def test_sweep_page_runs_trials_live_and_opens_the_best_model(ckpt_dir, tmp_path, monkeypatch):
    from app_support.nav import SWEEP

    monkeypatch.setenv("FMNIST_SWEEP_STORAGE", f"sqlite:///{tmp_path / 'sweeps.db'}")
    at = goto(app(), SWEEP)
    assert not at.exception and "Start the sweep" in [b.label for b in at.button]
    at.selectbox(key="sw_arch").set_value("logreg")
    at.number_input(key="sw_trials").set_value(3)
    at.number_input(key="sw_epochs").set_value(2)
    at.select_slider(key="sw_subset").set_value(1000)
    at.button[0].click().run()  # the form's submit button
    assert not at.exception
    run = at.session_state[keys.SWEEP]
    run.thread.join(TIMEOUT)
    assert not run.active and run.error is None and run.result is not None
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == 3 and set(table["state"]) <= {"complete", "pruned"} and "lr" in table
    assert any("Best so far: trial" in s.value for s in at.success)
    assert len(at.get("plotly_chart")) >= 2  # Optuna's own figures: history and intermediate values
    best = run.result["checkpoint"]
    assert best and str(ckpt_dir) in best
    at.button(key="sw_open").click().run()
    assert not at.exception
    assert at.session_state[keys.MODEL] == ModelRef.file(best)  # "open the best model" selects it


def test_sweep_page_refuses_an_empty_range(ckpt_dir, tmp_path, monkeypatch):
    from app_support.nav import SWEEP

    monkeypatch.setenv("FMNIST_SWEEP_STORAGE", f"sqlite:///{tmp_path / 'sweeps.db'}")
    at = goto(app(), SWEEP)
    at.number_input(key="sw_lr_low").set_value(0.01)
    at.number_input(key="sw_lr_high").set_value(0.001)
    at.button[0].click().run()
    assert not at.exception and any("range" in e.value and "empty" in e.value for e in at.error)
    assert keys.SWEEP not in at.session_state


def test_an_unreachable_cluster_falls_back_to_this_server(ckpt_dir, monkeypatch):
    from app_support.training import _runs, job_manager

    monkeypatch.setenv("FMNIST_RAY_ADDRESS", "127.0.0.1:1")  # nothing listens there
    _runs.clear()
    try:
        at = goto(app(), TRAIN)
        assert not at.exception
        assert any(
            "cannot reach the Ray cluster" in w.value and "on this server instead" in w.value for w in at.warning
        )
        assert job_manager().backend.name == "local"
    finally:
        job_manager().shutdown()
        _runs.clear()


def test_calibration_is_shown_on_evaluate_and_predict(at):
    """The quick model is underconfident (T = 0.61): Evaluate shows ECE before and after, Predict says so."""
    goto(at, EVALUATE)
    assert not at.exception
    cap = [c.value for c in at.caption if c.value.startswith("Calibration: with temperature scaling")]
    assert cap and "T = 0.61" in cap[0] and "underconfident" in cap[0]
    calib = [c for c in at.get("plotly_chart") if "Calibration" in c.proto.spec]
    names = [t.get("name") for t in json.loads(calib[0].proto.spec)["data"]]
    assert "quick, calibrated" in names and "quick" in names
    goto(at, PREDICT)
    at.radio(key="pr_source").set_value("Test sample").run()
    assert any("temperature of 0.61" in c.value for c in at.caption)


def test_evaluate_offers_the_model_as_onnx(at):
    goto(at, EVALUATE)
    assert not at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download the model as ONNX" in labels and "Download metrics (CSV)" in labels


def test_predict_layers_view_shows_the_real_convolution_step(at, ds):
    """Feature maps, filters and a step whose printed output is the layer's own value (quickcnn)."""
    from app_support.state import get_checkpoint
    from fmnist.inside import conv_activations, conv_step

    goto(at, PREDICT)
    at.radio(key="pr_source").set_value("Test sample").run()
    at.number_input(key="pr_index").set_value(2).run()
    at.toggle(key="pr_layers_on").set_value(True).run()
    assert not at.exception
    at.selectbox(key="pr_layer").set_value(1).run()
    at.number_input(key="pr_step_map").set_value(5).run()
    at.slider(key="pr_step_y").set_value(3).run()
    at.slider(key="pr_step_x").set_value(4).run()
    assert not at.exception
    ck = get_checkpoint(at.session_state[keys.MODEL])
    step = conv_step(conv_activations(ck.model, ds.test_images[2])[1], 5, 3, 4)
    line = next(m.value for m in at.markdown if "+ bias" in m.value)
    assert f"= **{step.output:.3f}**" in line and f"over all {step.in_channels} input channels" in line
    grids = [d.value for d in at.dataframe if list(d.value.columns[:1]) == ["col 0"]]  # kernel, patch, products
    assert len(grids) == 3 and np.allclose(grids[0].to_numpy(), step.kernel.numpy().round(3))
    assert np.allclose(grids[2].to_numpy(), step.products.numpy().round(3))
    assert any("filters" in (i.proto.imgs[0].caption if i.proto.imgs else "") for i in at.get("image"))


def test_predict_layers_view_for_dense_models(at, ckpt_dir):
    import shutil

    for name in ("mlp", "logreg"):
        shutil.copy(ROOT / "checkpoints" / f"{name}.safetensors", ckpt_dir / f"{name}.safetensors")
    goto(at, PREDICT)
    at.sidebar.selectbox[0].set_value(ModelRef.file(ckpt_dir / "mlp.safetensors")).run()
    at.radio(key="pr_source").set_value("Test sample").run()
    at.toggle(key="pr_layers_on").set_value(True).run()
    assert not at.exception
    assert any("Hidden layer" in c.proto.spec for c in at.get("plotly_chart"))
    at.sidebar.selectbox[0].set_value(ModelRef.file(ckpt_dir / "logreg.safetensors")).run()
    assert not at.exception and any("no hidden layer" in i.value for i in at.info)


def _open(path: str, params: dict, page) -> AppTest:
    """A fresh session opened on `page` through a link carrying `params`."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params.update({k: str(v) for k, v in params.items()})
    at.switch_page(page.path)
    return at.run()


@pytest.mark.parametrize("lesson", range(6))
def test_every_lesson_link_opens_its_exercise(ckpt_dir, lesson):
    import shutil

    from app_support.links import LESSONS

    shutil.copy(ROOT / "checkpoints" / "best.safetensors", ckpt_dir / "best.safetensors")
    title, page_path, params, _ = LESSONS[lesson]
    page = next(p for p in PAGES if p.url_path == page_path)
    at = _open(page_path, params, page)
    assert not at.exception, title
    assert not any("were not valid" in c.value for c in at.caption), title
    if page_path == "train":
        prefix = f"tr_{params['preset']}_"
        assert at.session_state["tr_preset"] == params["preset"]
        for k, v in params.items():
            if k not in ("preset", "hide"):
                assert at.session_state[prefix + k] == v, (title, k)
        assert (len(at.expander) == 0) == (params.get("hide") == "advanced")
    elif page_path == "misclassified":
        assert at.session_state["mis_true"] == 6 and at.session_state[keys.MODEL].name == "best"
        assert "errors**" in at.markdown[0].value
    else:
        assert at.session_state["pr_source"] == "Draw"


def test_copy_link_round_trips_the_train_setup(ckpt_dir):
    from urllib.parse import parse_qsl, urlsplit

    at = goto(app(), TRAIN)
    at.selectbox(key="tr_student_arch").set_value("mlp")
    at.number_input(key="tr_student_epochs").set_value(7)
    at.toggle(key="tr_student_flip").set_value(True).run()
    link = [c.value for c in at.code if "/train?" in c.value][0]
    params = dict(parse_qsl(urlsplit(link).query))
    assert params["arch"] == "mlp" and params["epochs"] == "7" and params["flip"] == "true"
    assert params["model"] == "quick" and params["preset"] == "student"
    other = _open("train", params, TRAIN)  # a classmate opens it
    assert other.session_state["tr_student_arch"] == "mlp" and other.session_state["tr_student_epochs"] == 7
    assert other.session_state["tr_student_flip"] is True


def test_a_bad_link_is_ignored_with_a_note(ckpt_dir):
    at = _open("train", {"preset": "student", "epochs": "9999", "lr": "abc", "nonsense": "1", "arch": "vgg"}, TRAIN)
    assert not at.exception
    note = next(c.value for c in at.caption if "were not valid" in c.value)
    assert "epochs=9999" in note and "lr=abc" in note and "nonsense=1" in note and "arch=vgg" in note
    assert at.session_state["tr_student_epochs"] == 4  # the preset's value stands


def test_a_link_sets_booleans_both_ways_and_refuses_a_fractional_integer(ckpt_dir):
    from fmnist.config import PRESETS

    at = _open("train", {"preset": "best", "flip": "false", "epochs": "2.5", "patience": "0"}, TRAIN)
    assert not at.exception
    assert PRESETS["best"]["augment"]["flip"] is True and at.session_state["tr_best_flip"] is False
    assert at.toggle(key="tr_best_flip").value is False
    note = next(c.value for c in at.caption if "were not valid" in c.value)
    assert "epochs=2.5" in note and at.session_state["tr_best_epochs"] == PRESETS["best"]["epochs"]
    assert at.session_state["tr_best_patience"] == 0  # 0: early stopping off, as the form shows it


def test_map_page_features_vs_pixels(at):
    from app_support.nav import MAP

    goto(at, MAP)
    assert not at.exception
    purity = lambda: float(next(m.value for m in at.markdown if "nearest dots" in m.value).split("**")[3].rstrip("%"))
    feats = purity()
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    enc = spec["encoding"]
    assert enc["color"]["field"] == "true" and "cross" in enc["shape"]["scale"]["range"]  # class colours, mistakes
    assert {"field": "image"} in [{"field": t["field"]} for t in enc["tooltip"]]  # the hover shows the thumbnail
    at.toggle(key="map_pixels").set_value(True).run()
    assert not at.exception and "raw pixels (784 values)" in next(m.value for m in at.markdown if "nearest" in m.value)
    assert purity() < feats  # what learning did


def test_a_lesson_link_applies_once_then_the_student_is_free(ckpt_dir):
    at = _open("train", {"preset": "student", "epochs": 30}, TRAIN)
    assert at.session_state["tr_student_epochs"] == 30
    at.number_input(key="tr_student_epochs").set_value(5).run()  # the student changes it; the URL still says 30
    at.run()
    assert at.session_state["tr_student_epochs"] == 5


# ---------------------------------------------------------------- no dataset yet (a pip-only install)


@pytest.fixture
def no_dataset(ds, ckpt_dir, tmp_path, monkeypatch):  # ds: loaded before it is hidden, for uploads
    """No Fashion-MNIST anywhere the app looks; downloads go to an empty folder, from a loopback mirror."""
    from app_support.state import _dataset
    from fmnist import data
    from mirror import LoopbackMirror

    with LoopbackMirror() as mirror:  # serves the real files, read before they are hidden
        monkeypatch.setattr(data, "SYSTEM_DIR", tmp_path / "no-system-copy")
        monkeypatch.setattr(data, "LOCAL_DIR", tmp_path / "no-local-copy")
        monkeypatch.setenv("FMNIST_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("FMNIST_DATA_MIRROR", mirror.url)
        _dataset.clear()
        yield mirror
    _dataset.clear()  # the next test loads the real dataset again


def test_home_gets_the_dataset_with_one_button(no_dataset, tmp_path):
    at = app()
    assert not at.exception
    assert any("not on this server yet" in w.value for w in at.warning)
    assert not at.get("plotly_chart") and at.dataframe  # no gallery yet; the model zoo is there
    assert no_dataset.requests == {}  # nothing is fetched until the button is pressed
    at.button(key="home_download").click().run()
    assert not at.exception
    assert sum(no_dataset.requests.values()) == 4
    assert any(str(tmp_path / "data") in s.value and "ready" in s.value for s in at.success), [*at.success]
    assert not at.warning and len(at.get("plotly_chart")) == 2  # the gallery and the balance are back
    assert len(list((tmp_path / "data").glob("*.gz"))) == 4
    at.run()
    assert not at.success  # "ready" is said once


def test_a_failed_download_says_why_and_keeps_the_button(no_dataset, tmp_path):
    no_dataset.files.pop("t10k-images-idx3-ubyte.gz")
    at = app()
    at.button(key="home_download").click().run()
    assert not at.exception
    assert any("download failed" in e.value and "404" in e.value for e in at.error), [*at.error]
    assert at.button(key="home_download") and not list((tmp_path / "data").glob(".*.part"))


def test_without_the_dataset_predict_classifies_and_the_other_pages_point_home(no_dataset, ds):
    from app_support.nav import MAP, SWEEP

    at = app()
    for page in (TRAIN, EVALUATE, MISCLASSIFIED, MAP, SWEEP):
        goto(at, page)
        assert not at.exception, page
        assert "needs the Fashion-MNIST dataset" in text(at), page
        assert "Home: get the dataset" in [link.proto.label for link in at.get("page_link")], page
    goto(at, PREDICT)
    assert not at.exception and "needs the Fashion-MNIST dataset" not in text(at)
    at.radio(key="pr_source").set_value("Upload an image").run()
    at.file_uploader(key="pr_upload").upload("trouser.png", _png_of_test_image(ds, 2), "image/png")
    at.run()
    assert not at.exception
    assert "Trouser" in [m.value for m in at.markdown if m.value.startswith("###")][0]
    at.radio(key="pr_source").set_value("Test sample").run()
    assert not at.exception and "needs the Fashion-MNIST dataset" in text(at)
    assert no_dataset.requests == {}


def test_broken_dataset_files_are_named_not_offered_again(no_dataset, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for name in (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ):
        (data_dir / name).write_bytes(b"not gzip")
    at = app()
    assert not at.exception
    assert any("cannot be read" in e.value and "not a gzip file" in e.value for e in at.error), [*at.error]
    assert "home_download" not in [b.key for b in at.button]  # the files are there: no download offer
    goto(at, EVALUATE)
    assert not at.exception and any("cannot be read" in e.value for e in at.error)


@pytest.mark.parametrize("page", [TRAIN, PREDICT])
def test_a_bad_setting_is_one_line_on_every_page_not_a_traceback(ckpt_dir, monkeypatch, page):
    monkeypatch.setenv("FMNIST_SERVER_THREADS", "zero")
    at = goto(app(), page)
    assert not at.exception
    assert [e.value for e in at.error] == [
        "The server's settings are wrong: FMNIST_SERVER_THREADS must be an integer of at least 1, got 'zero'. "
        "Fix it and restart the app."
    ]
    assert not at.title  # the page itself did not run
