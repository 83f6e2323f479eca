"""Fashion-MNIST Studio: `streamlit run app.py`.

The entry point routes to the pages listed in app_support/nav.py (scripts in views/), and
app_support/frame.py draws the sidebar they share. There must be no pages/ folder beside this
file: Streamlit would switch to its legacy multipage mode for deep links.
"""

# Streamlit runs this file as __main__. A training worker that starts while some tab's script run
# has made this file sys.modules["__main__"] (fmnist.jobs._plain_main cannot stop another thread
# doing so) re-imports it as __mp_main__: then it must do nothing.
if __name__ == "__main__":
    from app_support.frame import run_app

    run_app()
