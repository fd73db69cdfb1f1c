"""Batch-norm momentum for small datasets, shared by both models."""

import keras


def use_batch_norm_momentum(model: keras.Model, momentum: float = 0.9) -> None:
    """Let batch-norm moving statistics follow the data faster than Keras' default 0.99.

    With a few steps per epoch (small datasets, CPU runs) the moving statistics stay far
    from the data at 0.99, and validation scores collapse while training scores rise.
    """
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
