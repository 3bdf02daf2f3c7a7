"""Greyscale PNG reading and writing with the checks a pipeline over real data needs.

The header is read before any pixel is decoded, so a colour image, an unsupported bit
depth or a decompression bomb is refused by name at the cost of a few bytes; then the
file's size and every chunk's length are checked against what that header allows before
the decoder sees the bytes, so a length field claiming gigabytes cannot make it allocate
them.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stages.core.errors import DataError
from stages.io.pfs import atomic_write_bytes, read_at_most

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A full-field mammogram has at most ~28 Mpixel (4728 x 5928 at 50 um); 30 Mpixel leaves
# room, refuses the bomb headers (e.g. 60000 x 60000) before they are decoded, and keeps
# crop (512M) and extract_centers (256M) within their memory requests on an image of
# that size, however it is made: 59 Mpixel of tissue took crop to 521 MiB.
MAX_PIXELS = 30_000_000
COLOUR_TYPES = {0: "greyscale", 2: "RGB", 3: "palette", 4: "greyscale+alpha", 6: "RGBA"}
# What a PNG may hold beyond its deflated pixels (ancillary chunks: an ICC profile, text)
# and deflate's worst-case growth of incompressible rows (5 bytes per 16 KiB block, +1%).
PNG_OVERHEAD_BYTES = 1 << 20
# A chunk header (length, type) and its CRC.
CHUNK_FRAME = 12
# libpng writes IDAT chunks of at least 8 KiB; this many chunks is far beyond any real file
# and bounds the walk over a file made of empty chunks.
MAX_CHUNKS = 100_000
# Fast deflate: the cropped images are intermediate files, read once downstream.
PNG_WRITE_COMPRESSION = 1


@dataclass(frozen=True)
class PngHeader:
    width: int
    height: int
    bit_depth: int
    colour_type: int


def read_png_header(path: Path, *, exam: str | None = None, file: str | None = None) -> PngHeader:
    """Parse the IHDR chunk; DataError if the file is not a PNG or is cut short."""
    with open(path, "rb") as handle:
        head = handle.read(33)
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise DataError(
            "not a PNG file (or cut short before its header): convert it to a 16-bit "
            "greyscale PNG, e.g. with `bcd ingest`",
            exam=exam,
            file=file,
        )
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", head[16:26])
    if zlib.crc32(head[12:29]) != struct.unpack(">I", head[29:33])[0]:
        raise DataError(
            "corrupt PNG header (CRC mismatch): re-export or re-ingest the image",
            exam=exam,
            file=file,
        )
    return PngHeader(width, height, bit_depth, colour_type)


def read_greyscale_png(
    path: Path, *, exam: str | None = None, file: str | None = None
) -> np.ndarray:
    """Decode a single-channel 8- or 16-bit PNG as uint8/uint16, keeping its values.

    Refused with a DataError naming the file: colour images, other bit depths, more than
    MAX_PIXELS pixels (checked from the header, before decoding), corrupt or truncated data.
    """
    header = read_png_header(path, exam=exam, file=file)
    if header.colour_type != 0:
        kind = COLOUR_TYPES.get(header.colour_type, f"colour type {header.colour_type}")
        raise DataError(
            f"{kind} PNG: mammograms must be single-channel greyscale; "
            "convert the source to 16-bit greyscale (e.g. re-ingest from DICOM)",
            exam=exam,
            file=file,
        )
    if header.bit_depth not in (8, 16):
        raise DataError(
            f"{header.bit_depth}-bit PNG: only 8- and 16-bit greyscale are supported",
            exam=exam,
            file=file,
        )
    if header.width * header.height > MAX_PIXELS:
        raise DataError(
            f"header claims {header.width}x{header.height} pixels, over the "
            f"{MAX_PIXELS:,}-pixel limit; refusing to decode (decompression-bomb guard)",
            exam=exam,
            file=file,
        )
    data = _read_bounded(path, _max_file_size(header), exam=exam, file=file)
    _check_chunks(data, exam=exam, file=file)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    expected_dtype = np.uint16 if header.bit_depth == 16 else np.uint8
    if (
        image is None
        or image.shape != (header.height, header.width)
        or image.dtype != expected_dtype
    ):
        raise DataError(
            "corrupt PNG: its pixel data could not be decoded; re-export or re-ingest the image",
            exam=exam,
            file=file,
        )
    return image


def _max_file_size(header: PngHeader) -> int:
    """The largest file the header's image can be: its rows stored, each with a filter byte."""
    raw = header.height * (1 + header.width * header.bit_depth // 8)
    return raw + raw // 100 + PNG_OVERHEAD_BYTES


def _read_bounded(path: Path, limit: int, *, exam: str | None, file: str | None) -> bytes:
    """The file's bytes, refused without reading them when it is larger than `limit`."""
    data = read_at_most(path, limit)
    if data is None:
        raise DataError(
            f"PNG file is larger than its header's image can be ({limit:,} bytes at most): "
            "it holds something else; re-export or re-ingest the image",
            exam=exam,
            file=file,
        )
    return data


def _check_chunks(data: bytes, *, exam: str | None, file: str | None) -> None:
    """Every chunk's length fits in the file, and IEND ends it; DataError naming the chunk.

    The header (signature, IHDR) was checked by read_png_header.
    """
    position, chunks = len(PNG_SIGNATURE), 0
    while position + CHUNK_FRAME <= len(data) and chunks < MAX_CHUNKS:
        length, kind = struct.unpack_from(">I4s", data, position)
        end = position + CHUNK_FRAME + length
        if end > len(data):
            raise DataError(
                f"truncated or corrupt PNG: chunk {kind!r} at byte {position:,} claims "
                f"{length:,} bytes but the file ends {len(data) - position - CHUNK_FRAME:,} "
                "bytes later; copy or export it again",
                exam=exam,
                file=file,
            )
        if kind == b"IEND":
            return
        position, chunks = end, chunks + 1
    if chunks >= MAX_CHUNKS:
        raise DataError(
            f"corrupt PNG: more than {MAX_CHUNKS:,} chunks; re-export or re-ingest the image",
            exam=exam,
            file=file,
        )
    raise DataError(
        "truncated PNG (no IEND chunk at the end): the copy is incomplete; copy or export it again",
        exam=exam,
        file=file,
    )


def encode_png(image: np.ndarray, compression: int = PNG_WRITE_COMPRESSION) -> bytes:
    """PNG bytes of a 2-D uint8/uint16 array, or of an (H, W, 3) uint8 RGB array.

    `compression` is zlib's level (0-9): fast by default, higher for files kept for people.
    """
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(
        ".png", np.ascontiguousarray(image), [cv2.IMWRITE_PNG_COMPRESSION, compression]
    )
    if not ok:
        raise ValueError(f"cannot encode array of shape {image.shape} and dtype {image.dtype}")
    return encoded.tobytes()


def write_png(path: Path, image: np.ndarray) -> None:
    """Write `image` as PNG atomically, keeping its dtype (16-bit stays 16-bit)."""
    atomic_write_bytes(path, encode_png(image))
