"""Canonical JSON and hashes shared by the audit chain and the sync outbox."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Any

import orjson

# Sorted keys, no whitespace, UTF-8 kept; date-times through ``_default`` (``isoformat``), as the standard
# library writes them. orjson writes the same text as ``_stdlib`` for strings, integers, booleans, null,
# lists and dicts (tests/test_canonical.py checks it), several times faster: the central API encodes each
# op's payload, outcome, event, image and audit detail. What orjson refuses (an integer past 64 bits, a dict
# key that is not a string) goes to the standard library. Floats, which no order field is (money is in fen),
# orjson writes in its own shortest form (0.00001 for 1e-05, null for NaN): a text that is hashed and
# compared across versions (``hash_text``) keeps the standard library's form for them.
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot put {type(value).__name__} in canonical JSON")


def _stdlib(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default)


def _has_float(value: Any) -> bool:
    if isinstance(value, dict):
        return any(map(_has_float, value.values()))
    if isinstance(value, list | tuple):
        return any(map(_has_float, value))
    return isinstance(value, float)


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the same data always gives the same text (a float's text may
    differ from an older version's; a hash checked across versions uses ``hash_text``)."""
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS).decode()
    except TypeError:
        return _stdlib(value)


def hash_text(value: Any) -> str:
    """``canonical_json`` as every version of orderdesk writes it, for a hash another version checks (an op's
    payload hash, made by a desk and checked by the central API): floats in the standard library's form."""
    return _stdlib(value) if _has_float(value) else canonical_json(value)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
