"""DICOM files: which screening view each one is, which exam it belongs to, its pixels.

Headers are read first (without pixel data) to place and group every file; pixels are
decoded only for the images of exams that are complete. pydicom decodes uncompressed
and RLE data itself; JPEG and JPEG 2000 need the `dicom` extra (pylibjpeg with its
libjpeg and openjpeg plugins, or python-gdcm).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut  # defining module
from pydicom.uid import (
    BreastProjectionXRayImageStorageForPresentation,
    BreastProjectionXRayImageStorageForProcessing,
    BreastTomosynthesisImageStorage,
    DeflatedExplicitVRLittleEndian,
    DigitalIntraOralXRayImageStorageForProcessing,
    DigitalMammographyXRayImageStorageForProcessing,
    DigitalXRayImageStorageForProcessing,
    MediaStorageDirectoryStorage,
    UncompressedTransferSyntaxes,
)

from bcd.ingest import pixels
from bcd.ingest.records import Candidate, FileEntry, Scan, skipped
from bcd.ingest.sources import looks_like_dicom
from bcd.ingest.views import (
    Clue,
    place,
    read_laterality,
    read_text,
    read_view_position,
    without_view_words,
)
from stages.core.errors import DataError
from stages.io.images import MAX_PIXELS

GROUP_BY = ("study", "patient", "folder")
# What a broken file makes pydicom (and the values it hands over) raise: its own errors,
# values that do not convert, truncated or inconsistent elements, a bad deflate stream.
FILE_ERRORS = (
    InvalidDicomError,
    BytesLengthException,
    ValueError,
    TypeError,
    LookupError,
    EOFError,
    struct.error,
    zlib.error,
)
# What pydicom and its decoders also raise on hostile bytes (an unknown VR, a missing
# attribute, nesting past the recursion limit, an OSError without errno for a malformed
# sequence); raised by this project's own code, the same errors are bugs and propagate.
# MemoryError, and an OSError with an errno (the machine's), always propagate.
PARSER_ERRORS = (AttributeError, NotImplementedError, OverflowError, RuntimeError)
_PROJECT_CODE = tuple(str(Path(__file__).parents[2] / package) for package in ("bcd", "stages"))
# DICOM's short text and UID values are at most 64 characters; longer ones are cut in reasons.
_SHOWN_CHARS = 64
_NATIVE_SYNTAXES = frozenset(UncompressedTransferSyntaxes) - {DeflatedExplicitVRLittleEndian}
FOR_PROCESSING_CLASSES = frozenset(
    {
        DigitalMammographyXRayImageStorageForProcessing,
        DigitalXRayImageStorageForProcessing,
        DigitalIntraOralXRayImageStorageForProcessing,
        BreastProjectionXRayImageStorageForProcessing,
    }
)
TOMOSYNTHESIS_CLASSES = frozenset(
    {
        BreastTomosynthesisImageStorage,
        BreastProjectionXRayImageStorageForPresentation,
        BreastProjectionXRayImageStorageForProcessing,
    }
)
# Modalities a mammogram may be filed under (secondary captures are often OT).
MAMMO_MODALITIES = frozenset({"MG", "OT", "DX", "CR", ""})
# View codes (SNOMED-RT and SNOMED CT) of the two screening views in ViewCodeSequence.
VIEW_CODES = {"R-10242": "CC", "399162004": "CC", "R-10226": "MLO", "399368009": "MLO"}
# Tags read as free text for side and view, in fallback order after the structured tags.
TEXT_TAGS = ("SeriesDescription", "ProtocolName", "PatientOrientation")
# Tags read only for words that mark a non-screening image.
MODIFIER_TAGS = ("ImageType", "DerivationDescription", "AcquisitionDeviceProcessingDescription")


def scan(src: Path, files: Iterable[Path], group_by: str, *, apply_voi: bool = True) -> Scan:
    """Place and group every DICOM file under `src`; other files are listed as skipped."""
    found = Scan("dicom")
    for path in files:
        file = path.relative_to(src).as_posix()
        if not looks_like_dicom(path):
            found.skipped.append(skipped(file, "not a DICOM file"))
            continue
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            result = describe(header, path, file, group_by, apply_voi=apply_voi)
        except Exception as error:
            if not is_file_fault(error):
                raise
            result = skipped(file, f"unreadable DICOM: {fault_text(error)}")
        if isinstance(result, FileEntry):
            found.skipped.append(result)
        else:
            found.candidates.append(result)
    return found


def describe(
    header: Dataset, path: Path, file: str, group_by: str, *, apply_voi: bool = True
) -> Candidate | FileEntry:
    """A candidate view of an exam, or why the file is skipped (from its header alone)."""
    reason = _not_a_mammogram(header)
    if reason:
        return skipped(file, reason)
    placement = place(clues(header, file))
    details = {"view_from": placement.view_from, "side_from": placement.side_from}
    if placement.skip:
        return skipped(file, placement.skip, **details)
    key = group_key(header, file, group_by)
    if key is None:
        return skipped(file, _missing_key_reason(group_by), **details)
    return Candidate(
        file=file,
        key=key,
        view=placement.view,
        load=lambda: load_pixels(path, apply_voi=apply_voi),
        order=(_instance_number(header), file),
        for_processing=is_for_processing(header),
        uid=_text(header, "SOPInstanceUID") or None,
        **details,
    )


def clues(header: Dataset, file: str) -> list[Clue]:
    """Every source of side and view, in the documented fallback order."""
    relative = PurePosixPath(file)
    folders = reversed(relative.parent.parts)
    found = [
        read_laterality("ImageLaterality", _text(header, "ImageLaterality")),
        read_laterality("Laterality", _text(header, "Laterality")),
        read_view_position(_text(header, "ViewPosition")),
        _view_code_clue(header),
        *(read_text(tag, _text(header, tag)) for tag in TEXT_TAGS),
        # An identifier, not a description: its words name side and view, never a skip.
        _without_modifiers(read_text("PatientID", _text(header, "PatientID"))),
        read_text("file name", relative.stem),
        # Folder names (nearest first) may name side and view, but not modifiers: a
        # folder called e.g. "ROI study" should not skip every file in it.
        *(_without_modifiers(read_text(f"folder {folder}", folder)) for folder in folders),
        *(
            Clue(tag, modifiers=read_text(tag, _text(header, tag)).modifiers)
            for tag in MODIFIER_TAGS
        ),
    ]
    modifiers = _code_meanings(header, "ViewModifierCodeSequence")
    if modifiers:
        found.append(Clue("ViewModifierCodeSequence", modifiers=modifiers))
    return found


def group_key(header: Dataset, file: str, group_by: str) -> str | None:
    """The exam a file belongs to: its study, its patient and day, or its folder."""
    if group_by == "study":
        return _text(header, "StudyInstanceUID") or None
    if group_by == "patient":
        # Some datasets (CBIS-DDSM) put the view into the patient id: group without it.
        patient = without_view_words(_text(header, "PatientID"))
        if not patient:
            return None
        date = _text(header, "StudyDate")
        return f"{patient}_{date}" if date else patient
    if group_by == "folder":
        return PurePosixPath(file).parent.as_posix()
    raise ValueError(f"unknown grouping {group_by!r}; use one of {', '.join(GROUP_BY)}")


def is_for_processing(header: Dataset) -> bool:
    """True for raw detector images (for processing) rather than for presentation."""
    intent = _text(header, "PresentationIntentType").upper()
    return intent == "FOR PROCESSING" or header.get("SOPClassUID") in FOR_PROCESSING_CLASSES


def is_file_fault(error: Exception) -> bool:
    """Whether `error` comes from the file's bytes rather than from a bug or the machine."""
    if isinstance(error, FILE_ERRORS):  # DataError is a ValueError
        return True
    if isinstance(error, OSError) and error.errno is not None:
        return False  # the machine's (EIO, ENOSPC...): pydicom's own have no errno
    if not isinstance(error, (*PARSER_ERRORS, OSError)):
        return False
    innermost = error.__traceback__
    while innermost is not None and innermost.tb_next is not None:
        innermost = innermost.tb_next
    return innermost is not None and not innermost.tb_frame.f_code.co_filename.startswith(
        _PROJECT_CODE
    )


