"""Scanner input: GTIN check digits, GS1 parsing, and classification of every kind of scan."""

from __future__ import annotations

import ast
import re
import string
import tomllib
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderdesk import barcodes
from orderdesk.barcodes import (
    COMMANDS,
    FNC1_STANDINS,
    MAX_SCAN_LENGTH,
    BadgeScan,
    BarcodeError,
    CommandScan,
    GS1Data,
    InvalidScan,
    ItemScan,
    MultiplierScan,
    OrderScan,
    badge_barcode,
    classify_scan,
    command_barcode,
    gtin_check_digit,
    is_valid_gtin,
    make_ean13,
    multiplier_barcode,
    normalize_gtin,
    parse_gs1,
    upce_to_upca,
)
from orderdesk.i18n import Msg

TODAY = date(2025, 3, 1)
ROOT = Path(__file__).resolve().parent.parent


def invalid(raw: str) -> InvalidScan:
    scan = classify_scan(raw, today=TODAY)
    assert isinstance(scan, InvalidScan), scan
    assert scan.raw == raw
    assert isinstance(scan.reason, Msg)
    return scan


def reason(raw: str) -> str:
    return invalid(raw).reason.render("en")


# --------------------------------------------------------------------------------------------------
# GTIN


@pytest.mark.parametrize(
    ("code", "check"),
    [
        ("4006381333931", 1),  # EAN-13, Stabilo pen
        ("036000291452", 2),  # UPC-A, the GS1 US example
        ("9501101530003", 3),  # GS1 example GTIN
        ("96385074", 4),  # EAN-8
        ("6901234567892", 2),  # a Chinese 690 prefix EAN-13
        ("10012345000017", 7),  # GTIN-14 with packaging indicator 1
    ],
)
def test_check_digit_of_real_gtins(code: str, check: int) -> None:
    assert gtin_check_digit(code[:-1]) == check
    assert is_valid_gtin(code)


@pytest.mark.parametrize(
    "code", ["4006381333932", "036000291453", "9501101530004", "96385075", "10012345000018"]
)
def test_wrong_check_digit_is_not_a_gtin(code: str) -> None:
    assert not is_valid_gtin(code)


@pytest.mark.parametrize(
    "code", ["", "123", "400638133393", "40063813339311", "400638133393A", "4006381333931 "]
)
def test_malformed_is_not_a_gtin(code: str) -> None:
    assert not is_valid_gtin(code)


def test_fullwidth_digits_are_not_a_gtin() -> None:
    # str.isdigit() accepts them; a GTIN must be ASCII digits.
    assert not is_valid_gtin("４００６３８１３３３９３１")


def test_normalize_makes_upc_ean_and_gtin14_equal() -> None:
    forms = ["036000291452", "0036000291452", "00036000291452"]
    assert {normalize_gtin(f) for f in forms} == {"00036000291452"}
    assert normalize_gtin("96385074") == "00000096385074"


def test_normalize_rejects_invalid_gtin() -> None:
    with pytest.raises(BarcodeError) as err:
        normalize_gtin("036000291453")
    assert err.value.message.params == {"code": "036000291453"}
    assert isinstance(err.value, ValueError)


def test_make_ean13() -> None:
    assert make_ean13("400638133393") == "4006381333931"
    assert make_ean13("690123456789") == "6901234567892"
    for bad in ("12345", "69012345678A", "6901234567890"):
        with pytest.raises(BarcodeError):
            make_ean13(bad)


def test_check_digit_rejects_non_digits() -> None:
    for bad in ("", "12a4", "１２"):
        with pytest.raises(BarcodeError):
            gtin_check_digit(bad)


@given(st.text(alphabet=string.digits, min_size=12, max_size=12), st.integers(0, 12), st.integers(1, 9))
def test_every_single_digit_error_is_caught(body: str, position: int, delta: int) -> None:
    code = make_ean13(body)
    assert is_valid_gtin(code)
    wrong = code[:position] + str((int(code[position]) + delta) % 10) + code[position + 1 :]
    assert not is_valid_gtin(wrong)


