"""The shipped parse of the ASN.1 (asn1/parsed.txt) is the text's; bad values are named."""

from __future__ import annotations

import ast

import pytest
from edge.j2735 import codec


def test_parsed_txt_is_what_the_asn1_text_parses_to() -> None:
    shipped = ast.literal_eval(codec.PARSED.read_text())
    assert shipped == codec.parse_modules(), "run: python -m edge.j2735.codec --write-parsed"


def test_a_value_the_types_refuse_is_an_error_naming_the_message() -> None:
    with pytest.raises(codec.EncodeError, match="J2735 SPAT: "):
        codec.encode(codec.SPAT_ID, {"intersections": []})  # SIZE(1..32)
