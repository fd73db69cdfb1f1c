"""How well the brain crop does on the 253 real images of ../shared/datasets.

Prints, over all images: the fraction where the crop keeps the whole head (at least 99% of
the head's pixels inside the crop) and where it removes the black border (at most 2% of
the image's width/height of fully dark rows or columns left on any side), and writes a
picture of the worst crops. The "head" here is every pixel above the crop's threshold
in a blob that survives removing specks and thin lines (frames, rulers) and covers at
least 0.5% of the image, so it does not depend on the crop's own choice of contours.

    .venv/bin/python bench/crop_quality.py [path/to/brain-mri-images-for-brain-tumor-detection.zip]
"""

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from brain_mri.common.outputs import write_png
from brain_mri.data.figures import crop_examples
from brain_mri.data.images import brain_box, decode_image, head_mask
from brain_mri.data.layouts import list_classification_images
from brain_mri.data.sources import safe_extract

ROOT = Path(__file__).resolve().parents[1]

ARCHIVE = ROOT.parent / "shared/datasets/brain-mri-images-for-brain-tumor-detection.zip"


def head_pixels(image: np.ndarray) -> np.ndarray:
    """Bright pixels of every blob that is neither a speck nor a thin line (frames, rulers)."""
    mask = head_mask(image)
    solid = cv2.dilate(cv2.erode(mask, None, iterations=2), None, iterations=3)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(solid)
    keep = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= 0.005 * mask.size]
    return np.isin(labels, keep) & (mask > 0)


def crop_quality(image: np.ndarray) -> tuple[bool, bool]:
    """(whole head kept, border removed) for one image."""
    head = head_pixels(image)
    box = brain_box(image)
    if box is None or not head.any():
        return False, False
    top, bottom, left, right = box
    kept = head[top:bottom, left:right].sum() / head.sum() >= 0.99
    inside = head[top:bottom, left:right]
    rows, cols = inside.any(axis=1), inside.any(axis=0)
    margins = (
        np.argmax(rows) / image.shape[0],
        np.argmax(rows[::-1]) / image.shape[0],
        np.argmax(cols) / image.shape[1],
        np.argmax(cols[::-1]) / image.shape[1],
    )
    return bool(kept), bool(max(margins) <= 0.02)


def main() -> None:
    archive = Path(sys.argv[1]) if len(sys.argv) > 1 else ARCHIVE
    with tempfile.TemporaryDirectory() as folder:
        safe_extract(archive, Path(folder), max_files=10_000, max_bytes=10**9)
        images = list_classification_images(Path(folder))
        results, failures = [], []
        for path in images["path"]:
            image = decode_image(Path(path).read_bytes(), path)
            kept, tight = crop_quality(image)
            results.append((kept, tight))
            if not (kept and tight) and len(failures) < 8:
                top, bottom, left, right = brain_box(image) or (0, image.shape[0], 0, image.shape[1])
                failures.append((Path(path).name, image, image[top:bottom, left:right]))
    results = np.array(results)
    print(f"images: {len(results)}")
    print(f"whole head kept: {results[:, 0].mean():.3f}")
    print(f"border removed:  {results[:, 1].mean():.3f}")
    print(f"both:            {results.all(axis=1).mean():.3f}")
    if failures:
        out = ROOT / "bench" / "crop_failures.png"
        write_png(out, crop_examples(failures))
        print(f"worst crops: {out}")


if __name__ == "__main__":
    main()
