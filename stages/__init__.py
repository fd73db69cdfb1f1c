"""The brain MRI pipeline: one module per DVC stage, plus the modules they share."""

import os

# Before TensorFlow or segmentation-models is imported anywhere in the package:
# segmentation-models picks its Keras at import, and TensorFlow's C++ info logs drown
# the training progress.
os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
