"""The tumour segmentation U-Net (segmentation-models), built uncompiled, and its input scaling.

It takes float32 pixels in 0..255 and scales them inside the model, so that training,
evaluation and predict feed the same thing.
"""

import keras
import segmentation_models as sm

from brain_mri.models.batch_norm import use_batch_norm_momentum
from brain_mri.models.pretrained import weights_error

# mean pixel value (0..255) at or below which a pixel is background
BACKGROUND = 10.0


def per_slice_intensity(pixels):
    """Divides each channel of a slice by that channel's mean over the head (pixels above background).

    The LGG scans come from several institutions and differ in brightness by a factor of two
    and more (mean FLAIR in the head: 25 for one sample patient, 83 for another), while a
    tumour shows as brighter than the brain around it. Scaled this way, the head's mean is 1
    in every channel of every slice, and the background stays 0. Keras operations, not a layer
    class of ours: a saved model then loads anywhere Keras does (MLflow's loaders, without this
    package). Computed in the input's float32: the sums overflow float16.
    """
    head = keras.ops.cast(keras.ops.mean(pixels, axis=-1, keepdims=True) > BACKGROUND, "float32")
    head_sum = keras.ops.sum(pixels * head, axis=(1, 2), keepdims=True)
    head_pixels = keras.ops.maximum(keras.ops.sum(head, axis=(1, 2), keepdims=True), 1.0)
    return pixels / keras.ops.maximum(head_sum / head_pixels, 1.0)


def build_unet(
    image_size: int, backbone: str, encoder_weights: str | None = None, input_scaling: str = "fixed"
) -> keras.Model:
    """segmentation-models' U-Net with one sigmoid output channel: P(tumour) per pixel.

    `input_scaling`: `fixed` divides pixels by 255; `per_slice` is `per_slice_intensity`.
    """
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    try:
        unet = sm.Unet(
            backbone,
            encoder_weights=encoder_weights,
            input_shape=(image_size, image_size, 3),
            classes=1,
            activation="sigmoid",
        )
    except Exception as error:  # Keras raises a bare Exception when the download fails
        if encoder_weights is None:
            raise
        raise weights_error("train_unet.encoder_weights", encoder_weights, error) from None
    scaled = per_slice_intensity(inputs) if input_scaling == "per_slice" else keras.layers.Rescaling(1 / 255)(inputs)
    probabilities = unet(scaled)
    # float32 output even under mixed precision, for a stable loss
    outputs = keras.layers.Activation("linear", dtype="float32", name="tumour_probability")(probabilities)
    model = keras.Model(inputs, outputs, name=f"unet_{backbone}")
    use_batch_norm_momentum(model)
    return model