def test_upce_expansion() -> None:
    assert upce_to_upca("04252614") == "042100005264"
    assert upce_to_upca("01234565") == "012345000065"
    assert upce_to_upca("04252615") is None  # wrong check digit
    assert upce_to_upca("24252614") is None  # number system must be 0 or 1


# --------------------------------------------------------------------------------------------------
# GS1


GS1_FIELDS = "01095011015300031726063010AB-12{gs}21SN0042{gs}3024"


@pytest.mark.parametrize("separator", ["\x1d", *FNC1_STANDINS, "<gs>", "{fnc1}"])
def test_gs1_with_every_fnc1_form(separator: str) -> None:
    data = parse_gs1(GS1_FIELDS.format(gs=separator), today=TODAY)
    assert data == GS1Data(
        gtin="09501101530003", batch="AB-12", expiry=date(2026, 6, 30), serial="SN0042", count=24, other={}
    )


def test_gs1_human_readable_form() -> None:
    data = parse_gs1("(01)09501101530003(17)260630(10)AB-12", today=TODAY)
    assert (data.gtin, data.expiry, data.batch, data.serial, data.count) == (
        "09501101530003",
        date(2026, 6, 30),
        "AB-12",
        None,
        None,
    )
    spaced = parse_gs1("(01) 09501101530003 (10) AB-12", today=TODAY)
    assert (spaced.gtin, spaced.batch) == ("09501101530003", "AB-12")


@pytest.mark.parametrize("prefix", ["]C1", "]d2", "]Q3", "]e0"])
def test_gs1_symbology_identifiers_are_stripped(prefix: str) -> None:
    data = parse_gs1(prefix + "0109501101530003" + "10LOT7", today=TODAY)
    assert (data.gtin, data.batch) == ("09501101530003", "LOT7")


def test_leading_fnc1_is_ignored() -> None:
    assert parse_gs1("\x1d0109501101530003", today=TODAY).gtin == "09501101530003"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("260600", date(2026, 6, 30)),
        ("260200", date(2026, 2, 28)),
        ("280200", date(2028, 2, 29)),  # leap year
        ("251200", date(2025, 12, 31)),
        ("260615", date(2026, 6, 15)),
    ],
)
def test_expiry_day_00_is_last_day_of_month(value: str, expected: date) -> None:
    assert parse_gs1(f"010950110153000317{value}", today=TODAY).expiry == expected


@pytest.mark.parametrize(
    ("today", "yymmdd", "year"),
    [
        (date(2025, 3, 1), "990101", 1999),  # 74 years ahead -> previous century
        (date(2025, 3, 1), "740101", 2074),  # 49 years ahead -> this century
        (date(2095, 3, 1), "050101", 2105),  # 90 years behind -> next century
    ],
)
def test_gs1_century_sliding_window(today: date, yymmdd: str, year: int) -> None:
    expiry = parse_gs1(f"010950110153000317{yymmdd}", today=today).expiry
    assert expiry is not None and expiry.year == year


@pytest.mark.parametrize("value", ["261301", "260431", "250229", "260000"])
def test_invalid_dates_are_rejected(value: str) -> None:
    with pytest.raises(BarcodeError) as err:
        parse_gs1(f"010950110153000317{value}", today=TODAY)
    assert err.value.message.msgid == "GS1 AI ({ai}) has an invalid date: {value}"


def test_other_date_ais_are_validated_but_kept_raw() -> None:
    data = parse_gs1("0109501101530003" + "11250101" + "15260600", today=TODAY)
    assert data.expiry is None
    assert data.other == {"11": "250101", "15": "260600"}
    with pytest.raises(BarcodeError):
        parse_gs1("0109501101530003" + "11251301", today=TODAY)


def test_serial_and_batch_are_variable_length_up_to_20() -> None:
    data = parse_gs1("0109501101530003" + "21" + "S" * 20 + "\x1d10" + "B" * 20, today=TODAY)
    assert (data.serial, data.batch) == ("S" * 20, "B" * 20)
    with pytest.raises(BarcodeError) as err:
        parse_gs1("0109501101530003" + "21" + "S" * 21, today=TODAY)
    assert err.value.message.params == {"ai": "21", "max": 20}


