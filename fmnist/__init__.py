"""Fashion-MNIST Studio core: data, models, one training loop, evaluation, safe checkpoints.

This package knows nothing of Streamlit; the app (app.py, views/) is a thin view over it.
"""

__version__ = "0.1.0"
