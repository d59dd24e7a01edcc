"""BigLearn Studio's logic, independent of Gradio: models, masks, rendering, per-session handlers, API endpoints.

The page itself is in page/ (the only subpackage that imports gradio): it lays out each panel and wires these
functions to its controls; `app.py` at the repository root builds the page's frame from it.
"""
