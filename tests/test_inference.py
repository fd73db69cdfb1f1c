"""What predict reads (the inputs a user names, a distinct output name for each) and its cascade."""

import os
import weakref
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from brain_mri.common.errors import PipelineError
from brain_mri.common.params import Evaluate
from brain_mri.inference import cascade, predict
from brain_mri.inference.cascade import (
    BATCH_PIXELS,
    batch_is_full,
    forward_pass,
    gate_passes,
    input_kind,
    predict_images,
    predict_in_batches,
)
from brain_mri.inference.predict import decoded_batches, expand_inputs, output_stems
from brain_mri.inference.volumes import keep_largest_components, slice_position, volume_order


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


def echo_models(size: int = 64):
    """Real Keras models: a classifier sure of tumour, and a segmenter whose P(tumour) at a pixel is its
    first channel's brightness (255: about 1, 0: about 0, 128: 0.5)."""
    import keras

    classifier, _ = constant_models(0.9, 0.5, size)
    image = keras.Input((size, size, 3))
    first_channel = keras.initializers.Constant(np.array([0.1, 0.0, 0.0]).reshape(1, 1, 3, 1))
    bright = keras.layers.Conv2D(
        1,
        1,
        activation="sigmoid",
        kernel_initializer=first_channel,
        bias_initializer=keras.initializers.Constant(-12.8),
    )(image)
    return classifier, keras.Model(image, bright)


def scan_with(*squares: tuple[int, int, int]) -> np.ndarray:
    """A dark 64x64 RGB slice with bright squares at (row, column, side)."""
    scan = np.zeros((64, 64, 3), np.uint8)
    for row, column, side in squares:
        scan[row : row + side, column : column + side] = 255
    return scan


