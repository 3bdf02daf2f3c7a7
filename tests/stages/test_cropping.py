import numpy as np
import pytest
import scipy.ndimage

from stages.core.cropping import crop_info, dilate, erode, largest_component
from stages.core.errors import DataError


def random_masks(count, shape, seed):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield scipy.ndimage.gaussian_filter(rng.random(shape), 2.5) > 0.5


@pytest.mark.parametrize("iterations", [1, 2, 5, 13])
def test_distance_transform_morphology_equals_iterated_cross(iterations):
    for mask in random_masks(25, (64, 48), seed=iterations):
        assert np.array_equal(
            erode(mask, iterations), scipy.ndimage.binary_erosion(mask, iterations=iterations)
        )
        assert np.array_equal(
            dilate(mask, iterations), scipy.ndimage.binary_dilation(mask, iterations=iterations)
        )


@pytest.mark.parametrize("iterations", [100, 254, 255, 300])  # 255+: no uint8 distances
def test_many_iterations_with_mask_touching_the_border(iterations):
    mask = np.zeros((1300, 1200), bool)
    mask[:900, :750] = True  # touches top and left borders: they count as background
    mask[1050:, 900:] = True
    eroded = erode(mask, iterations)
    assert eroded.any()
    assert np.array_equal(eroded, scipy.ndimage.binary_erosion(mask, iterations=iterations))
    assert np.array_equal(
        dilate(eroded, iterations), scipy.ndimage.binary_dilation(eroded, iterations=iterations)
    )


def test_largest_component_ties_go_to_first_in_raster_order():
    mask = np.zeros((10, 10), bool)
    mask[6:8, 0:3] = True  # 6 pixels, starts at row 6
    mask[1:3, 5:8] = True  # 6 pixels, starts at row 1: first in raster order
    chosen = largest_component(mask)
    assert chosen[1, 5] and not chosen[6, 0]


def test_black_image_is_a_data_error():
    with pytest.raises(DataError, match="no breast tissue"):
        crop_info(np.zeros((400, 300), np.uint16), "right")


def test_thin_lines_only_is_a_data_error():
    image = np.zeros((400, 300), np.uint16)
    image[::20, :] = 1000  # grid lines vanish under the erosion
    with pytest.raises(DataError, match="no breast tissue"):
        crop_info(image, "left")


def test_crop_removes_marker_and_keeps_breast_against_chest_wall():
    image = np.zeros((700, 600), np.uint16)
    rows, cols = np.mgrid[0:700, 0:600]
    breast = ((rows - 350) / 260.0) ** 2 + (cols / 330.0) ** 2 <= 1  # chest wall on the left
    image[breast] = 2000
    image[10:40, 550:580] = 4000  # marker: a separate component after erosion
    info = crop_info(image, "right")
    top, bottom, left, right = info.window_location
    # The tissue that survives scipy's own 100 erosions + 100 dilations (the marker does not),
    # boxed, plus the 50 px buffer above/below and on the side away from the chest wall.
    opened = scipy.ndimage.binary_dilation(
        scipy.ndimage.binary_erosion(image > 0, iterations=100), iterations=100
    )
    ys, xs = np.nonzero(opened)
    assert (top, bottom, left) == (ys.min() - 50, ys.max() + 1 + 50, 0)
    assert right == xs.max() + 1 + 50
    assert info.distance_from_starting_side == 0
    # Mirrored image, mode "left": mirrored window, landmarks measured as width - x.
    mirrored = crop_info(np.fliplr(image), "left")
    assert mirrored.window_location == (top, bottom, 600 - right, 600 - left)
    assert mirrored.distance_from_starting_side == 0


def scipy_largest_component(mask):
    """What the reference does: scipy's labels, the first of the largest by label number."""
    labels, _ = scipy.ndimage.label(mask)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == np.argmax(sizes)


def test_largest_component_equals_scipys_choice_on_random_masks_with_ties():
    rng = np.random.default_rng(7)
    for _ in range(200):
        # Sparse noise: many 1- and 2-pixel components, so ties for the largest are common.
        mask = rng.random((24, 20)) > 0.8
        assert np.array_equal(largest_component(mask), scipy_largest_component(mask))


def test_largest_component_tie_decided_by_first_pixel_not_by_extent():
    mask = np.zeros((8, 12), bool)
    mask[3:6, 0:2] = True  # 6 pixels, reaches further up-left in its bounding box ...
    mask[2, 4:7] = True  # ... but this one's first pixel (2, 4) comes first in raster order
    mask[3, 4:7] = True
    chosen = largest_component(mask)
    assert np.array_equal(chosen, scipy_largest_component(mask))
    assert chosen[2, 4] and not chosen[3, 0]
