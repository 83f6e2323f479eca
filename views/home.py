"""Home: what Fashion-MNIST is, a class gallery, class balance, and the model zoo."""

import numpy as np
import pandas as pd
import streamlit as st

from app_support.links import LESSONS
from app_support.nav import PAGES
from app_support.plots import balance_fig, gallery_fig
from app_support.state import available_models, dataset, dataset_present, offer_download
from fmnist.checkpoints import card_test_accuracy
from fmnist.data import CLASSES
from fmnist.models import get_spec, list_models, param_count

st.title("Fashion-MNIST Studio")
st.markdown(
    "**Fashion-MNIST** is 70,000 grayscale pictures of clothing from Zalando's catalogue, "
    "28x28 pixels each, in 10 classes: 60,000 to train on and 10,000 to test. It was made as a "
    "harder drop-in replacement for the MNIST digits. Here you can **train** a network and watch it "
    "learn, **evaluate** where it goes wrong, **draw** your own clothes for it to classify, and "
    "browse its **mistakes**."
)
offer_download()  # only while the dataset is missing: one button gets it
ds = dataset() if dataset_present() else None

if ds is not None:
    st.header("Ten classes")
    per_class = st.slider("Samples per class", 4, 16, 10, key="home_per_class")
    if st.button("Reshuffle", icon=":material/shuffle:", key="home_shuffle"):
        st.session_state["home_seed"] = st.session_state.get("home_seed", 0) + 1
    rng = np.random.default_rng(st.session_state.get("home_seed", 0))
    labels = ds.train_labels.numpy()
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(len(CLASSES))]
    idx = np.concatenate(picks)
    st.plotly_chart(gallery_fig(ds.train_images.numpy()[idx], per_class), key="home_gallery")

st.header("Lessons: one link each")
st.caption("Each link opens a page with its settings ready. Send it to the class, or open it here.")
for title, page, params, notice in LESSONS:
    spec = next(p for p in PAGES if p.url_path == page)
    st.page_link(spec.path, label=title, icon=spec.icon, query_params=params)
    st.caption(notice)

if ds is not None:
    st.header("Class balance")
    st.caption("Every class has exactly the same number of images, so accuracy is a fair summary.")
    st.plotly_chart(
        balance_fig(np.bincount(labels, minlength=10), np.bincount(ds.test_labels.numpy(), minlength=10)),
        key="home_balance",
    )

st.header("The model zoo")


@st.cache_data
def param_counts() -> dict[str, int]:
    return {name: param_count(name) for name in list_models()}


SHIPPED_AS = {"quickcnn": "quick", "resnet": "resnet64", "preact20": "best"}  # each architecture's shipped checkpoint
cards = {e.name: e.card for e in available_models() if e.ref.kind == "file"}
shipped = {name: cards.get(SHIPPED_AS.get(name, name), {}) for name in list_models()}
measured = {name: card for name, card in shipped.items() if card.get("arch") == name}  # never another model's card
rows = []
for name in list_models():
    spec, card = get_spec(name), measured.get(name, {})
    acc = card_test_accuracy(card)
    rows.append(
        {
            "model": name,
            "description": spec.description,
            "parameters": param_counts()[name],
            "reported (%)": spec.reported,
            "measured test acc (%)": round(100 * acc, 2) if acc else None,
            "train time (s)": card.get("train_time_s"),
            "recipe": ", ".join(f"{k}={v}" for k, v in spec.recipe.items() if k != "augment")
            or "combines saved models (python -m fmnist ensemble)",
        }
    )
st.dataframe(pd.DataFrame(rows), hide_index=True, key="home_zoo", width="stretch", height=35 * (len(rows) + 1) + 3)
st.caption("Reported = what the public source claims. Measured = the shipped checkpoint on the real test set.")
