"""The two models, each built by one function from its hyper-parameters, uncompiled.

Both take float32 pixels in 0..255 and scale them inside the model, so that training,
evaluation and predict feed the same thing.
"""

import keras
import segmentation_models as sm

from stages.errors import PipelineError

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
    except (OSError, ValueError) as error:
        raise PipelineError(
            f"train_classifier.weights: cannot load VGG16 weights {weights!r} ({error}); "
            "use null, imagenet or a weights file"
        ) from None
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


@keras.saving.register_keras_serializable(package="brain_mri")
class PerSliceIntensity(keras.layers.Layer):
    """Divides each channel of a slice by that channel's mean over the head (pixels above background).

    The LGG scans come from several institutions and differ in brightness by a factor of two
    and more (mean FLAIR in the head: 25 for one sample patient, 83 for another), while a
    tumour shows as brighter than the brain around it. Scaled this way, the head's mean is 1
    in every channel of every slice, and the background stays 0. Computed in float32: the
    sums overflow float16.
    """

    BACKGROUND = 10.0  # mean pixel value (0..255) at or below which a pixel is background

    def __init__(self, **kwargs):
        super().__init__(**{"dtype": "float32", **kwargs})

    def call(self, pixels):
        head = keras.ops.cast(keras.ops.mean(pixels, axis=-1, keepdims=True) > self.BACKGROUND, pixels.dtype)
        head_sum = keras.ops.sum(pixels * head, axis=(1, 2), keepdims=True)
        head_pixels = keras.ops.maximum(keras.ops.sum(head, axis=(1, 2), keepdims=True), 1.0)
        return pixels / keras.ops.maximum(head_sum / head_pixels, 1.0)


def build_unet(
    image_size: int, backbone: str, encoder_weights: str | None = None, input_scaling: str = "fixed"
) -> keras.Model:
    """segmentation-models' U-Net with one sigmoid output channel: P(tumour) per pixel.

    `input_scaling`: `fixed` divides pixels by 255; `per_slice` is `PerSliceIntensity`.
    """
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    unet = sm.Unet(
        backbone,
        encoder_weights=encoder_weights,
        input_shape=(image_size, image_size, 3),
        classes=1,
        activation="sigmoid",
    )
    scaled = PerSliceIntensity()(inputs) if input_scaling == "per_slice" else keras.layers.Rescaling(1 / 255)(inputs)
    probabilities = unet(scaled)
    # float32 output even under mixed precision, for a stable loss
    outputs = keras.layers.Activation("linear", dtype="float32", name="tumour_probability")(probabilities)
    model = keras.Model(inputs, outputs, name=f"unet_{backbone}")
    use_batch_norm_momentum(model)
    return model


def use_batch_norm_momentum(model: keras.Model, momentum: float = 0.9) -> None:
    """Let batch-norm moving statistics follow the data faster than Keras' default 0.99.

    With a few steps per epoch (small datasets, CPU runs) the moving statistics stay far
    from the data at 0.99, and validation scores collapse while training scores rise.
    """
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def segmentation_loss(name: str) -> keras.losses.Loss:
    """The U-Net loss by name; Jaccard is the original project's."""
    return {
        "jaccard": sm.losses.JaccardLoss(),
        "dice": sm.losses.DiceLoss(),
        "bce_jaccard": sm.losses.bce_jaccard_loss,
    }[name]


def segmentation_metrics(threshold: float = 0.5) -> list:
    return [
        sm.metrics.IOUScore(threshold=threshold, name="iou"),
        sm.metrics.FScore(threshold=threshold, name="dice"),
    ]


def load_model(path: str) -> keras.Model:
    """Load a saved model for inference, in Keras safe mode (no arbitrary code)."""
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except (OSError, ValueError) as error:
        raise PipelineError(f"{path}: cannot load the model ({error}); run `dvc repro` to train it") from None
