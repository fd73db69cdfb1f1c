"""The tumour segmentation U-Net (segmentation-models), built uncompiled, and its input scaling.

It takes float32 pixels in 0..255 and scales them inside the model, so that training,
evaluation and predict feed the same thing.
"""

import keras
import segmentation_models as sm

from brain_mri.models.batch_norm import use_batch_norm_momentum
from brain_mri.models.pretrained import weights_error


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
    scaled = PerSliceIntensity()(inputs) if input_scaling == "per_slice" else keras.layers.Rescaling(1 / 255)(inputs)
    probabilities = unet(scaled)
    # float32 output even under mixed precision, for a stable loss
    outputs = keras.layers.Activation("linear", dtype="float32", name="tumour_probability")(probabilities)
    model = keras.Model(inputs, outputs, name=f"unet_{backbone}")
    use_batch_norm_momentum(model)
    return model
