"""The Streamlit studio's own code: the pages' shared helpers, caches and background jobs.

Outside :mod:`linkqa_core` on purpose: the engine never imports Streamlit.
"""
