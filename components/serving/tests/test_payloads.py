import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from components.serving.payloads import parse_v1, parse_v2


def v2(data, shape, datatype="FP64", name="pairs", inputs=None):
    return InferRequest(model_name="sum", infer_inputs=inputs or [InferInput(name, shape, datatype, data)])


def test_v1_accepts_rows_and_raw_bytes():
    np.testing.assert_array_equal(parse_v1({"instances": [[1, 2], [3.5, 4]]}, 2), [[1, 2], [3.5, 4]])
    np.testing.assert_array_equal(parse_v1(b'{"instances": [[1, 2]]}', 2), [[1, 2]])


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ([[1, 2]], "JSON object"),
        ({"inputs": [[1, 2]]}, 'no "instances"'),
        ({"instances": "1,2"}, "list of rows"),
        ({"instances": []}, "empty"),
        ({"instances": [[1, 2, 3]]}, r"instances\[0\] must be a list of 2"),
        ({"instances": [[1]]}, "list of 2"),
        ({"instances": [1, 2]}, "list of 2"),
        ({"instances": [[1, "2"]]}, "not a number"),
        ({"instances": [[1, None]]}, "not a number"),
        ({"instances": [[1, True]]}, "not a number"),
        ({"instances": [[1, float("nan")]]}, "finite"),
        ({"instances": [[1, float("inf")]]}, "finite"),
        ({"instances": [[1, 2]] * 10_001}, "limit"),
    ],
)
def test_v1_rejections_name_the_problem(payload, message):
    with pytest.raises(InvalidInput, match=message):
        parse_v1(payload, 2)


def test_v2_accepts_flat_and_nested_data():
    np.testing.assert_array_equal(parse_v2(v2([1, 2, 3, 4], [2, 2]), "pairs", 2), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(parse_v2(v2([[1, 2]], [1, 2], "FP32"), "pairs", 2), [[1, 2]])


@pytest.mark.parametrize(
    "request_, message",
    [
        (v2([1, 2], [1, 2], name="x"), "must be named 'pairs'"),
        (v2([1, 2], [1, 2], datatype="INT64"), "datatype"),
        (v2([1, 2, 3], [1, 3]), r"shape must be \[n, 2\]"),
        (v2([1, 2], [2]), r"shape must be \[n, 2\]"),
        (v2([], [0, 2]), "empty"),
        (v2([1, 2, 3], [2, 2]), "has 3 values but shape"),
        (v2([1, None], [1, 2]), "not a number"),
        (v2([1, "a"], [1, 2]), "not a number"),
        (v2([1, float("nan")], [1, 2]), "finite"),
        (
            v2(
                None,
                [1, 2],
                inputs=[InferInput("pairs", [1, 2], "FP64", [1, 2]), InferInput("b", [1, 2], "FP64", [1, 2])],
            ),
            "exactly one input",
        ),
    ],
)
def test_v2_rejections_name_the_problem(request_, message):
    with pytest.raises(InvalidInput, match=message):
        parse_v2(request_, "pairs", 2)
