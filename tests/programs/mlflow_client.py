"""A colleague's fresh process, with MLflow alone: load each logged model and predict once.

    python -m tests.programs.mlflow_client TRACKING_URI MODEL_URI...

Each model is loaded with MLflow's own generic loader (`mlflow.pyfunc.load_model`), without
this project (importing it fails here), and given zeros of the shape its signature names. Prints one line per
model: the URI and the shape of its prediction.
"""

import sys

sys.modules["brain_mri"] = None  # a colleague has MLflow and the model's pip requirements, not this package

import mlflow  # noqa: E402
import numpy as np  # noqa: E402

mlflow.set_tracking_uri(sys.argv[1])
for uri in sys.argv[2:]:
    model = mlflow.pyfunc.load_model(uri)
    (spec,) = model.metadata.get_input_schema().inputs
    pixels = np.zeros((1, *spec.shape[1:]), spec.type)
    print(uri, np.asarray(model.predict(pixels)).shape)