def fault_text(error: Exception) -> str:
    """A file fault for the report: what went wrong, bounded in length."""
    if isinstance(error, DataError):
        return error.reason
    kind = "malformed data element" if isinstance(error, struct.error) else type(error).__name__
    text = str(error)
    return f"{kind}: {text[:200]}{'...' if len(text) > 200 else ''}"


def load_pixels(path: Path, *, apply_voi: bool = True) -> tuple[np.ndarray, list[str]]:
    """The image as 16-bit MONOCHROME2 pixels, with notes on what was done to them.

    The header's size is checked against the pixel limit and the file's size before the
    pixel data is read or decoded.
    """
    try:
        check_pixel_budget(pydicom.dcmread(path, stop_before_pixels=True, force=True), path)
        dataset = pydicom.dcmread(path, force=True)
    except Exception as error:
        if not is_file_fault(error) or isinstance(error, DataError):
            raise
        raise DataError(f"unreadable DICOM: {fault_text(error)}") from error
    try:
        stored = dataset.pixel_array
    except Exception as error:
        if not is_file_fault(error):
            raise
        syntax = getattr(dataset.file_meta.get("TransferSyntaxUID"), "name", "unknown encoding")
        raise DataError(
            f"cannot decode the pixel data ({_shown(syntax)}): "
            f"{fault_text(error)}. JPEG and JPEG 2000 need the `dicom` extra "
            "(pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg) or python-gdcm"
        ) from error
    try:
        return to_monochrome2_16(dataset, stored, apply_voi=apply_voi)
    except Exception as error:
        if not is_file_fault(error) or isinstance(error, DataError):
            raise
        raise DataError(
            f"cannot apply the file's value transforms: {fault_text(error)}; "
            "ingest with --no-voi to keep the stored values"
        ) from error


