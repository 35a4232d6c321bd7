"""Classify and parse what a keyboard-wedge barcode scanner sends.

A scanner types one line per scan; the caller strips the terminator and hands the text to
:func:`classify_scan`, which returns exactly one kind of :data:`Scan`:

* ``SO-DM-0001234`` (any case) is an :class:`OrderScan`;
* ``%CMD:SHIP``, ``%CMD:PRESET:2`` ... are :class:`CommandScan` (printed on the desk card);
* ``%BADGE:W017`` is a :class:`BadgeScan`;
* ``*12`` is a :class:`MultiplierScan` (the next item counts 12 times);
* GTIN-8/12/13/14 digits, GS1 element strings (GS1-128, GS1 DataMatrix, GS1 QR, GS1 DataBar) and any
  other printable code (a Code 128 SKU such as ``HX-2044-B``) are an :class:`ItemScan`;
* everything else is an :class:`InvalidScan` carrying a reason to show the person holding the scanner.

Every ``%``-prefixed text is reserved for control barcodes: ``%`` never starts a GTIN or a GS1 element
string, and item codes beginning with ``%`` are refused rather than risk a SKU acting as a command.

GS1 separators (FNC1 / group separator)
---------------------------------------
A wedge scanner cannot always type ASCII 29, so scanners are commonly configured to replace it. These
forms are all read as FNC1: the real ``\\x1d``, ``<GS>``, ``{GS}``, ``[GS]``, ``<FNC1>``, ``{FNC1}``,
``[FNC1]``, ``^]``, ``\\F`` and ``~1`` (case-insensitive). None of them can occur inside GS1 data: ``{``,
``[``, ``^``, ``\\`` and ``~`` are outside the GS1 character set and a GS1 value never holds ``<GS>``
in practice. Stand-ins are only honoured when the text is GS1 (it carries a GS1 symbology identifier or
starts with an Application Identifier's digits), so a SKU like ``HX~1`` stays a SKU.

Symbology identifiers
---------------------
A leading AIM symbology identifier (``]`` + letter + modifier) is always removed. ``]C1`` (GS1-128),
``]d2`` (GS1 DataMatrix), ``]Q3`` (GS1 QR Code), ``]e0`` (GS1 DataBar) and ``]J1`` (GS1 DotCode) mark the
content as GS1 element strings.

Chinese input methods
---------------------
With a Chinese IME in full-width mode the "keystrokes" of a wedge scanner arrive as full-width forms
(``％ＣＭＤ：ＳＨＩＰ``, ``０１２３``); these are folded to ASCII before classification.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from orderdesk.errors import OrderdeskError
from orderdesk.i18n import Msg, msg

__all__ = [
    "BADGE_PREFIX",
    "COMMANDS",
    "COMMAND_PREFIX",
    "FNC1_STANDINS",
    "MAX_MULTIPLIER",
    "MAX_SCAN_LENGTH",
    "BadgeScan",
    "BarcodeError",
    "CommandScan",
    "GS1Data",
    "InvalidScan",
    "ItemScan",
    "MultiplierScan",
    "OrderScan",
    "Scan",
    "badge_barcode",
    "classify_scan",
    "command_barcode",
    "gtin_check_digit",
    "is_valid_gtin",
    "make_ean13",
    "multiplier_barcode",
    "normalize_gtin",
    "parse_gs1",
    "upce_to_upca",
]

MAX_SCAN_LENGTH = 200
MAX_MULTIPLIER = 9999
COMMAND_PREFIX = "%CMD:"
BADGE_PREFIX = "%BADGE:"
# Command name -> whether it takes an argument.
COMMANDS: dict[str, bool] = {"SHIP": False, "UNDO": False, "CANCEL": False, "NEXT": False, "PRESET": True}
GS = "\x1d"
FNC1_STANDINS: tuple[str, ...] = ("<GS>", "{GS}", "[GS]", "<FNC1>", "{FNC1}", "[FNC1]", "^]", "\\F", "~1")
GS1_SYMBOLOGY_IDS = frozenset({"]C1", "]d2", "]Q3", "]e0", "]J1"})
GTIN_LENGTHS = frozenset({8, 12, 13, 14})

_ORDER_RE = re.compile(r"SO-[A-Z0-9]{1,4}-[0-9]{7}", re.IGNORECASE)
_AIM_RE = re.compile(r"\][A-Za-z][0-9A-Za-z]")
_PRESET_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,16}")
_BADGE_RE = re.compile(r"[A-Z0-9][A-Z0-9_.-]{0,39}")
_STANDIN_RE = re.compile("|".join(re.escape(s) for s in FNC1_STANDINS), re.IGNORECASE)
# GS1 "AI encodable character set 82" (GS1 General Specifications, figure 7.11-1).
_CSET82 = frozenset("!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
# Full-width ASCII (U+FF01..U+FF5E) and the ideographic space, as typed through a Chinese IME.
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


class BarcodeError(OrderdeskError, ValueError):
    """Malformed barcode content or an argument that cannot be printed as a barcode."""

    def __init__(self, message: Msg) -> None:
        super().__init__(message, code="barcode")


# --------------------------------------------------------------------------------------------------
# GTIN


def gtin_check_digit(body: str) -> int:
    """GS1 mod-10 check digit for ``body`` (all digits before the check digit: GTIN, SSCC, GLN...)."""
    if not body or not body.isascii() or not body.isdigit():
        raise BarcodeError(msg("A check digit can only be computed for digits: {code}", code=body))
    # Weights alternate 3,1,3,... starting from the digit nearest the check digit.
    backwards = body[::-1]
    total = 3 * sum(map(int, backwards[0::2])) + sum(map(int, backwards[1::2]))
    return (10 - total % 10) % 10


@lru_cache(maxsize=4096)  # a station's scans repeat its products' numbers (parcel numbers once each)
def _check_ok(code: str) -> bool:
    return code[-1] == str(gtin_check_digit(code[:-1]))


def is_valid_gtin(code: str) -> bool:
    """True for a GTIN-8, UPC-A (12), EAN-13 or GTIN-14 made of digits whose check digit is right."""
    return code.isascii() and code.isdigit() and len(code) in GTIN_LENGTHS and _check_ok(code)


def normalize_gtin(code: str) -> str:
    """The 14-digit form of a valid GTIN, so UPC-A, EAN-13 and GTIN-14 of one product compare equal."""
    if not is_valid_gtin(code):
        raise BarcodeError(msg("{code} is not a valid GTIN", code=code))
    return code.zfill(14)


def make_ean13(body12: str) -> str:
    """Append the check digit to 12 digits, giving an EAN-13."""
    if len(body12) != 12 or not body12.isascii() or not body12.isdigit():
        raise BarcodeError(msg("An EAN-13 needs 12 digits before the check digit: {code}", code=body12))
    return body12 + str(gtin_check_digit(body12))


def upce_to_upca(code: str) -> str | None:
    """Expand an 8-digit UPC-E (number system 0/1, six digits, check digit) to UPC-A, or None.

    Scanners often send UPC-E unexpanded; its check digit belongs to the expanded UPC-A, so it would
    fail as a GTIN-8.
    """
    if len(code) != 8 or not code.isascii() or not code.isdigit() or code[0] not in "01":
        return None
    ns, d, check = code[0], code[1:7], code[7]
    last = d[5]
    if last in "012":
        body = ns + d[0:2] + last + "0000" + d[2:5]
    elif last == "3":
        body = ns + d[0:3] + "00000" + d[3:5]
    elif last == "4":
        body = ns + d[0:4] + "00000" + d[4]
    else:
        body = ns + d[0:5] + "0000" + last
    upca = body + check
    return upca if _check_ok(upca) else None


# --------------------------------------------------------------------------------------------------
# GS1 Application Identifiers


@dataclass(frozen=True)
class _AISpec:
    min_len: int
    max_len: int
    numeric: bool
    # GS1 "predefined length" AIs never need FNC1 after them; others do unless last in the symbol.
    predefined: bool = False


def _build_ai_table() -> dict[str, _AISpec]:
    """Application Identifiers of the GS1 General Specifications (syntax dictionary, 2024).

    Compound fields (e.g. 421 = country + postcode) are checked on overall length and character set.
    """

    def n(lo: int, hi: int | None = None) -> _AISpec:  # numeric, lo..hi digits
        return _AISpec(lo, hi or lo, True)

    def x(lo: int, hi: int | None = None) -> _AISpec:  # GS1 character set 82, lo..hi characters
        return _AISpec(lo, hi or lo, False)

    def fixed(length: int) -> _AISpec:  # numeric, predefined length
        return _AISpec(length, length, True, True)

    table: dict[str, _AISpec] = {
        "00": fixed(18),
        "01": fixed(14),
        "02": fixed(14),
        "10": x(1, 20),
        "20": fixed(2),
        "21": x(1, 20),
        "22": x(1, 20),
        "235": x(1, 28),
        "240": x(1, 30),
        "241": x(1, 30),
        "242": n(1, 6),
        "243": x(1, 20),
        "250": x(1, 30),
        "251": x(1, 30),
        "253": x(13, 30),
        "254": x(1, 20),
        "255": n(13, 25),
        "30": n(1, 8),
        "37": n(1, 8),
        "400": x(1, 30),
        "401": x(1, 30),
        "402": n(17),
        "403": x(1, 30),
        "420": x(1, 20),
        "421": x(4, 12),
        "422": n(3),
        "423": n(3, 15),
        "424": n(3),
        "425": n(3, 15),
        "426": n(3),
        "427": x(1, 3),
        "7001": n(13),
        "7002": x(1, 30),
        "7003": n(10),
        "7004": n(1, 4),
        "7005": x(1, 12),
        "7006": n(6),
        "7007": n(6, 12),
        "7008": x(1, 3),
        "7009": x(1, 10),
        "7010": x(1, 2),
        "7011": n(6, 10),
        "7020": x(1, 20),
        "7021": x(1, 20),
        "7022": x(1, 20),
        "7023": x(1, 30),
        "7040": x(4),
        "7240": x(1, 20),
        "7241": n(2),
        "7242": x(1, 25),
        "8001": n(14),
        "8002": x(1, 20),
        "8003": x(14, 30),
        "8004": x(1, 30),
        "8005": n(6),
        "8006": n(18),
        "8007": x(1, 34),
        "8008": n(8, 12),
        "8009": x(1, 50),
        "8010": x(1, 30),
        "8011": n(1, 12),
        "8012": x(1, 20),
        "8013": x(1, 25),
        "8017": n(18),
        "8018": n(18),
        "8019": n(1, 10),
        "8020": x(1, 25),
        "8026": n(18),
        "8030": x(1, 90),
        "8110": x(1, 70),
        "8111": n(4),
        "8112": x(1, 70),
        "8200": x(1, 70),
        "90": x(1, 30),
    }
    for ai in ("11", "12", "13", "15", "16", "17"):
        table[ai] = fixed(6)
    for ai in range(410, 418):
        table[str(ai)] = fixed(13)
    for ai in range(710, 716):
        table[str(ai)] = x(1, 20)
    for ai in range(91, 100):
        table[str(ai)] = x(1, 90)
    # Measures 310n-369n: n (0-5) is the position of the decimal point; value is always 6 digits.
    for group in [*range(310, 317), *range(320, 330), *range(330, 338), *range(340, 358), *range(360, 370)]:
        for decimals in range(6):
            table[f"{group}{decimals}"] = fixed(6)
    for decimals in range(10):
        table[f"390{decimals}"] = n(1, 15)
        table[f"391{decimals}"] = n(4, 18)
        table[f"392{decimals}"] = n(1, 15)
        table[f"393{decimals}"] = n(4, 18)
    for decimals in range(4):
        table[f"394{decimals}"] = n(4)
    for decimals in range(6):
        table[f"395{decimals}"] = n(6)
    for ai in range(7030, 7040):
        table[str(ai)] = x(4, 30)
    for ai in range(7230, 7240):
        table[str(ai)] = x(3, 30)
    for ai in (4300, 4301, 4310, 4311, 4320):
        table[str(ai)] = x(1, 35)
    for ai in (4302, 4303, 4304, 4305, 4306, 4312, 4313, 4314, 4315, 4316):
        table[str(ai)] = x(1, 70)
    table.update({"4307": x(2), "4317": x(2), "4308": x(1, 30), "4319": x(1, 30), "4318": x(1, 20)})
    table.update({"4309": n(20), "4321": n(1), "4322": n(1), "4323": n(1), "4324": n(10), "4325": n(10)})
    table.update({"4326": n(6), "4330": x(6, 7), "4331": x(6, 7), "4332": x(6, 7), "4333": x(6, 7)})
    return table


AI_TABLE: dict[str, _AISpec] = _build_ai_table()
# AIs that carry a check digit over their whole value (GTIN, SSCC, GLN, GSIN, GSRN, ITIP's GTIN part).
_CHECKED_AIS = frozenset({"00", "01", "02", "402", "8017", "8018", *(str(ai) for ai in range(410, 418))})
# Dates in YYMMDD where day 00 means "last day of the month".
_DATE_AIS = frozenset({"11", "12", "13", "15", "16", "17"})
_USED_AIS = frozenset({"01", "02", "10", "17", "21", "30", "37"})  # GS1Data's own fields; the rest is other


@dataclass(frozen=True)
class GS1Data:
    """The fields of a GS1 element string that the order desk uses; the rest is kept in ``other``."""

    gtin: str | None = None  # 14 digits, from AI 01 (or 02 on a carton of trade items)
    batch: str | None = None  # AI 10
    expiry: date | None = None  # AI 17
    serial: str | None = None  # AI 21
    count: int | None = None  # AI 30 or 37
    other: dict[str, str] = field(default_factory=dict)  # AI -> raw value for every other AI


def _century(yy: int, today: date) -> int:
    """Four-digit year for a two-digit GS1 year: the sliding window of GS1 General Specs 7.12."""
    base = today.year - today.year % 100
    diff = yy - today.year % 100
    if 51 <= diff <= 99:
        return base - 100 + yy
    if -99 <= diff <= -50:
        return base + 100 + yy
    return base + yy


def _gs1_date(ai: str, value: str, today: date) -> date:
    year = _century(int(value[0:2]), today)
    month, day = int(value[2:4]), int(value[4:6])
    if not 1 <= month <= 12:
        raise BarcodeError(msg("GS1 AI ({ai}) has an invalid date: {value}", ai=ai, value=value))
    last = calendar.monthrange(year, month)[1]
    if day == 0:
        day = last
    if day > last:
        raise BarcodeError(msg("GS1 AI ({ai}) has an invalid date: {value}", ai=ai, value=value))
    return date(year, month, day)


def _check_value(ai: str, value: str, spec: _AISpec) -> None:
    if not value:
        raise BarcodeError(msg("GS1 AI ({ai}) is empty", ai=ai))
    if len(value) > spec.max_len:
        raise BarcodeError(
            msg(
                "GS1 AI ({ai}) is too long: at most {max} characters (is a separator missing?)",
                ai=ai,
                max=spec.max_len,
            )
        )
    if len(value) < spec.min_len:
        raise BarcodeError(
            msg(
                "GS1 AI ({ai}) is too short: it needs {min} characters, got {got}",
                ai=ai,
                min=spec.min_len,
                got=len(value),
            )
        )
    if spec.numeric and not (value.isascii() and value.isdigit()):
        raise BarcodeError(msg("GS1 AI ({ai}) must be digits: {value}", ai=ai, value=value))
    bad = None if _CSET82.issuperset(value) else next(c for c in value if c not in _CSET82)
    if bad is not None:
        raise BarcodeError(
            msg("GS1 AI ({ai}) contains a character not allowed in GS1 data: {char}", ai=ai, char=repr(bad))
        )
    if ai in _CHECKED_AIS and not _check_ok(value):
        raise BarcodeError(
            msg("The check digit in GS1 AI ({ai}) is wrong ({value}): scan again", ai=ai, value=value)
        )


def _lookup_ai(text: str, pos: int) -> tuple[str, _AISpec]:
    # GS1 AIs form a prefix-free code, so at most one of the 2/3/4-digit prefixes is an AI.
    for length in (2, 3, 4):
        ai = text[pos : pos + length]
        if ai in AI_TABLE:
            return ai, AI_TABLE[ai]
    raise BarcodeError(
        msg(
            "Unknown GS1 Application Identifier at position {pos}: {text}",
            pos=pos + 1,
            text=text[pos : pos + 4],
        )
    )


def _split_element_string(text: str) -> list[tuple[str, str]]:
    """Split FNC1-separated GS1 data (separators already turned into ``\\x1d``) into (AI, value)."""
    pairs: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos] == GS:  # a separator after a fixed-length field, or a doubled one: harmless
            pos += 1
            continue
        ai, spec = _lookup_ai(text, pos)
        pos += len(ai)
        if spec.min_len == spec.max_len:
            value = text[pos : pos + spec.max_len]
            if GS in value or len(value) < spec.max_len:
                got = len(value.split(GS)[0])
                raise BarcodeError(
                    msg(
                        "GS1 AI ({ai}) is too short: it needs {min} characters, got {got}",
                        ai=ai,
                        min=spec.max_len,
                        got=got,
                    )
                )
            pos += spec.max_len
        else:
            end = text.find(GS, pos)
            end = len(text) if end < 0 else end
            value = text[pos:end]
            pos = end
        pairs.append((ai, value))
    return pairs


_HRI_AI_RE = re.compile(r"\((\d{2,4})\)")


def _split_hri(text: str) -> list[tuple[str, str]]:
    """Split the human-readable form ``(01)09501101530003(17)260630(10)AB-12`` into (AI, value)."""
    pairs: list[tuple[str, str]] = []
    matches = list(_HRI_AI_RE.finditer(text))
    if not matches or matches[0].start() != 0:
        raise BarcodeError(msg("Malformed GS1 text near position {pos}", pos=1))
    for i, match in enumerate(matches):
        ai = match.group(1)
        if ai not in AI_TABLE:
            raise BarcodeError(
                msg(
                    "Unknown GS1 Application Identifier at position {pos}: {text}",
                    pos=match.start() + 1,
                    text=ai,
                )
            )
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        # People copy this form by hand with spaces around the brackets; GS1 data never holds spaces.
        pairs.append((ai, text[match.end() : end].strip()))
    return pairs


def _strip_symbology(text: str) -> tuple[str, bool]:
    """Remove a leading AIM symbology identifier; say whether it marks GS1 content."""
    if _AIM_RE.match(text):
        return text[3:], text[:3] in GS1_SYMBOLOGY_IDS
    return text, False


def parse_gs1(raw: str, *, today: date | None = None) -> GS1Data:
    """Parse GS1 element strings: raw scan data (with FNC1 as ``\\x1d`` or a stand-in) or ``(AI)value`` text.

    ``today`` anchors the century of two-digit years (GS1 sliding window); it defaults to today's date.
    Raises :class:`BarcodeError` with a reason when the content is malformed.
    """
    return _parse_gs1(raw, today or date.today())[0]


def _parse_gs1(raw: str, today: date) -> tuple[GS1Data, dict[str, str]]:
    text, _ = _strip_symbology(_fold_fullwidth(raw).strip())
    text = _STANDIN_RE.sub(GS, text).lstrip(GS)
    if not text:
        raise BarcodeError(msg("The GS1 barcode is empty"))
    pairs = _split_hri(text) if text.startswith("(") else _split_element_string(text)

    seen: dict[str, str] = {}
    for ai, value in pairs:
        _check_value(ai, value, AI_TABLE[ai])
        if seen.get(ai, value) != value:
            raise BarcodeError(msg("GS1 AI ({ai}) appears twice with different values", ai=ai))
        seen[ai] = value
        if ai in _DATE_AIS:
            _gs1_date(ai, value, today)  # validate every date, not just the expiry
    if "01" in seen and "02" in seen:
        raise BarcodeError(msg("A GS1 barcode cannot hold both AI (01) and AI (02)"))

    expiry = _gs1_date("17", seen["17"], today) if "17" in seen else None
    count_text = seen.get("37", seen.get("30"))
    data = GS1Data(
        gtin=seen.get("01") or seen.get("02"),
        batch=seen.get("10"),
        expiry=expiry,
        serial=seen.get("21"),
        count=int(count_text) if count_text is not None else None,
        other={ai: value for ai, value in seen.items() if ai not in _USED_AIS},
    )
    return data, seen


# --------------------------------------------------------------------------------------------------
# Scan classification


@dataclass(frozen=True)
class OrderScan:
    """An order number: pick this order up at the desk."""

    order_no: str


@dataclass(frozen=True)
class CommandScan:
    """A command barcode from the desk card."""

    command: str  # one of COMMANDS
    arg: str | None = None  # the preset id for PRESET


@dataclass(frozen=True)
class MultiplierScan:
    """``*N``: the next item scan counts ``factor`` times."""

    factor: int


@dataclass(frozen=True)
class ItemScan:
    """A product: GTIN, GS1 element string, or an in-house code (``gtin`` None)."""

    code: str  # as scanned (a GS1 string is given in its ``(AI)value`` form)
    gtin: str | None = None  # 14 digits
    batch: str | None = None
    expiry: date | None = None
    serial: str | None = None
    count: int = 1  # from GS1 AI 30/37, e.g. a carton of 24


@dataclass(frozen=True)
class BadgeScan:
    """A staff badge: who is working at the desk."""

    badge: str


@dataclass(frozen=True)
class InvalidScan:
    """A scan that cannot be used, with the reason to show."""

    raw: str
    reason: Msg


Scan = OrderScan | CommandScan | MultiplierScan | ItemScan | BadgeScan | InvalidScan


def _fold_fullwidth(text: str) -> str:
    return text if text.isascii() else text.translate(_FULLWIDTH)  # what a scanner sends is ASCII


def _classify_control(raw: str, text: str) -> Scan:
    upper = text.upper()
    if upper.startswith(COMMAND_PREFIX):
        name, sep, arg = text[len(COMMAND_PREFIX) :].partition(":")
        try:
            command, argument = _check_command(name.upper(), arg if sep else None)
        except BarcodeError as err:
            return InvalidScan(raw, err.message)
        return CommandScan(command, argument)
    if upper.startswith(BADGE_PREFIX):
        badge = upper[len(BADGE_PREFIX) :]
        if not _BADGE_RE.fullmatch(badge):
            return InvalidScan(raw, msg("This badge barcode is not valid: {code}", code=text))
        return BadgeScan(badge)
    return InvalidScan(raw, msg("Unknown control barcode: {code}", code=text))


def _classify_multiplier(raw: str, text: str) -> Scan:
    number = text[1:].strip()
    if not re.fullmatch(r"[+-]?[0-9]+", number):
        return InvalidScan(raw, msg("A quantity multiplier is * followed by a whole number, e.g. *12"))
    factor = int(number)
    if not 1 <= factor <= MAX_MULTIPLIER:
        return InvalidScan(
            raw,
            msg(
                "Quantity multiplier must be between 1 and {max}, not {value}",
                max=MAX_MULTIPLIER,
                value=factor,
            ),
        )
    return MultiplierScan(factor)


def _classify_gs1(raw: str, text: str, today: date | None) -> Scan:
    try:
        data, fields = _parse_gs1(text, today or date.today())
    except BarcodeError as err:
        return InvalidScan(raw, err.message)
    if data.gtin is None:
        return InvalidScan(
            raw, msg("This GS1 barcode has no product number (AI 01 or 02): scan the product barcode")
        )
    count = 1 if data.count is None else data.count
    if count < 1:
        return InvalidScan(raw, msg("The item count in this barcode is 0"))
    # The (AI)value form is unambiguous, readable in logs and free of invisible separators.
    code = "".join(f"({ai}){value}" for ai, value in fields.items())
    return ItemScan(code, data.gtin, data.batch, data.expiry, data.serial, count)


def _looks_like_gs1(text: str) -> bool:
    # A GS1-128 read without symbology identifier arrives as bare AI data: "01" + GTIN-14 + more.
    return len(text) >= 16 and text[:2] in ("01", "02") and text[2:16].isascii() and text[2:16].isdigit()


def classify_scan(raw: str, *, today: date | None = None) -> Scan:
    """Classify one complete scan (terminator already stripped) into exactly one :data:`Scan`.

    ``today`` anchors the century of GS1 two-digit years; it defaults to today's date.
    """
    text = _fold_fullwidth(raw).strip()
    if not text:
        return InvalidScan(raw, msg("The scan is empty"))
    if len(text) > MAX_SCAN_LENGTH:
        return InvalidScan(
            raw,
            msg(
                "The scan is too long: {length} characters, at most {max}",
                length=len(text),
                max=MAX_SCAN_LENGTH,
            ),
        )
    bad = None if text.isprintable() else next((c for c in text if c != GS and not c.isprintable()), None)
    if bad is not None:
        return InvalidScan(
            raw,
            msg(
                "The scan contains a control character ({char}): check the scanner settings",
                char=f"U+{ord(bad):04X}",
            ),
        )
    text, gs1_symbology = _strip_symbology(text)
    if not text:
        return InvalidScan(raw, msg("The scan is empty"))

    if gs1_symbology or GS in text:
        return _classify_gs1(raw, text, today)
    if text.startswith("%"):
        return _classify_control(raw, text)
    if text.startswith("*"):
        return _classify_multiplier(raw, text)
    if _ORDER_RE.fullmatch(text):
        return OrderScan(text.upper())
    if text[:3].upper() == "SO-":
        # A mistyped order number must not be looked up as a product.
        return InvalidScan(
            raw, msg("{code} is not a valid order number: expected e.g. SO-DM-0001234", code=text)
        )
    if _HRI_AI_RE.match(text):
        return _classify_gs1(raw, text, today)
    if text[:2].isascii() and text[:2].isdigit() and _STANDIN_RE.search(text):
        return _classify_gs1(raw, text, today)
    if _looks_like_gs1(text):
        return _classify_gs1(raw, text, today)
    if text.isascii() and text.isdigit() and len(text) in GTIN_LENGTHS:
        if is_valid_gtin(text):
            return ItemScan(text, normalize_gtin(text))
        upca = upce_to_upca(text)
        if upca is not None:
            return ItemScan(text, normalize_gtin(upca))
        return InvalidScan(raw, msg("The check digit of {code} is wrong: scan again", code=text))
    return ItemScan(text)


# --------------------------------------------------------------------------------------------------
# Printing control barcodes


def _check_command(command: str, arg: str | None) -> tuple[str, str | None]:
    if command not in COMMANDS:
        raise BarcodeError(msg("Unknown command barcode: {command}", command=command))
    if COMMANDS[command]:
        if arg is None or not _PRESET_ID_RE.fullmatch(arg):
            raise BarcodeError(
                msg(
                    "Command {command} needs an id of letters, digits, - or _: {arg}",
                    command=command,
                    arg=arg or "",
                )
            )
    elif arg is not None:
        raise BarcodeError(msg("Command {command} takes no argument", command=command))
    return command, arg


def command_barcode(command: str, arg: str | None = None) -> str:
    """The text to print for a command barcode, e.g. ``%CMD:SHIP`` or ``%CMD:PRESET:2``."""
    command, arg = _check_command(command.upper(), arg)
    return f"{COMMAND_PREFIX}{command}" + (f":{arg}" if arg is not None else "")


def check_preset_id(preset: str) -> str:
    """A packing preset's id as a desk card's barcode holds it (letters, digits, - and _), else BarcodeError."""
    return _check_command("PRESET", preset.strip())[1] or ""


def badge_barcode(code: str) -> str:
    """The text to print on a staff badge, e.g. ``%BADGE:W017``; badge codes are not case-sensitive."""
    badge = code.strip().upper()
    if not _BADGE_RE.fullmatch(badge):
        raise BarcodeError(msg("This badge barcode is not valid: {code}", code=code))
    return BADGE_PREFIX + badge


def multiplier_barcode(factor: int) -> str:
    """The text to print for a quantity multiplier, e.g. ``*12``."""
    if not 1 <= factor <= MAX_MULTIPLIER:
        raise BarcodeError(
            msg(
                "Quantity multiplier must be between 1 and {max}, not {value}",
                max=MAX_MULTIPLIER,
                value=factor,
            )
        )
    return f"*{factor}"
