"""BigLearn Studio's logic, independent of Gradio: models, masks, rendering, per-session handlers, API endpoints.

`app.py` at the repository root lays out the page and wires these functions to its controls.
"""