def test_count_from_ai_30_and_from_ai_37_with_content_gtin() -> None:
    assert parse_gs1("0109501101530003" + "3012", today=TODAY).count == 12
    carton = parse_gs1("0209501101530003" + "3748\x1d10LOT", today=TODAY)
    assert (carton.gtin, carton.count, carton.batch) == ("09501101530003", 48, "LOT")
    with pytest.raises(BarcodeError):
        parse_gs1("0109501101530003" + "30123456789", today=TODAY)  # more than 8 digits


def test_measures_sscc_and_variable_ais_go_to_other() -> None:
    raw = "00106141411234567897" + "0109501101530003" + "3103001250" + "240ABC-1\x1d241CUST9\x1d400PO-77"
    data = parse_gs1(raw, today=TODAY)
    assert data.gtin == "09501101530003"
    assert data.other == {
        "00": "106141411234567897",
        "3103": "001250",
        "240": "ABC-1",
        "241": "CUST9",
        "400": "PO-77",
    }


def test_fixed_length_field_may_be_followed_by_a_separator() -> None:
    data = parse_gs1("0109501101530003\x1d17260630\x1d10A", today=TODAY)
    assert (data.expiry, data.batch) == (date(2026, 6, 30), "A")


@pytest.mark.parametrize(
    ("raw", "msgid"),
    [
        ("", "The GS1 barcode is empty"),
        ("]C1", "The GS1 barcode is empty"),
        ("0109501101530004", "The check digit in GS1 AI ({ai}) is wrong ({value}): scan again"),
        ("00106141411234567890", "The check digit in GS1 AI ({ai}) is wrong ({value}): scan again"),
        ("01095011015300", "GS1 AI ({ai}) is too short: it needs {min} characters, got {got}"),
        ("0109501101\x1d10AB", "GS1 AI ({ai}) is too short: it needs {min} characters, got {got}"),
        ("0109501101530003" + "1726063", "GS1 AI ({ai}) is too short: it needs {min} characters, got {got}"),
        ("0109501101530003" + "99", "GS1 AI ({ai}) is empty"),
        ("0109501101530003" + "3012A", "GS1 AI ({ai}) must be digits: {value}"),
        ("0109501101530003" + "10AB#C", "GS1 AI ({ai}) contains a character not allowed in GS1 data: {char}"),
        (
            "0109501101530003" + "10" + "X" * 21,
            "GS1 AI ({ai}) is too long: at most {max} characters (is a separator missing?)",
        ),
        ("0109501101530003" + "2312", "Unknown GS1 Application Identifier at position {pos}: {text}"),
        (
            "(01)09501101530003(99",
            "GS1 AI ({ai}) is too long: at most {max} characters (is a separator missing?)",
        ),
        ("(01)", "GS1 AI ({ai}) is empty"),
        ("(19)123", "Unknown GS1 Application Identifier at position {pos}: {text}"),
        ("x(01)09501101530003", "Unknown GS1 Application Identifier at position {pos}: {text}"),
        ("0109501101530003" + "0209501101530003", "A GS1 barcode cannot hold both AI (01) and AI (02)"),
        ("0109501101530003" + "10A\x1d10B", "GS1 AI ({ai}) appears twice with different values"),
    ],
)
def test_malformed_gs1(raw: str, msgid: str) -> None:
    with pytest.raises(BarcodeError) as err:
        parse_gs1(raw, today=TODAY)
    assert err.value.message.msgid == msgid


def test_unknown_ai_reports_its_position() -> None:
    with pytest.raises(BarcodeError) as err:
        parse_gs1("0109501101530003" + "2312", today=TODAY)
    assert err.value.message.params == {"pos": 17, "text": "2312"}


def test_same_ai_twice_with_same_value_is_accepted() -> None:
    assert parse_gs1("0109501101530003" + "10A\x1d10A", today=TODAY).batch == "A"


# --------------------------------------------------------------------------------------------------
# Classification


def test_order_numbers() -> None:
    assert classify_scan("SO-DM-0001234") == OrderScan("SO-DM-0001234")
    assert classify_scan("so-dm-0001234") == OrderScan("SO-DM-0001234")
    assert classify_scan("SO-A-0000001") == OrderScan("SO-A-0000001")
    assert classify_scan("SO-WH12-9999999") == OrderScan("SO-WH12-9999999")