def test_largest_component_keeps_each_patients_largest_3d_component_whole_across_batches():
    """A patient's slices are one volume, in slice order, whatever the order and batch size they come in:
    its speck three slices away from the tumour goes, another patient's lone speck stays."""
    big, speck = (20, 20, 16), (2, 50, 4)
    # in batches of three, in slice order, A's speck would be a batch with B's only
    scans = {("A", 3): scan_with(big), ("A", 1): scan_with(big), ("A", 6): scan_with(speck), ("B", 1): scan_with(speck)}
    scans[("A", 2)] = scan_with(big)
    positions = list(scans)
    images = list(scans.values())
    plain = Evaluate(threshold=0.5, mask_threshold=0.5, min_tumour_pixels=0)
    post_processed = plain.model_copy(update={"largest_component": True})

    before = predict_in_batches(images, "slice", echo_models(), plain, positions, batch_size=3)
    after = predict_in_batches(images, "slice", echo_models(), post_processed, positions, batch_size=3)
    pixels = {
        position: (int(b.mask.sum() // 255), int(a.mask.sum() // 255))
        for position, b, a in zip(positions, before, after, strict=True)
    }
    assert pixels == {
        ("A", 1): (256, 256),
        ("A", 2): (256, 256),
        ("A", 3): (256, 256),
        ("A", 6): (16, 0),
        ("B", 1): (16, 16),
    }
    (alone,) = predict_in_batches([scan_with(speck)], "slice", echo_models(), post_processed, [None])
    assert alone.mask.any(), "an input with no place in a volume is left as it is"


def test_a_left_right_flip_averages_the_map_with_that_of_the_mirrored_input():
    """A segmenter blind to the right half of a slice finds a square there only in the mirrored input."""
    import keras

    classifier, echo = echo_models()
    left_half = np.zeros((1, 64, 64, 1), np.float32)
    left_half[:, :, :32] = 1
    blind_right = keras.Model(echo.input, keras.layers.Lambda(lambda p: p * left_half)(echo.output))
    on_the_left, on_the_right = scan_with((20, 4, 8)), scan_with((20, 52, 8))
    config = Evaluate(threshold=0.5, mask_threshold=0.4, min_tumour_pixels=0)
    flipped = config.model_copy(update={"test_time_flip": True})
    plain = predict_images([on_the_left, on_the_right], ["slice"] * 2, (classifier, blind_right), config)
    averaged = predict_images([on_the_left, on_the_right], ["slice"] * 2, (classifier, blind_right), flipped)
    assert [p.mask.sum() // 255 for p in plain] == [64, 0]
    assert [p.mask.sum() // 255 for p in averaged] == [64, 64], "seen once in two: P about 0.5, over 0.4"
    assert (averaged[1].mask > 0)[20:28, 52:60].all()


def test_a_kaggle_3m_patients_slices_come_together_at_its_first_slice():
    """Slices of one kaggle_3m patient folder (<patient>/<patient>_<k>.tif) are one volume; a mask, a namesake
    in another folder and numbered scans that are not laid out so (scans/IMG_0001.tif) are not."""
    names = ("P/P_2.tif", "scan.jpg", "Q/Q_1.tif", "P/P_1.tif", "P/P_1_mask.tif", "x/P_3.tif", "scans/IMG_1.tif")
    files = [Path(name) for name in (*names, "scans/IMG_2.tif")]
    positions = [slice_position(path) for path in files]
    assert volume_order(positions) == [3, 0, 1, 2, 4, 5, 6, 7]
    assert positions[0][0] == positions[3][0] != positions[2][0]
    assert positions[1] is positions[4] is positions[5] is positions[6] is positions[7] is None


def test_a_batch_ends_at_its_size_or_pixel_budget_but_never_inside_a_volume():
    a1, a2, b1 = ("A", 1), ("A", 2), ("B", 1)
    assert not batch_is_full(3, 3 * 64 * 64, 4, a1, b1)
    assert batch_is_full(4, 4 * 64 * 64, 4, a1, b1) and batch_is_full(4, 0, 4, None, None)
    assert batch_is_full(1, BATCH_PIXELS, 4, None, a1), "one huge scan is a batch of its own"
    assert not batch_is_full(4, BATCH_PIXELS, 4, a1, a2), "the rest of A's volume joins the batch"
    assert batch_is_full(5, BATCH_PIXELS, 4, a2, b1)


def test_predict_decodes_in_batches_that_hold_each_patient_whole_and_lists_what_it_could_not_read(
    tmp_path, monkeypatch
):
    names = ["scan_a.png", "P/P_3.tif", "bad.png", "P/P_1.tif", "Q/Q_1.tif", "P/P_2.tif", "scan_b.png", "broken.tif"]
    files = [tmp_path / name for name in names]
    for path in files:
        path.parent.mkdir(exist_ok=True)
        if path.suffix == ".tif":
            tifffile.imwrite(path, scan_with((8, 8, 8)))
    Image.fromarray(scan_with()).save(files[0])
    Image.fromarray(scan_with()).save(files[6])
    files[2].write_bytes(b"")  # an empty file: not an image
    files[7].write_bytes(b"II*\x00")  # a truncated TIFF

    def read(batches):
        return [([path.name for path, _, _ in batch], [row["input"] for row in skipped]) for batch, skipped in batches]

    as_volumes = read(decoded_batches(files, [path.stem for path in files], volumes=True, batch_size=2))
    assert as_volumes == [
        (["scan_a.png", "P_1.tif", "P_2.tif", "P_3.tif"], []),  # full at two, but not inside P's volume
        (["Q_1.tif", "scan_b.png"], [str(files[2])]),
        ([], [str(files[7])]),  # the last input could not be read: its row still comes
    ]
    in_order = read(decoded_batches(files, [path.stem for path in files], volumes=False, batch_size=2))
    assert [names for names, _ in in_order] == [
        ["scan_a.png", "P_3.tif"],
        ["P_1.tif", "Q_1.tif"],
        ["P_2.tif", "scan_b.png"],
        [],
    ]
    # a pixel budget of two slices ends batches of up to 16 (the whole of P's volume still one batch)
    monkeypatch.setattr(cascade, "BATCH_PIXELS", 2 * 64 * 64)
    by_pixels = read(decoded_batches(files, [path.stem for path in files], volumes=True, batch_size=16))
    assert [names for names, _ in by_pixels] == [
        ["scan_a.png", "P_1.tif", "P_2.tif", "P_3.tif"],
        ["Q_1.tif", "scan_b.png"],
        [],
    ]


def test_predict_holds_no_earlier_batch_while_it_decodes_the_next(tmp_path, monkeypatch):
    """stages/predict.py frees each batch when done with it; nothing on the way may keep one alive, or
    memory holds two batches of decoded scans at once."""
    files = [tmp_path / f"scan_{k}.png" for k in range(6)]
    for path in files:
        path.write_bytes(b"stands for a scan")
    decoded: list[weakref.ref] = []
    alive_at_each_decode = []

    def decode_image(data: bytes, name: str) -> np.ndarray:
        alive_at_each_decode.append(sum(image() is not None for image in decoded))
        image = np.zeros((8, 8, 3), np.uint8)
        decoded.append(weakref.ref(image))
        return image

    monkeypatch.setattr(predict, "decode_image", decode_image)
    for batch, _ in decoded_batches(files, [path.stem for path in files], volumes=False, batch_size=2):
        del batch  # as stages/predict.py does
    assert alive_at_each_decode == [0, 1, 0, 1, 0, 1], "only the batch being filled"


def test_a_patients_slices_of_another_size_are_a_volume_of_their_own():
    big, speck = np.zeros((64, 64), np.uint8), np.zeros((64, 64), np.uint8)
    big[10:40, 10:40], speck[50:52, 50:52] = 255, 255
    small_speck = np.zeros((32, 32), np.uint8)
    small_speck[2:4, 2:4] = 255
    masks = [small_speck, big, big, speck]
    kept = keep_largest_components(masks, [("P", 1), ("P", 2), ("P", 3), ("P", 5)])
    assert [int(m.sum() // 255) for m in kept] == [4, 900, 900, 0]
