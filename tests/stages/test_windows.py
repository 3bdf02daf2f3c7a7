import numpy as np
import pytest

from stages.core.exam import INPUT_SIZE
from stages.core.normalize import standardize
from stages.core.windows import cut_window, place_window, sample_view_input

CC_H, CC_W = INPUT_SIZE["CC"]
MLO_H, MLO_W = INPUT_SIZE["MLO"]


def ramp_image(height, width, channels=1):
    """Each pixel's value encodes its position, so a window's content tells where it was cut."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.repeat((rows * 10000 + cols)[:, :, None], channels, axis=2)


def test_no_augmentation_window_is_centred_on_best_center():
    image = ramp_image(3200, 2400)
    rng = np.random.RandomState(0)
    padded, borders = place_window(image, "L-CC", (1500, 1200), rng, 0, 0)
    assert padded is image
    assert list(borders) == [
        1500 - CC_H // 2,
        1500 + CC_H - CC_H // 2,
        1200 - CC_W // 2,
        1200 + CC_W - CC_W // 2,
    ]
    window = cut_window(padded, borders, "L-CC")
    assert window.shape == (CC_H, CC_W, 1)
    assert window[0, 0, 0] == image[borders[0], borders[2], 0]


def test_window_past_the_edge_is_shifted_inside():
    image = ramp_image(3000, 2000)
    _, borders = place_window(image, "R-MLO", (100, 1990), np.random.RandomState(0), 0, 0)
    assert list(borders) == [0, MLO_H, 2000 - MLO_W, 2000]


def test_random_draws_follow_the_reference_order():
    image = ramp_image(3300, 2300)
    rng = np.random.RandomState(0)
    place_window(image, "L-CC", (1600, 1100), rng, 100, 100)
    expected = np.random.RandomState(0)
    expected.uniform(-1, 1, 2)
    expected.uniform(-1, 1, 4)
    assert rng.uniform() == expected.uniform()
    rng = np.random.RandomState(0)
    place_window(image, "L-CC", (1600, 1100), rng, 0, 0)  # no crop noise: only size noise
    expected = np.random.RandomState(0)
    expected.uniform(-1, 1, 4)
    assert rng.uniform() == expected.uniform()


def test_augmented_window_stays_inside_and_near_the_centre():
    image = ramp_image(3300, 2300)
    for seed in range(20):
        _, borders = place_window(
            image, "L-CC", (1600, 1100), np.random.RandomState(seed), 100, 100
        )
        top, bottom, left, right = borders
        assert 0 <= top < bottom <= 3300 and 0 <= left < right <= 2300
        assert abs((top + bottom) / 2 - 1600) <= 200 and abs((left + right) / 2 - 1100) <= 200
        assert abs((bottom - top) - CC_H) <= 200 and abs((right - left) - CC_W) <= 200


def test_short_cc_image_is_padded_top_and_bottom_around_the_noise_margin():
    image = ramp_image(2000, 2500) + 1
    padded, _ = place_window(image, "L-CC", (1000, 1200), np.random.RandomState(0), 100, 100)
    pad = CC_H - 2000 + 400
    assert padded.shape[0] == 2000 + pad
    assert padded[int(pad / 2), 0, 0] == image[0, 0, 0] and padded[0, 0, 0] == 0


def test_narrow_mlo_image_is_padded_on_the_right_only():
    image = ramp_image(3200, 1000) + 1
    padded, _ = place_window(image, "L-MLO", (1600, 500), np.random.RandomState(0), 0, 0)
    assert padded.shape == (3200, MLO_W, 1)
    assert np.array_equal(padded[:, :1000], image) and not padded[:, 1000:].any()


def test_sample_view_input_standardises_only_the_image_channel():
    image = ramp_image(3000, 2000, channels=3)
    image[:, :, 1:] = 0.25
    window = sample_view_input(image, "L-CC", (1500, 1000), np.random.RandomState(1), True)
    assert window.shape == (3, CC_H, CC_W) and window.dtype == np.float32
    assert abs(float(window[0].mean())) < 1e-3 and abs(float(window[0].std()) - 1) < 1e-3
    assert np.allclose(window[1:], 0.25, atol=1e-6)


def test_standardize_floors_the_std():
    flat = np.full((4, 4), 7, np.float32)
    assert np.array_equal(standardize(flat), np.zeros((4, 4), np.float32))


@pytest.mark.parametrize("view", ["L-CC", "R-MLO"])
def test_tiny_image_still_gives_a_full_size_input(view):
    image = ramp_image(300, 300)
    window = sample_view_input(image, view, (150, 150), np.random.RandomState(0), True)
    assert window.shape[1:] == INPUT_SIZE[view.split("-")[1]]