@pytest.mark.parametrize(
    "raw", ["SO-DM-001234", "SO-DM-00012345", "SO--0001234", "SO-ABCDE-0001234", "SO-D_M-0001234"]
)
def test_malformed_order_numbers_are_invalid_not_items(raw: str) -> None:
    assert "not a valid order number" in reason(raw)


@pytest.mark.parametrize("command", sorted(c for c, needs_arg in COMMANDS.items() if not needs_arg))
def test_commands(command: str) -> None:
    assert classify_scan(f"%CMD:{command}") == CommandScan(command, None)
    assert classify_scan(f"%cmd:{command.lower()}") == CommandScan(command, None)  # caps lock on


def test_preset_command() -> None:
    assert classify_scan("%CMD:PRESET:2") == CommandScan("PRESET", "2")
    assert classify_scan("%CMD:PRESET:box-L_3") == CommandScan("PRESET", "box-L_3")


@pytest.mark.parametrize(
    ("raw", "msgid"),
    [
        ("%CMD:FLY", "Unknown command barcode: {command}"),
        ("%CMD:", "Unknown command barcode: {command}"),
        ("%CMD:SHIP:1", "Command {command} takes no argument"),
        ("%CMD:PRESET", "Command {command} needs an id of letters, digits, - or _: {arg}"),
        ("%CMD:PRESET:", "Command {command} needs an id of letters, digits, - or _: {arg}"),
        ("%CMD:PRESET:a b", "Command {command} needs an id of letters, digits, - or _: {arg}"),
        ("%BADGE:", "This badge barcode is not valid: {code}"),
        ("%BADGE:W 17", "This badge barcode is not valid: {code}"),
        ("%HELLO", "Unknown control barcode: {code}"),
        ("%", "Unknown control barcode: {code}"),
    ],
)
def test_invalid_control_barcodes(raw: str, msgid: str) -> None:
    assert invalid(raw).reason.msgid == msgid


def test_badges_are_case_insensitive() -> None:
    assert classify_scan("%BADGE:W017") == BadgeScan("W017")
    assert classify_scan("%badge:w017") == BadgeScan("W017")


@pytest.mark.parametrize(
    ("raw", "factor"), [("*1", 1), ("*12", 12), ("*012", 12), ("* 24", 24), ("*9999", 9999)]
)
def test_multipliers(raw: str, factor: int) -> None:
    assert classify_scan(raw) == MultiplierScan(factor)


@pytest.mark.parametrize("raw", ["*0", "*-3", "*10000", "*99999999999999999999"])
def test_multiplier_out_of_range(raw: str) -> None:
    scan = invalid(raw)
    assert scan.reason.msgid == "Quantity multiplier must be between 1 and {max}, not {value}"
    assert scan.reason.params["max"] == 9999


@pytest.mark.parametrize("raw", ["*", "*x", "*1.5", "*12a", "**2"])
def test_multiplier_not_a_number(raw: str) -> None:
    assert "whole number" in reason(raw)


@pytest.mark.parametrize(
    ("raw", "gtin"),
    [
        ("4006381333931", "04006381333931"),
        ("036000291452", "00036000291452"),
        ("0036000291452", "00036000291452"),
        ("9501101530003", "09501101530003"),
        ("96385074", "00000096385074"),
        ("10012345000017", "10012345000017"),
        ("04252614", "00042100005264"),  # UPC-E sent unexpanded
        ("]E04006381333931", "04006381333931"),  # EAN-13 with AIM identifier
    ],
)
def test_gtin_scans(raw: str, gtin: str) -> None:
    scan = classify_scan(raw)
    assert isinstance(scan, ItemScan)
    assert (scan.gtin, scan.count, scan.batch, scan.expiry, scan.serial) == (gtin, 1, None, None, None)


@pytest.mark.parametrize("raw", ["4006381333932", "036000291453", "96385075", "10012345000018"])
def test_gtin_with_wrong_check_digit_says_scan_again(raw: str) -> None:
    scan = invalid(raw)
    assert scan.reason.render("en") == f"The check digit of {raw} is wrong: scan again"
    assert scan.reason.render("zh") == f"{raw} 的校验位错误：请重新扫描"


