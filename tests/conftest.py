from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
CLASSIFICATION_ARCHIVE = SHARED / "brain-mri-images-for-brain-tumor-detection.zip"
SEGMENTATION_ARCHIVE = SHARED / "lgg-mri-segmentation-sample.zip"

needs_real_data = pytest.mark.skipif(
    not (CLASSIFICATION_ARCHIVE.is_file() and SEGMENTATION_ARCHIVE.is_file()),
    reason=f"the real archives are not in {SHARED} (../shared/datasets beside the project root)",
)
