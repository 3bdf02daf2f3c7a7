import struct
import zlib

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
from helpers import NYU_SAMPLE, png_chunk

from stages.core.errors import DataError
from stages.io.images import read_greyscale_png, write_png


def test_real_mammogram_reads_as_uint16_like_imageio():
    path = NYU_SAMPLE / "1_L_CC.png"
    image = read_greyscale_png(path)
    assert image.dtype == np.uint16 and image.shape == (3328, 2560)
    assert np.array_equal(image, iio.imread(path))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_round_trip_keeps_dtype_and_values(tmp_path, dtype):
    image = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, (300, 257)).astype(dtype)
    write_png(tmp_path / "x.png", image)
    assert np.array_equal(read_greyscale_png(tmp_path / "x.png"), image)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]  # no temp files left


@pytest.mark.parametrize(("channels", "kind"), [(3, "RGB"), (4, "RGBA")])
def test_colour_png_is_refused(tmp_path, channels, kind):
    cv2.imwrite(str(tmp_path / "c.png"), np.zeros((20, 20, channels), np.uint8))
    with pytest.raises(DataError, match=kind):
        read_greyscale_png(tmp_path / "c.png", exam="e", file="c.png")


def test_decompression_bomb_refused_from_header(tmp_path):
    header = struct.pack(">IIBBBBB", 60000, 60000, 16, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 100)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
    data += png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(data)
    with pytest.raises(DataError, match="decompression-bomb"):
        read_greyscale_png(tmp_path / "bomb.png")


def test_truncated_and_corrupt_pngs_are_refused(tmp_path):
    image = np.random.default_rng(1).integers(0, 4000, (400, 300)).astype(np.uint16)
    write_png(tmp_path / "ok.png", image)
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated"):
        read_greyscale_png(tmp_path / "cut.png")
    corrupt = bytearray(data)
    corrupt[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    (tmp_path / "bad.png").write_bytes(bytes(corrupt))
    with pytest.raises(DataError, match="corrupt"):
        read_greyscale_png(tmp_path / "bad.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(DataError, match="not a PNG"):
        read_greyscale_png(tmp_path / "text.png")
