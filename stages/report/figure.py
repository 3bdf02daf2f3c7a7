"""One view's overlay figure: "image | malignant | benign" panels with titles and colour bars.

Arrays in, an RGB uint8 array out; OpenCV only draws the text.
"""

from __future__ import annotations

import cv2
import numpy as np

from stages.core.exam import view_side
from stages.core.orientation import to_facing_right
from stages.report.overlays import (
    GREEN,
    RED,
    apply_window,
    colour_bar,
    display_window,
    grey_to_rgb,
    tint,
)

LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5
FONT = cv2.FONT_HERSHEY_SIMPLEX
STRIP_GREY = 24
GAP_GREY = 90
WHITE = (255, 255, 255)
LIGHT_RED = (255, 110, 110)
LIGHT_GREEN = (120, 235, 120)
TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


def display_orientation(image: np.ndarray, view: str, horizontal_flip: str) -> np.ndarray:
    """The image as radiologists hang it: right breasts face left, left breasts face right.

    Side by side, R on the viewer's left and L on the right, the chest walls then meet
    in the middle of the screen. With horizontal_flip "NO" this is the raw orientation.
    """
    facing_right = to_facing_right(image, view, horizontal_flip)
    return np.fliplr(facing_right) if view_side(view) == "R" else facing_right


def view_figure(
    image: np.ndarray,
    malignant: np.ndarray,
    benign: np.ndarray,
    *,
    view: str,
    image_name: str,
    horizontal_flip: str,
) -> np.ndarray:
    """Windowed mammogram, then tinted by the malignant (red) and benign (green) heatmaps.

    `image` (H, W) greyscale and both heatmaps (H, W) in [0, 1], all in raw orientation.
    """
    if not image.shape == malignant.shape == benign.shape:
        raise ValueError("image and heatmaps must have the same (H, W) shape")
    low, high = display_window(image, LOW_PERCENTILE, HIGH_PERCENTILE)
    grey, malignant, benign = (
        display_orientation(array, view, horizontal_flip)
        for array in (apply_window(image, low, high), malignant, benign)
    )
    height, width = grey.shape
    strip = max(28, round(0.06 * height))
    text = _TextStyle(strip)
    columns = [
        _panel(
            text.strip(width, f"{view}  {image_name}", WHITE),
            grey_to_rgb(grey),
            text.strip(
                width,
                f"window {low:.0f}-{high:.0f} (breast p{LOW_PERCENTILE:g}-p{HIGH_PERCENTILE:g})",
                WHITE,
                small=True,
            ),
        ),
        _panel(
            text.strip(width, f"malignant  (max {float(malignant.max()):.3f})", LIGHT_RED),
            tint(grey, malignant, RED),
            text.colour_bar_strip(width, RED),
        ),
        _panel(
            text.strip(width, f"benign  (max {float(benign.max()):.3f})", LIGHT_GREEN),
            tint(grey, benign, GREEN),
            text.colour_bar_strip(width, GREEN),
        ),
    ]
    gap = np.full((columns[0].shape[0], max(2, round(0.012 * width)), 3), GAP_GREY, np.uint8)
    return np.hstack([columns[0], gap, columns[1], gap, columns[2]])


def _panel(header: np.ndarray, body: np.ndarray, footer: np.ndarray) -> np.ndarray:
    return np.vstack([header, body, footer])


class _TextStyle:
    """Text sized to the strip height, so labels stay legible at any image size."""

    def __init__(self, strip: int):
        self.height = strip
        reference_height = cv2.getTextSize("Ag", FONT, 1.0, 1)[0][1]
        self.scale = 0.55 * strip / reference_height
        self.thickness = max(1, round(1.6 * self.scale))

    def strip(
        self, width: int, label: str, colour: tuple[int, int, int], *, small: bool = False
    ) -> np.ndarray:
        canvas = np.full((self.height, width, 3), STRIP_GREY, np.uint8)
        scale = self.scale * (0.7 if small else 1.0)
        # Shrink a label that would run past the panel's edge.
        text_width = cv2.getTextSize(label, FONT, scale, self.thickness)[0][0]
        scale *= min(1.0, (width - 0.6 * self.height) / text_width)
        baseline = round(0.5 * self.height + 0.25 * self.height * (0.7 if small else 1.0))
        cv2.putText(
            canvas, label, (round(0.3 * self.height), baseline), FONT, scale, colour,
            self.thickness, cv2.LINE_AA,
        )  # fmt: skip
        return canvas

    def colour_bar_strip(self, width: int, colour: tuple[int, int, int]) -> np.ndarray:
        """Colour bar from p = 0 to p = 1 with tick labels, as tall as a title strip."""
        canvas = np.full((self.height, width, 3), STRIP_GREY, np.uint8)
        margin = round(0.08 * width)
        bar_length = width - 2 * margin
        bar_top, bar_height = round(0.1 * self.height), round(0.35 * self.height)
        canvas[bar_top : bar_top + bar_height, margin : margin + bar_length] = colour_bar(
            bar_length, bar_height, colour
        )
        tick_scale = 0.6 * self.scale
        for tick in TICKS:
            label = f"{tick:g}"
            label_width = cv2.getTextSize(label, FONT, tick_scale, self.thickness)[0][0]
            x = margin + round(tick * (bar_length - 1))
            canvas[bar_top + bar_height : bar_top + bar_height + round(0.1 * self.height),
                   max(0, x - 1) : x + 1] = WHITE  # fmt: skip
            cv2.putText(
                canvas, label, (x - label_width // 2, round(0.92 * self.height)), FONT,
                tick_scale, WHITE, self.thickness, cv2.LINE_AA,
            )  # fmt: skip
        return canvas