def test_gs1_item_scans() -> None:
    scan = classify_scan("]C101095011015300031726063010AB-12\x1d21SN9\x1d3006", today=TODAY)
    assert scan == ItemScan(
        code="(01)09501101530003(17)260630(10)AB-12(21)SN9(30)06",
        gtin="09501101530003",
        batch="AB-12",
        expiry=date(2026, 6, 30),
        serial="SN9",
        count=6,
    )
    # The same content without symbology identifier, with a stand-in, and in human-readable form.
    for raw in (
        "01095011015300031726063010AB-12<GS>21SN9<GS>3006",
        "(01)09501101530003(17)260630(10)AB-12(21)SN9(30)06",
        "]d2\x1d01095011015300031726063010AB-12\x1d21SN9\x1d3006",
    ):
        assert classify_scan(raw, today=TODAY) == scan


def test_gs1_carton_counts_its_content() -> None:
    scan = classify_scan("]C10209501101530003" + "3724", today=TODAY)
    assert isinstance(scan, ItemScan)
    assert (scan.gtin, scan.count) == ("09501101530003", 24)


def test_gs1_problems_become_invalid_scans() -> None:
    assert "check digit" in reason("]C10109501101530004")
    assert "no product number" in reason("]C100106141411234567897")  # a bare SSCC
    assert reason("]C10109501101530003" + "300") == "The item count in this barcode is 0"
    assert "separator" in reason("0109501101530003" + "10" + "A" * 25)


@pytest.mark.parametrize(
    "raw", ["HX-2044-B", "hx-2044-b", "A1", "123456", "12345678901", "SKU 77/Blue", "红色-M"]
)
def test_other_printable_codes_are_items_without_gtin(raw: str) -> None:
    assert classify_scan(raw) == ItemScan(raw, None)


def test_stand_ins_in_a_sku_do_not_make_it_gs1() -> None:
    assert classify_scan("HX~1") == ItemScan("HX~1", None)
    assert classify_scan("(A)12") == ItemScan("(A)12", None)


def test_whitespace_around_a_scan_is_ignored() -> None:
    assert classify_scan("  SO-DM-0001234\r\n") == OrderScan("SO-DM-0001234")
    assert classify_scan("\tHX-2044-B ") == ItemScan("HX-2044-B", None)


def test_fullwidth_input_from_a_chinese_ime() -> None:
    assert classify_scan("％ＣＭＤ：ＳＨＩＰ") == CommandScan("SHIP", None)
    assert classify_scan("＊１２") == MultiplierScan(12)
    assert classify_scan("４００６３８１３３３９３１") == ItemScan("4006381333931", "04006381333931")


@pytest.mark.parametrize("raw", ["", " ", "\t\r\n", "\u3000"])
def test_empty_scans(raw: str) -> None:
    assert invalid(raw).reason.msgid == "The scan is empty"


@pytest.mark.parametrize("raw", ["HX\x07B", "ab\x00", "A\tB", "SO-DM-000\x1b1234", "a\u200bb"])
def test_control_characters(raw: str) -> None:
    assert "control character" in reason(raw)


def test_length_limit() -> None:
    assert classify_scan("A" * MAX_SCAN_LENGTH) == ItemScan("A" * MAX_SCAN_LENGTH, None)
    assert invalid("A" * (MAX_SCAN_LENGTH + 1)).reason.params == {"length": 201, "max": 200}


# --------------------------------------------------------------------------------------------------
# Printing control barcodes


@pytest.mark.parametrize(
    ("command", "arg", "text"),
    [
        ("SHIP", None, "%CMD:SHIP"),
        ("undo", None, "%CMD:UNDO"),
        ("CANCEL", None, "%CMD:CANCEL"),
        ("NEXT", None, "%CMD:NEXT"),
        ("PRESET", "2", "%CMD:PRESET:2"),
    ],
)
def test_command_barcode_round_trip(command: str, arg: str | None, text: str) -> None:
    assert command_barcode(command, arg) == text
    assert classify_scan(command_barcode(command, arg)) == CommandScan(command.upper(), arg)


@given(st.from_regex(r"[A-Za-z0-9_-]{1,16}", fullmatch=True))
def test_any_valid_preset_id_round_trips(preset_id: str) -> None:
    assert classify_scan(command_barcode("PRESET", preset_id)) == CommandScan("PRESET", preset_id)


