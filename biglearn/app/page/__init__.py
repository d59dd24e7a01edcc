"""The Gradio page, panel by panel: for each panel a layout function and a wiring function, in the order the page
shows them. The only modules of biglearn/ that import gradio; the handlers they wire are the plain-Python ones of
biglearn/app/. `app.py` at the repository root holds the page's frame and `main`.
"""
