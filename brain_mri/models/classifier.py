"""The tumour / healthy classifier: VGG16's layout with a sigmoid head, built uncompiled.

It takes float32 pixels in 0..255 and scales them inside the model, so that training,
evaluation and predict feed the same thing.
"""

import keras

from brain_mri.models.batch_norm import use_batch_norm_momentum
from brain_mri.models.pretrained import weights_error

# VGG16's convolution blocks: filters per block, convolutions per block
VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
# ImageNet channel means (RGB) that keras' VGG16 weights were trained with
IMAGENET_MEANS = (123.68, 116.779, 103.939)


def _vgg16_with_batch_norm(inputs: keras.KerasTensor) -> keras.KerasTensor:
    """VGG16's layout with batch normalisation after each convolution and He initialisation.

    Plain VGG16 does not learn from scratch on a few hundred images (the loss stays at
    0.693); normalised activations let it train without ImageNet weights.
    """
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for block, (filters, convolutions) in enumerate(VGG16_BLOCKS, start=1):
        for conv in range(1, convolutions + 1):
            x = keras.layers.Conv2D(
                filters,
                3,
                padding="same",
                use_bias=False,
                kernel_initializer="he_normal",
                name=f"block{block}_conv{conv}",
            )(x)
            x = keras.layers.BatchNormalization(name=f"block{block}_bn{conv}")(x)
            x = keras.layers.Activation("relu")(x)
        x = keras.layers.MaxPooling2D(name=f"block{block}_pool")(x)
    return x


def _vgg16_pretrained(inputs: keras.KerasTensor, weights: str) -> keras.KerasTensor:
    # Keras' VGG16 weights expect ImageNet-mean-subtracted pixels; MRI is grey, so the
    # channel order (BGR in the original weights) does not matter here.
    x = keras.layers.Normalization(mean=IMAGENET_MEANS, variance=(1.0, 1.0, 1.0))(inputs)
    try:
        base = keras.applications.VGG16(include_top=False, weights=weights, input_shape=inputs.shape[1:])
    except Exception as error:  # Keras raises a bare Exception when the download fails
        raise weights_error("train_classifier.weights", weights, error) from None
    return base(x)


def build_classifier(image_size: int, weights: str | None, batch_norm: bool, dropout: float) -> keras.Model:
    """VGG16 features, global average pooling, dropout and one sigmoid unit: P(tumour)."""
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    features = _vgg16_with_batch_norm(inputs) if batch_norm else _vgg16_pretrained(inputs, weights)
    x = keras.layers.GlobalAveragePooling2D()(features)
    x = keras.layers.Dropout(dropout)(x)
    # float32 output even under mixed precision, for a stable loss
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="tumour_probability")(x)
    model = keras.Model(inputs, outputs, name="vgg16_classifier")
    use_batch_norm_momentum(model)
    return model
