"""Canonical JSON is the text the audit chain and the outbox hash: the fast encoder must write exactly what
the standard library writes for every value orderdesk puts in it."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderdesk.canonical import canonical_json, hash_text
from orderdesk.i18n import msg


def _stdlib(value: Any) -> str:
    """The text every version of orderdesk wrote: the standard library's, spelled out here so that a change
    to the module's own copy cannot move the reference with it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_iso)


def _iso(value: date | datetime) -> str:
    return value.isoformat()


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)  # past 64 bits too: the standard library writes it
    | st.text()
    | st.datetimes(timezones=st.none() | st.just(UTC) | st.just(timezone(timedelta(hours=8))))
    | st.dates()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


with_floats = st.recursive(
    scalars | st.floats(),  # NaN and infinities too: orjson would write them as null
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_canonical_json_is_the_standard_librarys_text(value: Any) -> None:
    assert canonical_json(value) == _stdlib(value)


@settings(max_examples=400, deadline=None)
@given(with_floats)
def test_a_hashed_text_is_the_standard_librarys_floats_included(value: Any) -> None:
    """An op's payload hash is made by one version of orderdesk and checked by another."""
    assert hash_text(value) == _stdlib(value)


def test_every_character_is_escaped_as_the_standard_library_does() -> None:
    text = "".join(chr(i) for i in range(0x110000) if not 0xD800 <= i <= 0xDFFF)
    assert canonical_json({"t": text}) == _stdlib({"t": text})


def test_what_the_fast_encoder_refuses_goes_to_the_standard_library() -> None:
    assert canonical_json({2: "b", 1: "a"}) == '{"1":"a","2":"b"}'
    assert canonical_json({"b": 2**80}) == '{"b":1208925819614629174706176}'
    with pytest.raises(TypeError, match="cannot put set in canonical JSON"):
        canonical_json({"s": {1, 2}})
    with pytest.raises(TypeError, match="cannot put Msg in canonical JSON"):  # orjson alone would write it
        canonical_json({"m": msg("Note")})


def test_floats_in_a_hashed_text_keep_the_standard_librarys_form() -> None:
    assert hash_text({"x": [1e-05, float("nan")]}) == '{"x":[1e-05,NaN]}'


def test_date_times_are_written_as_isoformat() -> None:
    assert canonical_json({"at": datetime(2026, 11, 22, 8, tzinfo=UTC), "d": date(2026, 11, 22)}) == (
        '{"at":"2026-11-22T08:00:00+00:00","d":"2026-11-22"}'
    )