def check_pixel_budget(header: Dataset, path: Path) -> None:
    """Refuse, from the header alone, pixels past the limit or more than the file holds."""
    rows, columns = int(header.get("Rows") or 0), int(header.get("Columns") or 0)
    allocated = int(header.get("BitsAllocated") or 0)
    stored = int(header.get("BitsStored") or allocated)
    if rows < 1 or columns < 1:
        raise DataError(f"the header gives {columns}x{rows} pixels: no image")
    if rows * columns > MAX_PIXELS:
        raise DataError(
            f"the header claims {columns}x{rows} pixels, over the {MAX_PIXELS:,}-pixel limit; "
            "refusing to decode (decompression-bomb guard)"
        )
    if allocated not in (8, 16, 32) or not 1 <= stored <= min(allocated, 16):
        raise DataError(
            f"BitsAllocated {allocated} / BitsStored {stored}: a greyscale mammogram stores "
            "1 to 16 bits in 8, 16 or 32"
        )
    syntax = getattr(header, "file_meta", {}).get("TransferSyntaxUID")
    needed = rows * columns * allocated // 8
    size = path.stat().st_size
    if (syntax is None or syntax in _NATIVE_SYNTAXES) and needed > size:
        raise DataError(
            f"the header claims {columns}x{rows} pixels of {allocated} bits ({needed:,} bytes) "
            f"but the file holds {size:,} bytes: truncated or corrupt; copy or export it again"
        )