@pytest.mark.parametrize(
    ("command", "arg"),
    [("FLY", None), ("SHIP", "1"), ("PRESET", None), ("PRESET", "a:b"), ("PRESET", "x" * 17)],
)
def test_command_barcode_rejects_what_would_not_round_trip(command: str, arg: str | None) -> None:
    with pytest.raises(BarcodeError):
        command_barcode(command, arg)


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}", fullmatch=True))
def test_badge_barcode_round_trip(code: str) -> None:
    assert classify_scan(badge_barcode(code)) == BadgeScan(code.upper())


@pytest.mark.parametrize("code", ["", "W 17", "-W17", "工号1", "x" * 41])
def test_badge_barcode_rejects_bad_codes(code: str) -> None:
    with pytest.raises(BarcodeError):
        badge_barcode(code)


def test_multiplier_barcode_round_trip() -> None:
    for factor in (1, 2, 6, 12, 24, 9999):
        assert classify_scan(multiplier_barcode(factor)) == MultiplierScan(factor)
    for factor in (0, -1, 10000):
        with pytest.raises(BarcodeError):
            multiplier_barcode(factor)


def test_control_barcodes_never_look_like_items() -> None:
    texts = [command_barcode(c, "1" if a else None) for c, a in COMMANDS.items()] + [badge_barcode("W1")]
    for text in texts:
        assert not isinstance(classify_scan(text), ItemScan | InvalidScan)


# --------------------------------------------------------------------------------------------------
# Real symbols: encode with zxing-cpp, read them back as a scanner with AIM identifiers would send them


@pytest.mark.parametrize("fmt", ["Code128", "DataMatrix", "QRCode"])
@pytest.mark.parametrize("text_mode", ["Plain", "Escaped", "HRI"])
def test_scanner_output_of_real_gs1_symbols(fmt: str, text_mode: str) -> None:
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    symbol = zxingcpp.create_barcode(
        "(01)09501101530003(17)260630(10)AB-12(21)XYZ(30)3", getattr(zxingcpp.BarcodeFormat, fmt), gs1=True
    )
    raster = zxingcpp.write_barcode_to_image(symbol, scale=4)
    image = Image.frombuffer("L", (raster.shape[1], raster.shape[0]), bytes(raster))
    (result,) = zxingcpp.read_barcodes(image, text_mode=getattr(zxingcpp.TextMode, text_mode))
    scan = classify_scan(result.symbology_identifier + result.text, today=TODAY)
    assert scan == ItemScan(
        code="(01)09501101530003(17)260630(10)AB-12(21)XYZ(30)3",
        gtin="09501101530003",
        batch="AB-12",
        expiry=date(2026, 6, 30),
        serial="XYZ",
        count=3,
    )


# --------------------------------------------------------------------------------------------------
# Translations


def _msgids(module: Path) -> set[str]:
    tree = ast.parse(module.read_text(encoding="utf-8"))
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "msg"
        and isinstance(node.args[0], ast.Constant)
    }


def test_every_message_has_a_chinese_translation_with_the_same_placeholders() -> None:
    used = _msgids(ROOT / "orderdesk" / "barcodes.py") | _msgids(ROOT / "orderdesk" / "labels.py")
    assert len(used) > 40
    catalog = tomllib.loads(
        (ROOT / "orderdesk" / "locales" / "zh" / "barcodes.toml").read_text(encoding="utf-8")
    )
    assert sorted(used - catalog.keys()) == []
    assert sorted(catalog.keys() - used) == []  # no stale entries
    for msgid in used:
        assert set(re.findall(r"{(\w+)}", msgid)) == set(re.findall(r"{(\w+)}", catalog[msgid])), msgid
        assert re.search(r"[\u4e00-\u9fff]", catalog[msgid]), msgid


def test_reasons_render_in_chinese() -> None:
    scan = invalid("*0")
    assert scan.reason.render("zh") == "数量倍数必须在 1 到 9999 之间，不能是 0"


def test_module_exports_exist() -> None:
    assert all(hasattr(barcodes, name) for name in barcodes.__all__)
