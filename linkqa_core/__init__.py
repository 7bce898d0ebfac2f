"""LinkQA Studio's engine: seeds -> knowledge points -> KP graph -> value-guided walks.

A plain library with no UI import; the command line (``python -m linkqa_core``) and the
Streamlit pages call it.
"""

__version__ = "0.1.0"
