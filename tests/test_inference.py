"""What predict reads (the inputs a user names, a distinct output name for each) and its cascade."""

import os
from pathlib import Path

import numpy as np
import pytest

from brain_mri.common.errors import PipelineError
from brain_mri.common.params import Evaluate
from brain_mri.inference.cascade import forward_pass, gate_passes, input_kind, predict_images
from brain_mri.inference.predict import expand_inputs, output_stems


def test_a_kaggle_3m_patient_folder_gives_its_slices_not_their_ground_truth_masks(tmp_path):
    patient = tmp_path / "TCGA_CS_4941_19960909"
    patient.mkdir()
    for name in ("TCGA_CS_4941_19960909_1.tif", "TCGA_CS_4941_19960909_1_mask.tif", "notes.txt", "scan.jpg"):
        (patient / name).write_bytes(b"x")
    out = tmp_path / "predictions"
    assert [p.name for p in expand_inputs([tmp_path], out)] == ["TCGA_CS_4941_19960909_1.tif", "scan.jpg"]
    named = patient / "TCGA_CS_4941_19960909_1_mask.tif"
    assert expand_inputs([named], out) == [named], "a file named on the command line is read as given"


def test_inputs_of_one_name_in_two_folders_get_distinct_outputs(tmp_path):
    assert output_stems([tmp_path / "a/scan.png", tmp_path / "b/scan.png", tmp_path / "scan.jpg"]) == [
        "scan",
        "scan-2",
        "scan-3",
    ]


@pytest.mark.reliability
def test_an_input_named_like_anothers_numbered_output_keeps_its_own_name():
    stems = output_stems([Path("a.png"), Path("a.jpg"), Path("a-2.png"), Path("x/a-2.png")])
    assert stems == ["a", "a-3", "a-2", "a-2-2"] and len(set(stems)) == len(stems)


@pytest.mark.reliability
def test_predict_never_reads_its_own_outputs_and_refuses_a_file_as_out(tmp_path):
    (tmp_path / "scan.jpg").write_bytes(b"x")
    out = tmp_path / "predictions"
    out.mkdir()
    (out / "scan_mask.png").write_bytes(b"x")
    (out / "scan_overlay.png").write_bytes(b"x")
    assert expand_inputs([tmp_path], out) == [tmp_path / "scan.jpg"]
    assert expand_inputs([tmp_path], Path(os.path.relpath(out))) == [tmp_path / "scan.jpg"], "however out is written"
    with pytest.raises(PipelineError, match="--out .* is a file; name a folder"):
        expand_inputs([tmp_path], tmp_path / "scan.jpg")


def constant_models(tumour_probability: float, pixel_probability: float, size: int = 32):
    """Real Keras models that answer the same everywhere: a classifier giving `tumour_probability`,
    a segmenter giving `pixel_probability` at every pixel (zero weights, the answer in the bias)."""
    import keras

    def bias(probability: float) -> keras.initializers.Initializer:
        return keras.initializers.Constant(float(np.log(probability / (1 - probability))))

    image = keras.Input((size, size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(image)
    classifier = keras.Model(
        image,
        keras.layers.Dense(1, "sigmoid", kernel_initializer="zeros", bias_initializer=bias(tumour_probability))(pooled),
    )
    unet = keras.Model(
        image,
        keras.layers.Conv2D(
            1, 1, activation="sigmoid", kernel_initializer="zeros", bias_initializer=bias(pixel_probability)
        )(image),
    )
    return classifier, unet


def test_slices_are_gated_by_the_unets_area_and_other_images_by_the_classifier():
    config = Evaluate(threshold=0.5, mask_threshold=0.5, min_tumour_pixels=50)
    scan = np.full((256, 256, 3), 90, np.uint8)
    sure_of_tumour_pixels_classifier_says_healthy = constant_models(0.1, 0.9)
    kinds = [input_kind(Path("TCGA_CS_4941_19960909_7.tif")), input_kind(Path("scan.JPG"))]
    assert kinds == ["slice", "image"]
    as_slice, as_image = predict_images([scan, scan], kinds, sure_of_tumour_pixels_classifier_says_healthy, config)
    assert (as_slice.gate, as_slice.segmented, int(as_slice.mask.all())) == ("unet_area", True, 1)
    assert (as_image.gate, as_image.segmented, int(as_image.mask.any())) == ("classifier", False, 0)
    assert as_image.unet_mask.all(), "the U-Net's own mask is kept beside the gated one"
    no_tumour_pixels_classifier_says_tumour = constant_models(0.9, 0.1)
    as_slice, as_image = predict_images([scan, scan], kinds, no_tumour_pixels_classifier_says_tumour, config)
    assert not as_slice.segmented and as_image.segmented
    (ungated,) = predict_images([scan], ["image"], sure_of_tumour_pixels_classifier_says_healthy, config, cascade=False)
    assert ungated.segmented and ungated.mask.all()


def test_the_slice_gates_pixel_count_is_for_256x256_and_scales_with_the_slices_area():
    config = Evaluate(threshold=0.5, mask_threshold=0.5, min_tumour_pixels=50)
    full_size, quarter = np.zeros((256, 256), np.uint8), np.zeros((128, 128), np.uint8)
    full_size.flat[:51], quarter.flat[:13] = 255, 255
    assert gate_passes("slice", 0.0, full_size, config) and gate_passes("slice", 0.0, quarter, config)
    full_size.flat[50], quarter.flat[12] = 0, 0
    assert not gate_passes("slice", 1.0, full_size, config) and not gate_passes("slice", 1.0, quarter, config)


def batch_counting_models(size: int = 32):
    """Real Keras models whose every output is the number of inputs they were given at once."""
    import keras

    image = keras.Input((size, size, 3))
    counted = keras.layers.Lambda(
        lambda x: keras.ops.ones_like(x[..., :1]) * keras.ops.cast(keras.ops.shape(x)[0], "float32")
    )(image)
    return keras.Model(image, keras.layers.GlobalAveragePooling2D()(counted)), keras.Model(image, counted)


def test_a_batch_larger_than_model_batch_reaches_the_models_in_parts_through_one_graph():
    """predict --batch-size 70 decodes 70 inputs together; the models see at most 32 of them at once,
    and each model's forward pass is traced once whatever the batch size (predict_on_batch traced
    again for new batch sizes, and TensorFlow warned of retracing)."""
    models = batch_counting_models()
    images = [np.full((40, 48, 3), value, np.uint8) for value in range(70)]
    config = Evaluate(threshold=0.5, mask_threshold=0.5, min_tumour_pixels=50)
    predictions = predict_images(images, ["image"] * 70, models, config)
    assert [p.tumour_probability for p in predictions] == [32.0] * 64 + [6.0] * 6
    assert all(p.segmented and p.mask.shape == (40, 48) for p in predictions)
    predict_images(images[:5], ["slice"] * 5, models, config)
    assert [forward_pass(model).experimental_get_tracing_count() for model in models] == [1, 1]
