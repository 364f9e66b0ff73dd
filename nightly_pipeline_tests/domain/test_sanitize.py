"""Values from the web or a model, bounded to what their columns hold."""
import json
import math

import pytest

from nightly_pipeline.domain import sanitize


def test_text_loses_nul_controls_and_surrogates_and_keeps_tabs_newlines_and_unicode() -> None:
    assert sanitize.clean_text("Acme\x00 Pte\x07 Ltd\tSG\n\u00e9\u4e2d\ud800\x9f") == "Acme Pte Ltd\tSG\n\u00e9\u4e2d"


def test_text_is_cut_to_its_length_and_a_negative_length_is_an_error() -> None:
    assert sanitize.clean_text("x" * 50, 10) == "x" * 10
    with pytest.raises(ValueError, match="max_chars"):
        sanitize.clean_text("x", -1)


def test_optional_text_is_none_for_non_strings_and_for_what_cleans_to_nothing() -> None:
    assert sanitize.clean_optional_text(42) is None
    assert sanitize.clean_optional_text("\x00\x01") is None
    assert sanitize.clean_optional_text(" ok ") == " ok "


@pytest.mark.parametrize(("value", "expected"), [
    (42, 42), (0, 0), (2**31 - 1, 2**31 - 1), (2**31, None), (10**13, None), (-1, None),
    (True, None), ("42", None), (4.2, None), (None, None)])
def test_integers_outside_the_column_range_are_dropped_not_clipped(value, expected) -> None:
    assert sanitize.bounded_int(value, 0) == expected


def test_floats_that_json_cannot_hold_are_dropped() -> None:
    assert sanitize.finite_float(0.5) == 0.5
    assert sanitize.finite_float(1) == 1.0
    assert sanitize.finite_float(math.nan) is None
    assert sanitize.finite_float(math.inf) is None
    assert sanitize.finite_float(False) is None


def test_nested_json_is_cleaned_at_every_level_and_capped_in_depth_and_size() -> None:
    deep: dict = {}
    node = deep
    for _ in range(50):
        node["next"] = {}
        node = node["next"]
    value = {"name\x00": "Acme\x00", "employees": 10**30, "ratio": math.nan, "ok": True,
             "list": list(range(1_000)), "deep": deep, "when": object()}
    cleaned = sanitize.clean_json(value, max_depth=5, max_items=20, max_chars=100)
    assert cleaned["name"] == "Acme"
    assert cleaned["employees"] is None and cleaned["ratio"] is None and cleaned["ok"] is True
    assert cleaned["list"] == list(range(20))
    depth, node = 0, cleaned["deep"]
    while isinstance(node, dict) and node.get("next") is not None:
        depth, node = depth + 1, node["next"]
    assert depth < 5
    assert isinstance(cleaned["when"], str)
    # What comes out is plain JSON with no NUL anywhere.
    assert "\\u0000" not in json.dumps(cleaned)
