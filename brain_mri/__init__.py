"""The brain MRI library: one folder per phase of the pipeline, in the order the data flows.

common -> data -> models -> training -> evaluation -> tracking -> inference: a module imports
only from its own phase and the phases before it. The DVC stage scripts in `stages/` call it.
"""

import os

# Before TensorFlow, segmentation-models or matplotlib is imported anywhere in the package:
# segmentation-models picks its Keras at import, TensorFlow's C++ info logs drown the
# training progress, and the stages draw figures without a display.
os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
