"""The Gradio web app (``python app.py``): classify clips, explore learned biases, explain predictions.

The app holds no model or analysis logic: it wires `posmlp_video` (checkpoints, `Predictor`) and
`analysis` (bias tables, figures, attributions, complexity) into a `gradio.Blocks` UI and API.
"""

from demo.app import build_app, launch

__all__ = ["build_app", "launch"]
