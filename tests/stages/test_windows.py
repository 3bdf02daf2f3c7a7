import cv2
import numpy as np
import pytest

from stages.core.exam import INPUT_SIZE, VIEWS
from stages.core.normalize import standardize
from stages.core.windows import (
    cut_window,
    draw_epochs,
    place_window,
    sample_view_input,
    view_input,
)

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


def straightforward_view_input(image, view, best_center, rng, augmentation):
    """The reference's window rules written out plainly: whole image padded, cut, resized.

    Independent of stages.core.windows, which draws first and pads only the window's
    region: both must give the same bits.
    """
    angle = view.split("-")[1]
    window_h, window_w = INPUT_SIZE[angle]
    crop_noise = size_noise = 100 if augmentation else 0
    multiplier = rng.uniform(-1, 1, 2) if crop_noise else np.zeros(2, np.float32)
    height, width = image.shape[:2]
    top, left = best_center[0] - window_h // 2, best_center[1] - window_w // 2
    margin = crop_noise + size_noise
    pad_top = pad_bottom = pad_right = 0
    if angle == "CC" and height < window_h + 2 * margin:
        pad = window_h - height + 2 * margin
        pad_top, pad_bottom, top = int(pad / 2), pad - int(pad / 2), margin
    if angle == "MLO" and height < window_h + margin:
        pad_bottom, top = window_h - height + margin, 0
    if width < window_w + margin:
        pad_right, left = window_w - width + margin, 0
    padded = np.pad(image, ((pad_top, pad_bottom), (0, pad_right), (0, 0)))
    height, width = padded.shape[:2]
    top = min(max(top, 0), height - window_h)
    left = min(max(left, 0), width - window_w)
    bottom, right = top + window_h, left + window_w
    for axis, (start, end, length) in enumerate(((top, bottom, height), (left, right, width))):
        if start == 0:
            multiplier[axis] = abs(multiplier[axis])
        elif end == length:
            multiplier[axis] = -abs(multiplier[axis])
    room_y = height - bottom if multiplier[0] >= 0 else top
    room_x = width - right if multiplier[1] >= 0 else left
    offset = np.round(np.array((min(crop_noise, room_y), min(crop_noise, room_x))) * multiplier)
    borders = np.array((top, bottom, left, right), np.int32)
    borders += np.array((offset[0], offset[0], offset[1], offset[1]), np.int32)
    size_multiplier = rng.uniform(-1, 1, 4)
    vertical = min(size_noise, borders[0], height - borders[1], borders[2], width - borders[3])
    horizontal = np.round(vertical * window_w / window_h)
    limits = np.array((vertical, vertical, horizontal, horizontal), np.int32)
    borders += np.array(np.round(limits * size_multiplier), np.int32)
    top, bottom, left, right = borders
    window = padded[top:bottom, left:right]
    if window.shape[:2] != (window_h, window_w):
        window = cv2.resize(window, (window_w, window_h), interpolation=cv2.INTER_CUBIC)
        window = window.reshape(window_h, window_w, -1)
    mammogram = window[:, :, 0].copy()
    mammogram -= mammogram.mean()
    mammogram /= max(mammogram.std(), np.float32(1e-5))
    return np.stack([mammogram] + [window[:, :, c] for c in range(1, window.shape[2])])


def tissue_image(height, width, channels, seed):
    """Random float32 tissue on a zero background, heatmap-like extra channels."""
    rng = np.random.default_rng(seed)
    image = rng.random((height, width, channels), dtype=np.float32)
    image[:, :, 0] *= 4000
    image[:, width * 2 // 3 :, 0] = 0  # background far from the chest wall
    return image


# (height, width), best_center per case: full-size crops that get padded (as the sample
# exams do), crops larger than the windows plus noise, small and tiny padded ones, and
# centres near or past the edges.
SAMPLER_CASES = [
    ((2794, 1446), (1397, 423)),
    ((3049, 1512), (1510, 587)),
    ((3400, 2400), (1700, 1200)),
    ((3400, 2400), (60, 2390)),
    ((3400, 2400), (3390, 5)),
    ((900, 600), (450, -250)),
    ((300, 280), (150, 140)),
]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("augmentation", [True, False])
def test_sampler_gives_the_straightforward_windows_bit_for_bit(channels, augmentation):
    # Without augmentation nothing random reaches the window: one seed is enough.
    for seed in (0, 7) if augmentation else (0,):
        ours, plain = np.random.RandomState(seed), np.random.RandomState(seed)
        for case, (shape, centre) in enumerate(SAMPLER_CASES):
            image = tissue_image(*shape, channels, seed=case)
            for view in ("L-CC", "R-MLO", "R-CC", "L-MLO"):
                window = sample_view_input(image, view, centre, ours, augmentation)
                expected = straightforward_view_input(image, view, centre, plain, augmentation)
                assert window.shape == expected.shape and window.dtype == np.float32
                assert np.array_equal(window, expected), (seed, shape, centre, view)
        assert ours.uniform() == plain.uniform()  # the same number of draws


def test_epoch_plan_draws_in_the_reference_order():
    """Two images in a view: randint picks one, then the window's draws, view by view."""
    views = {view: [tissue_image(1000 + 37 * i, 700, 3, i) for i in range(2)] for view in VIEWS}
    centres = {view: [(500, 350), (520, 300)] for view in VIEWS}
    shapes = {view: [image.shape for image in images] for view, images in views.items()}
    plan = draw_epochs(shapes, centres, 3, True, seed=5)
    plain = np.random.RandomState(5)
    for epoch in plan:
        assert [window.view for window in epoch] == list(VIEWS)
        for window in epoch:
            index = plain.randint(0, 2)
            expected = straightforward_view_input(
                views[window.view][index], window.view, centres[window.view][index], plain, True
            )
            assert window.image_index == index
            cut = view_input(views[window.view][index], window.placement, window.view)
            assert np.array_equal(cut, expected)