def to_monochrome2_16(
    dataset: Dataset, stored: np.ndarray, *, apply_voi: bool = True
) -> tuple[np.ndarray, list[str]]:
    """Stored values -> VOI (if carried) -> MONOCHROME1 inverted -> 16 bits."""
    if stored.ndim != 2:
        raise DataError(f"expected one greyscale frame, got pixel array of shape {stored.shape}")
    if int(dataset.get("PixelRepresentation", 0)) != 0:
        raise DataError("signed pixel data is not supported for mammograms")
    bits = int(dataset.BitsStored)
    notes: list[str] = []
    values: np.ndarray = stored
    if apply_voi:
        values, bits, voi_note = _apply_voi(dataset, stored, bits)
        if voi_note:
            notes.append(voi_note)
    if _text(dataset, "PhotometricInterpretation") == "MONOCHROME1":
        values = pixels.invert(values.astype(np.int64), bits)
        notes.append("MONOCHROME1 inverted")
    if bits != 16:
        notes.append(f"{bits}-bit values scaled to 16 bits")
    return pixels.to_16_bits(values, bits), notes


def _apply_voi(
    dataset: Dataset, stored: np.ndarray, bits: int
) -> tuple[np.ndarray, int, str | None]:
    """The VOI LUT or window the file carries, on the modality values; else the stored ones.

    A VOI LUT table gives integers of its own entry depth (LUTDescriptor[2]). A window
    gives values between its output bounds, which are mapped to integers 0..2**BitsStored-1.
    """
    lut = _items(dataset, "VOILUTSequence")
    has_lut = bool(lut) and "LUTDescriptor" in lut[0] and "LUTData" in lut[0]
    has_window = "WindowCenter" in dataset and "WindowWidth" in dataset
    if not (has_lut or has_window):
        return stored, bits, None
    _check_rescale(dataset)
    modality = apply_modality_lut(stored, dataset)
    if has_lut:
        lut_bits = int(lut[0].LUTDescriptor[2])
        if not 1 <= lut_bits <= 16:
            raise DataError(
                f"the VOI LUT gives {lut_bits}-bit values, not 1 to 16: "
                "ingest with --no-voi to keep the stored values"
            )
        return np.asarray(apply_voi_lut(modality, dataset)), lut_bits, "VOI LUT applied"
    center, width = _first(dataset.WindowCenter), _first(dataset.WindowWidth)
    linear = _text(dataset, "VOILUTFunction").upper() in ("", "LINEAR")
    if not (math.isfinite(center) and math.isfinite(width) and width >= (1 if linear else 0)):
        raise DataError(
            f"WindowCenter {center:g} / WindowWidth {width:g} is no window (finite values, "
            f"a width {'of at least 1' if linear else 'above 0'}): "
            "ingest with --no-voi to keep the stored values"
        )
    # The window's output bounds: what it makes of values far below and far above it.
    with np.errstate(over="ignore"):
        low, high = apply_voi_lut(np.array([-1e30, 1e30]), dataset)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise DataError(
            f"the window (center {center:g}, width {width:g}) maps every value to one level: "
            "ingest with --no-voi to keep the stored values"
        )
    windowed = apply_voi_lut(modality, dataset)
    return (
        pixels.to_levels(windowed, float(low), float(high), bits),
        bits,
        f"window applied (center {center:g}, width {width:g})",
    )


def _check_rescale(dataset: Dataset) -> None:
    """RescaleSlope and RescaleIntercept, where given, must be finite; the slope not 0."""
    slope, intercept = _number(dataset, "RescaleSlope", 1), _number(dataset, "RescaleIntercept", 0)
    if not (math.isfinite(slope) and math.isfinite(intercept) and slope != 0):
        raise DataError(
            f"RescaleSlope {slope:g} / RescaleIntercept {intercept:g} would make every pixel "
            "one value or none: ingest with --no-voi to keep the stored values"
        )


