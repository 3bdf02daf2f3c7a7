import pytest

from stages.core.errors import DataError
from stages.core.exam import VIEWS, exam_from_dict
from stages.core.orientation import crop_mode, needs_mirror


def good_exam(**changes):
    exam = {"horizontal_flip": "NO", **{v: [v.replace("-", "_")] for v in VIEWS}}
    exam.update(changes)
    return exam


def test_valid_exam_keeps_views_in_order_and_round_trips():
    exam = exam_from_dict("e1", good_exam(**{"L-CC": ["a", "b"]}))
    assert exam.image_names()[:3] == [("L-CC", "a"), ("L-CC", "b"), ("R-CC", "R_CC")]
    assert exam.to_dict() == good_exam(**{"L-CC": ["a", "b"]})


@pytest.mark.parametrize(
    ("exam_dict", "message"),
    [
        ([], "JSON object"),
        (good_exam(horizontal_flip="yes"), "horizontal_flip"),
        ({k: v for k, v in good_exam().items() if k != "R-MLO"}, 'missing view "R-MLO"'),
        (good_exam(**{"L-CC": []}), "non-empty list"),
        (good_exam(**{"L-CC": "L_CC"}), "non-empty list"),
        (good_exam(**{"L-CC": ["../etc/passwd"]}), "invalid image name"),
        (good_exam(**{"L-CC": ["a/b"]}), "invalid image name"),
        (good_exam(**{"L-CC": [".."]}), "invalid image name"),
        (good_exam(**{"L-CC": [3]}), "invalid image name"),
        (good_exam(**{"R-CC": ["L_CC"]}), "more than once"),
        (good_exam(window_location={"L-CC": [[0, 1, 0, 1]]}), "window_location"),
    ],
)
def test_malformed_exam_is_a_data_error_naming_exam_and_file(exam_dict, message):
    with pytest.raises(DataError) as caught:
        exam_from_dict("e1", exam_dict)
    assert message in caught.value.reason
    assert caught.value.exam == "e1"


@pytest.mark.parametrize("exam_id", ["..", "a b", "x/y", "", "é"])
def test_bad_exam_id_is_refused(exam_id):
    with pytest.raises(DataError, match="invalid exam id"):
        exam_from_dict(exam_id, good_exam())


@pytest.mark.parametrize(
    ("view", "flip", "mode", "mirrored"),
    [
        ("L-CC", "NO", "right", False),
        ("R-CC", "NO", "left", True),
        ("L-MLO", "YES", "left", True),
        ("R-MLO", "YES", "right", False),
    ],
)
def test_orientation_rules(view, flip, mode, mirrored):
    assert crop_mode(view, flip) == mode
    assert needs_mirror(view, flip) is mirrored
