"""Fashion-MNIST Studio: `streamlit run app.py`.

The entry point: page config, navigation, and the one model picker shared by every page.
"""

import streamlit as st

from app_support.state import model_picker

st.set_page_config(page_title="Fashion-MNIST Studio", page_icon=":material/checkroom:", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home: the dataset", icon=":material/home:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("pages/predict.py", title="Predict", icon=":material/draw:"),
    st.Page("pages/misclassified.py", title="Misclassified", icon=":material/report:"),
]
nav = st.navigation(pages)
st.sidebar.title("Fashion-MNIST Studio")
model_picker()
st.sidebar.caption("Models: shipped checkpoints, your saved models, and this session's runs.")
nav.run()
