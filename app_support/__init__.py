"""Streamlit-only support for the app: caching, the shared model picker, plots, the training runner.

The core package `fmnist` never imports Streamlit; this layer is the only bridge.
"""
