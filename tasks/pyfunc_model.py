"""The MLflow pyfunc of a colorizer, logged as code (MLflow "models from code"), so loading it
executes this file rather than unpickling an object; its artifacts are plain files."""

from __future__ import annotations

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class ColorizerModel(PythonModel):
    def load_context(self, context) -> None:
        from colorize_core.package import load_package

        a = context.artifacts
        self.package = load_package(weights=a["weights"], config=a["config"], bins=a["bins"])

    def predict(self, context, model_input, params=None):
        """Grayscale images (a list of (H, W) uint8 arrays, or one (N, H, W) array) -> (H, W, 3) uint8 each."""
        from colorize_core.colorize import colorize_array
        from colorize_core.config import from_dict
        from colorize_core.settings import ColorizeConfig

        images = list(model_input) if not isinstance(model_input, np.ndarray) or model_input.ndim == 3 else [model_input]
        cfg = from_dict(ColorizeConfig, params)  # e.g. {"decode": {"method": "mean"}}; none: the package's decode
        return [colorize_array(self.package, np.asarray(img), cfg) for img in images]


mlflow.models.set_model(ColorizerModel())
