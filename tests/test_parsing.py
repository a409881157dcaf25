"""Untrusted numbers and JSON: what parses, and what is refused as a plain ValueError/None."""

import pytest

from hitlproject.parsing import MAX_BIGINT, loads, whole_number


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        ("42", 42),
        (7, 7),
        (str(MAX_BIGINT), MAX_BIGINT),
        (str(MAX_BIGINT + 1), None),  # overflows a bigint column
        ("9" * 30, None),
        ("²", None),  # str.isdigit() says yes, int() says no
        ("①", None),
        ("٣", None),  # an Arabic-Indic digit: int() would take it; ids are ASCII
        ("-1", None),
        (-1, None),
        ("1.5", None),
        (" 1", None),
        ("", None),
        (None, None),
        (True, None),
        (1.0, None),
    ],
)
def test_whole_number(value, expected):
    assert whole_number(value) == expected


def test_whole_number_honours_a_maximum():
    assert whole_number("10", maximum=9) is None
    assert whole_number("9", maximum=9) == 9


def test_loads_reports_deep_nesting_as_a_value_error():
    assert loads('{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    with pytest.raises(ValueError, match="nested too deeply"):
        loads("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError):
        loads("{")
