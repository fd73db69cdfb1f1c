import numpy as np
import pytest

from brain_mri.data.processed import NpyRows


@pytest.fixture
def stored(tmp_path):
    array = np.random.default_rng(0).integers(0, 255, (7, 5, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "array.npy", array)
    return array, NpyRows(tmp_path / "array.npy")


def test_rows_read_on_demand_equal_the_stored_array(stored):
    array, rows = stored
    assert rows.shape == array.shape and rows.ndim == 4 and len(rows) == 7
    assert np.array_equal(rows[3], array[3]) and np.array_equal(rows[-1], array[-1])
    assert np.array_equal(rows[[6, 0, 2]], array[[6, 0, 2]])
    assert np.array_equal(rows[np.array([1, 1])], array[[1, 1]])
    assert rows[[]].shape == (0, 5, 4, 3)


def test_a_row_out_of_range_is_an_index_error(stored):
    _, rows = stored
    with pytest.raises(IndexError):
        rows[7]
