import io

import numpy as np
import pytest
from PIL import Image

from brain_mri.common.errors import PipelineError
from brain_mri.data.images import crop_to_brain, decode_image, read_mask


def encode(array, fmt="PNG", mode=None):
    buffer = io.BytesIO()
    picture = Image.fromarray(array)
    if mode:
        picture = picture.convert(mode)
    picture.save(buffer, format=fmt)
    return buffer.getvalue()


def head_on_black(height=200, width=300, box=(40, 60, 150, 220)):
    image = np.zeros((height, width, 3), np.uint8)
    top, left, bottom, right = box
    image[top:bottom, left:right] = 120
    return image


def test_crop_keeps_the_head_and_removes_the_black_border():
    cropped = crop_to_brain(head_on_black())
    assert cropped.shape[:2] == (110, 160)
    assert cropped.min() == 120


def test_crop_ignores_small_bright_specks_outside_the_head():
    image = head_on_black()
    image[5:8, 5:8] = 255  # a label burnt into the corner
    assert crop_to_brain(image).shape[:2] == (110, 160)


def test_an_all_black_image_is_returned_whole():
    image = np.zeros((50, 60, 3), np.uint8)
    assert crop_to_brain(image).shape == image.shape


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P"])
def test_every_colour_mode_decodes_to_rgb(mode):
    decoded = decode_image(encode(head_on_black(), mode=mode))
    assert decoded.shape == (200, 300, 3) and decoded.dtype == np.uint8


def test_a_sixteen_bit_image_is_stretched_to_eight_bits():
    array = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    decoded = decode_image(encode(array))
    assert decoded.dtype == np.uint8 and decoded.max() == 255 and decoded.min() == 0


@pytest.mark.parametrize("data", [b"", b"not an image at all", encode(head_on_black(), "JPEG")[:200]])
def test_unreadable_bytes_raise_the_project_error(data):
    with pytest.raises(PipelineError):
        decode_image(data, "broken.jpg")


def test_a_mask_with_values_other_than_0_and_255_is_refused():
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.full((8, 8), 128, np.uint8))
    with pytest.raises(PipelineError, match="only 0 and 255"):
        read_mask(buffer.getvalue(), "m_mask.tif")