def _not_a_mammogram(header: Dataset) -> str | None:
    sop_class = header.get("SOPClassUID")
    if sop_class == MediaStorageDirectoryStorage:
        return "DICOMDIR (an index of files, no image)"
    if "Rows" not in header or "Columns" not in header:
        name = getattr(sop_class, "name", None) or "no SOP class"
        return f"no image in this file ({_shown(name)})"
    if sop_class in TOMOSYNTHESIS_CLASSES or int(header.get("NumberOfFrames", 1) or 1) > 1:
        return "multi-frame image (tomosynthesis or projections), not a 2D mammogram"
    modality = _text(header, "Modality").upper()
    if modality not in MAMMO_MODALITIES:
        return f"modality {_shown(modality)} is not mammography"
    body_part = _text(header, "BodyPartExamined").upper()
    if modality != "MG" and body_part not in ("", "BREAST"):
        return (
            f"body part {_shown(body_part)} with modality {modality or 'unset'} is not a mammogram"
        )
    if int(header.get("SamplesPerPixel", 1) or 1) != 1:
        return "colour image, not a greyscale mammogram"
    photometric = _text(header, "PhotometricInterpretation")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        return f"photometric interpretation {_shown(photometric) or 'unset'} is not greyscale"
    return None


def _view_code_clue(header: Dataset) -> Clue:
    """A clue from ViewCodeSequence (and the view modifiers nested in it)."""
    sequence = _items(header, "ViewCodeSequence")
    if not sequence:
        return Clue("ViewCodeSequence")
    item = sequence[0]
    code = str(item.get("CodeValue", "")).strip()
    meaning = str(item.get("CodeMeaning", "")).strip()
    modifiers = _code_meanings(item, "ViewModifierCodeSequence")
    if code in VIEW_CODES:
        return Clue("ViewCodeSequence", angle=VIEW_CODES[code], modifiers=modifiers)
    other_view = _shown(meaning or code) or "unknown"
    return Clue("ViewCodeSequence", other_view=other_view, modifiers=modifiers)


def _without_modifiers(clue: Clue) -> Clue:
    return Clue(clue.source, side=clue.side, angle=clue.angle)


def _code_meanings(dataset: Dataset, keyword: str) -> tuple[str, ...]:
    return tuple(
        _shown(str(item.get("CodeMeaning") or item.get("CodeValue") or "view modifier"))
        for item in _items(dataset, keyword)
    )


def _items(dataset: Dataset, keyword: str) -> list[Dataset]:
    """The items of a sequence tag ([] when absent); a tag of another kind is a bad header."""
    value = dataset.get(keyword)
    if value is None:
        return []
    if not isinstance(value, pydicom.sequence.Sequence):
        raise DataError(f"{keyword} holds {type(value).__name__} data, not a sequence of items")
    return list(value)


def _missing_key_reason(group_by: str) -> str:
    tag = {"study": "StudyInstanceUID", "patient": "PatientID"}.get(group_by, "folder")
    return f"no {tag} to group it by; try --group-by folder (files of one exam in one folder)"


def _instance_number(header: Dataset) -> int:
    """InstanceNumber for ordering a view's images; unnumbered ones go last."""
    try:
        return int(header.get("InstanceNumber"))
    except (TypeError, ValueError):
        return 1 << 30


def _text(header: Dataset, keyword: str) -> str:
    """A tag's value as text ('' when absent); multi-valued tags joined with a backslash."""
    value = header.get(keyword)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(part) for part in value)
    return str(value).strip()


def _shown(value: str) -> str:
    """A header value for a report row: a hostile file's values can be any length."""
    return value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "..."


def _number(dataset: Dataset, keyword: str, default: float) -> float:
    """A numeric tag's (first) value; `default` when it is absent or empty."""
    value = dataset.get(keyword)
    return default if value is None or value == "" else _first(value)


def _first(value: Any) -> float:
    return float(value[0] if isinstance(value, pydicom.multival.MultiValue) else value)
