"""Fashion-MNIST Studio: `streamlit run app.py`.

The entry point routes to the pages listed in app_support/nav.py (scripts in views/), and
app_support/frame.py draws the sidebar they share. There must be no pages/ folder beside this
file: Streamlit would switch to its legacy multipage mode for deep links.
"""

from app_support.frame import run_app

run_app()
