"""Shipping labels, the desk card and printing: every barcode printed must scan back exactly."""

from __future__ import annotations

import io
import itertools
import json
import re
import shlex
import sys
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import barcode as python_barcode
import pytest
import zxingcpp
from PIL import Image, ImageDraw

from orderdesk import labels
from orderdesk.barcodes import BarcodeError, CommandScan, MultiplierScan, classify_scan
from orderdesk.labels import (
    CARD_FORMATS,
    LABEL_FORMATS,
    DeskCardEntry,
    LabelData,
    LabelError,
    Party,
    Preset,
    desk_card_entries,
    find_cjk_font,
    label_size_px,
    load_presets,
    print_file,
    render_desk_card,
    render_label,
)

SVG_NS = "{http://www.w3.org/2000/svg}"
BUNDLED_FONT = Path(python_barcode.__file__).parent / "fonts" / "DejaVuSansMono.ttf"


@pytest.fixture
def label() -> LabelData:
    return LabelData(
        sender=Party(
            "深圳华星电子有限公司",
            "广东省深圳市宝安区西乡街道固戍一路 88 号 3 栋 501",
            "0755-2345 6789",
            "李工",
        ),
        recipient=Party(
            "张三",
            "浙江省杭州市西湖区文三路 478 号华星时代广场 A 座 1203 室（前台代收）",
            "138 0013 8000",
            "王经理",
        ),
        order_no="SO-DM-0001234",
        waybill="SF1234567890123",
        item_count=3,
        packing_preset="Medium carton (No. 5) / 5号纸箱",
        ship_date=date(2026, 6, 30),
        carrier="SF EXPRESS",
    )


def decode(image: Image.Image) -> list[str]:
    return sorted(
        r.text
        for r in zxingcpp.read_barcodes(
            image, formats=zxingcpp.BarcodeFormat.Code128, text_mode=zxingcpp.TextMode.Plain
        )
    )


def png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def pdf_images(data: bytes) -> list[Image.Image]:
    """The raster images a PDF embeds (Pillow writes them as DCTDecode JPEG streams)."""
    images = []
    for match in re.finditer(rb"/Subtype /Image.*?stream\r?\n", data, re.S):
        start = match.end()
        end = data.index(b"endstream", start)
        assert b"/DCTDecode" in match.group(0)
        images.append(Image.open(io.BytesIO(data[start:end])))
    return images


def pdf_mediabox_mm(data: bytes) -> tuple[float, float]:
    match = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)
    assert match, "no MediaBox"
    return float(match.group(1)) * 25.4 / 72, float(match.group(2)) * 25.4 / 72


def rasterise_svg_barcode(svg: bytes, group_id: str, px_per_mm: float = 12.0) -> tuple[str, Image.Image]:
    """Draw the ``<rect>`` bars of one barcode group with Pillow, the way a printer would."""
    root = ET.fromstring(svg)
    group = next(g for g in root.iter(f"{SVG_NS}g") if g.get("id") == group_id)
    rects = [r for r in group.iter(f"{SVG_NS}rect") if r.get("fill") == "#000"]
    assert rects, "no bars in the barcode group"
    width = max(float(r.get("x")) + float(r.get("width")) for r in rects) + 10
    height = max(float(r.get("y")) + float(r.get("height")) for r in rects) + 10
    image = Image.new("L", (round(width * px_per_mm), round(height * px_per_mm)), 255)
    draw = ImageDraw.Draw(image)
    margin = 5 * px_per_mm  # the group's own white quiet zone is included in the bar coordinates
    for r in rects:
        x, y = float(r.get("x")) * px_per_mm + margin, float(r.get("y")) * px_per_mm + margin
        w, h = float(r.get("width")) * px_per_mm, float(r.get("height")) * px_per_mm
        draw.rectangle([round(x), round(y), round(x + w) - 1, round(y + h) - 1], fill=0)
    return group.get("data-content", ""), image


# --------------------------------------------------------------------------------------------------
# Shipping label


@pytest.mark.parametrize("fmt", LABEL_FORMATS)
def test_every_format_renders(label: LabelData, fmt: str) -> None:
    data = render_label(label, fmt)
    assert len(data) > 500
    assert render_label(label, fmt.upper()) == data  # deterministic, format name not case-sensitive


def test_unknown_format_lists_the_valid_ones(label: LabelData) -> None:
    with pytest.raises(ValueError) as err:
        render_label(label, "jpeg")
    assert isinstance(err.value, LabelError)
    assert err.value.message.params["formats"] == "svg, png, zpl, pdf"
    with pytest.raises(ValueError):
        render_label(label, "zpl2")


@pytest.mark.parametrize("dpi", [300, 203])
def test_png_is_100_by_150_mm_and_its_barcodes_scan(label: LabelData, dpi: int) -> None:
    image = png(render_label(label, "png", dpi=dpi))
    assert image.size == label_size_px(dpi) == (round(100 / 25.4 * dpi), round(150 / 25.4 * dpi))
    assert image.size == ((1181, 1772) if dpi == 300 else (799, 1199))
    assert tuple(round(v) for v in image.info["dpi"]) == (dpi, dpi)
    assert decode(image) == ["SF1234567890123", "SO-DM-0001234"]


def test_png_barcodes_have_whole_pixel_modules(label: LabelData) -> None:
    image = png(render_label(label, "png")).convert("1")
    (waybill,) = [r for r in zxingcpp.read_barcodes(image) if r.text == label.waybill]
    row = waybill.position.top_left.y + 20
    pixels = [image.getpixel((x, row)) for x in range(image.width)]
    runs, count = [], 1
    for a, b in itertools.pairwise(pixels):
        if a == b:
            count += 1
        else:
            runs.append(count)
            count = 1
    runs.append(count)
    bars = runs[1:-1]  # drop the white margins
    module = min(bars)
    assert module >= 2
    assert all(run % module == 0 for run in bars), bars
    assert min(runs[0], runs[-1]) >= 10 * module  # Code 128 quiet zones


def test_pdf_embeds_the_same_raster_and_is_label_sized(label: LabelData) -> None:
    data = render_label(label, "pdf")
    assert data.startswith(b"%PDF")
    width, height = pdf_mediabox_mm(data)
    assert width == pytest.approx(100, abs=0.1) and height == pytest.approx(150, abs=0.1)
    (image,) = pdf_images(data)
    assert image.size == png(render_label(label, "png")).size
    assert decode(image) == ["SF1234567890123", "SO-DM-0001234"]


def test_svg_barcodes_scan_when_rasterised(label: LabelData) -> None:
    svg = render_label(label, "svg")
    root = ET.fromstring(svg)
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("100mm", "150mm", "0 0 100 150")
    for group_id, expected in (("barcode-order", label.order_no), ("barcode-waybill", label.waybill)):
        content, image = rasterise_svg_barcode(svg, group_id)
        assert content == expected
        assert decode(image) == [expected]
    texts = "".join(t.text or "" for t in root.iter(f"{SVG_NS}text"))
    assert "张三" in texts and "SO-DM-0001234" in texts


def test_zpl_has_the_printer_setup_and_both_barcodes(label: LabelData) -> None:
    zpl = render_label(label, "zpl").decode("utf-8")
    assert zpl.startswith("^XA") and zpl.rstrip().endswith("^XZ")
    for command in ("^PW812", "^LL1218", "^CI28"):
        assert command in zpl
    assert zpl.index("^CI28") < zpl.index("^FD")  # UTF-8 must be on before the first field
    barcodes = re.findall(r"\^BC[^\n]*?\^FD([^\n]*?)\^FS", zpl)
    assert sorted(barcodes) == ["SF1234567890123", "SO-DM-0001234"]
    assert "^A@N," in zpl and "E:SIMSUN.TTF" in zpl
    assert "张三" in zpl and "浙江省杭州市" in zpl
    for x, _y in re.findall(r"\^FO(\d+),(\d+)", zpl):
        assert 0 <= int(x) < 812


def test_zpl_escapes_its_special_characters(label: LabelData) -> None:
    tricky = LabelData(**{**label.__dict__, "recipient": Party("A^B~C_D", "^XZ~JR", "1")})
    zpl = render_label(tricky, "zpl").decode("utf-8")
    assert "^FH_^FDA_5EB_7EC_5FD^FS" in zpl
    assert "^FH_^FD_5EXZ_7EJR^FS" in zpl
    assert zpl.count("^XZ") == 1 and "~JR" not in zpl


def test_zpl_font_can_be_configured(label: LabelData, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERDESK_ZPL_FONT", "Z:SIMSUN.FNT")
    zpl = render_label(label, "zpl").decode("utf-8")
    assert "Z:SIMSUN.FNT" in zpl and "E:SIMSUN.TTF" not in zpl


def test_long_and_multiline_addresses_are_wrapped_not_lost(label: LabelData) -> None:
    address = "第一行 Line one\n" + "很长的地址" * 40
    long = LabelData(**{**label.__dict__, "recipient": Party("张三", address, "1")})
    root = ET.fromstring(render_label(long, "svg"))
    lines = [t.text or "" for t in root.iter(f"{SVG_NS}text")]
    assert "第一行 Line one" in lines
    assert any(line.endswith("…") for line in lines)  # truncated visibly, not silently
    assert decode(png(render_label(long, "png"))) == ["SF1234567890123", "SO-DM-0001234"]


@pytest.mark.parametrize("waybill", ["SF单号123", "", "SF\t123"])
def test_waybill_that_code128_cannot_carry(label: LabelData, waybill: str) -> None:
    bad = LabelData(**{**label.__dict__, "waybill": waybill})
    with pytest.raises(LabelError) as err:
        render_label(bad, "png")
    assert "Code 128" in err.value.message.render("en")


def test_barcode_too_long_for_the_label(label: LabelData) -> None:
    bad = LabelData(**{**label.__dict__, "waybill": "SF-" + "AB" * 40})
    for fmt in ("png", "svg", "zpl"):
        with pytest.raises(LabelError) as err:
            render_label(bad, fmt)
        assert err.value.message.msgid == "{text} is too long to print as a barcode here"


# --------------------------------------------------------------------------------------------------
# Fonts


def test_font_override(monkeypatch: pytest.MonkeyPatch, label: LabelData) -> None:
    monkeypatch.setenv("ORDERDESK_FONT", str(BUNDLED_FONT))
    assert find_cjk_font() == BUNDLED_FONT
    assert decode(png(render_label(label, "png"))) == ["SF1234567890123", "SO-DM-0001234"]


def test_font_override_that_does_not_exist(
    monkeypatch: pytest.MonkeyPatch, label: LabelData, tmp_path: Path
) -> None:
    monkeypatch.setenv("ORDERDESK_FONT", str(tmp_path / "nope.ttf"))
    with pytest.raises(LabelError) as err:
        render_label(label, "png")
    assert "nope.ttf" in err.value.message.render("en")


def test_renders_without_any_cjk_font(monkeypatch: pytest.MonkeyPatch, label: LabelData) -> None:
    monkeypatch.delenv("ORDERDESK_FONT", raising=False)
    monkeypatch.setattr(labels, "_system_cjk_font", lambda: None)
    assert find_cjk_font() is None
    assert decode(png(render_label(label, "png"))) == ["SF1234567890123", "SO-DM-0001234"]
    assert render_label(label, "pdf").startswith(b"%PDF")


def test_system_cjk_font_draws_chinese_glyphs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERDESK_FONT", raising=False)
    path = find_cjk_font()
    if path is None:
        pytest.skip("no CJK font installed (e.g. apt-get install fonts-noto-cjk)")
    font = labels._font(path, 48)
    # A font without the glyph draws the same .notdef box for every missing character.
    from PIL import Image, ImageDraw

    def glyph(ch: str) -> bytes:
        image = Image.new("L", (64, 64))
        ImageDraw.Draw(image).text((0, 0), ch, font=font, fill=255)
        return image.tobytes()

    assert glyph("收") != glyph("件") and any(glyph("收"))


# --------------------------------------------------------------------------------------------------
# Desk card


@pytest.fixture
def entries() -> list[DeskCardEntry]:
    return desk_card_entries([(p.id, p.label_en, p.label_zh) for p in load_presets()])


def expected_scan(entry: DeskCardEntry) -> CommandScan | MultiplierScan:
    commands = {
        "Ship order": "SHIP",
        "Undo last scan": "UNDO",
        "Cancel order": "CANCEL",
        "Next order": "NEXT",
    }
    if entry.label_en in commands:
        return CommandScan(commands[entry.label_en], None)
    if entry.label_en.startswith("Quantity x"):
        return MultiplierScan(int(entry.label_en.removeprefix("Quantity x")))
    preset = next(p for p in load_presets() if entry.label_en == f"Pack: {p.label_en}")
    return CommandScan("PRESET", preset.id)


def test_desk_card_entries(entries: list[DeskCardEntry]) -> None:
    presets = load_presets()
    assert [e.barcode_text for e in entries] == [
        "%CMD:SHIP",
        "%CMD:UNDO",
        "%CMD:CANCEL",
        "%CMD:NEXT",
        "*2",
        "*6",
        "*12",
        "*24",
        *(f"%CMD:PRESET:{p.id}" for p in presets),
    ]
    assert all(e.label_en and e.label_zh for e in entries)
    assert entries[-1].label_zh.endswith(presets[-1].label_zh)


def test_desk_card_rejects_a_preset_id_that_cannot_be_scanned() -> None:
    with pytest.raises(BarcodeError):
        desk_card_entries([("big box", "Big box", "大箱")])


def test_every_desk_card_barcode_scans_to_its_command(entries: list[DeskCardEntry]) -> None:
    image = png(render_desk_card(entries, "png"))
    assert image.size == (2480, 3508)  # A4 at 300 dpi
    assert decode(image) == sorted(e.barcode_text for e in entries)
    for entry in entries:
        assert classify_scan(entry.barcode_text) == expected_scan(entry)


def test_desk_card_svg_and_pdf(entries: list[DeskCardEntry]) -> None:
    svg = render_desk_card(entries, "svg")
    for index, entry in enumerate(entries):
        content, image = rasterise_svg_barcode(svg, f"barcode-card-{index}")
        assert content == entry.barcode_text
        assert decode(image) == [entry.barcode_text]
    pdf = render_desk_card(entries, "pdf")
    assert pdf.startswith(b"%PDF")
    width, height = pdf_mediabox_mm(pdf)
    assert (round(width), round(height)) == (210, 297)
    (image,) = pdf_images(pdf)
    assert decode(image) == sorted(e.barcode_text for e in entries)


def test_desk_card_formats(entries: list[DeskCardEntry]) -> None:
    assert CARD_FORMATS == ("svg", "png", "pdf")
    with pytest.raises(ValueError):
        render_desk_card(entries, "zpl")


def test_desk_card_with_too_many_entries() -> None:
    many = desk_card_entries([(str(i), f"Box {i}", f"箱 {i}") for i in range(30)])
    with pytest.raises(LabelError) as err:
        render_desk_card(many, "png")
    assert err.value.message.params["count"] == len(many)


# --------------------------------------------------------------------------------------------------
# Packing presets


def test_shipped_presets() -> None:
    presets = load_presets()
    assert 4 <= len(presets) <= 6
    assert len({p.id for p in presets}) == len(presets)
    for p in presets:
        assert isinstance(p, Preset)
        assert p.label_en and re.search(r"[\u4e00-\u9fff]", p.label_zh)
        assert min(p.length_mm, p.width_mm, p.height_mm) > 0 and p.max_weight_kg > 0


GOOD_PRESET = 'id = "1"\nlabel_en = "Box"\nlabel_zh = "箱"\nlength_mm = 1\nwidth_mm = 2\nheight_mm = 3\nmax_weight_kg = 4\n'


def test_load_presets_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[[presets]]\n" + GOOD_PRESET, encoding="utf-8")
    assert load_presets(path) == [Preset("1", "Box", "箱", 1, 2, 3, 4.0)]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "the file does not exist"),
        ("[[presets]\n", "not valid TOML"),
        ("title = 'x'\n", "no [[presets]] entries"),
        ("[[presets]]\n" + GOOD_PRESET + "[[presets]]\n" + GOOD_PRESET, "preset id 1 is used twice"),
        (
            "[[presets]]\n" + GOOD_PRESET.replace('label_zh = "箱"', 'label_zh = ""'),
            "label_zh must be a non-empty text",
        ),
        (
            "[[presets]]\n" + GOOD_PRESET.replace("width_mm = 2", "width_mm = -2"),
            "width_mm must be a positive number",
        ),
        (
            "[[presets]]\n" + GOOD_PRESET.replace("width_mm = 2", 'width_mm = "2"'),
            "width_mm must be a positive number",
        ),
        ("[[presets]]\n" + GOOD_PRESET.replace("height_mm = 3\n", ""), "height_mm must be a positive number"),
        ("[[presets]]\n" + GOOD_PRESET.replace('id = "1"', 'id = "a b"'), "may only hold letters, digits"),
        ("[[presets]]\n" + GOOD_PRESET + "colour = 'red'\n", "unknown key colour"),
        ("presets = [1]\n", "preset 1 is not a table"),
    ],
)
def test_bad_presets_file_names_the_file(tmp_path: Path, content: str | None, problem: str) -> None:
    path = tmp_path / "presets.toml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(LabelError) as err:
        load_presets(path)
    text = err.value.message.render("en")
    assert str(path) in text and problem in text
    assert str(path) in err.value.message.render("zh")


# --------------------------------------------------------------------------------------------------
# Printing


def python_command(script: str) -> str:
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}"


def test_print_file_appends_the_path_without_a_shell(tmp_path: Path) -> None:
    target = tmp_path / "label; touch pwned $(id).png"
    target.write_bytes(b"PNG")
    record = tmp_path / "argv.json"
    script = f"import json, sys; json.dump(sys.argv[1:], open({str(record)!r}, 'w'))"
    print_file(target, python_command(script) + " -d ZEBRA")
    assert json.loads(record.read_text()) == ["-d", "ZEBRA", str(target)]
    assert not (tmp_path / "pwned").exists()


def test_failing_print_command_reports_its_stderr(tmp_path: Path) -> None:
    target = tmp_path / "label.pdf"
    target.write_bytes(b"%PDF")
    script = "import sys; sys.stderr.write('lp: The printer or class does not exist.'); sys.exit(3)"
    with pytest.raises(LabelError) as err:
        print_file(target, python_command(script))
    assert err.value.message.params == {"code": 3, "detail": "lp: The printer or class does not exist."}


@pytest.mark.parametrize(
    ("command", "msgid"),
    [
        ("", "No print command is configured"),
        ("   ", "No print command is configured"),
        ("lp -d 'ZEBRA", "The print command {command} is malformed: {error}"),
        ("/nonexistent/bin/lp -d ZEBRA", "The print command {program} was not found"),
    ],
)
def test_bad_print_commands(tmp_path: Path, command: str, msgid: str) -> None:
    target = tmp_path / "label.png"
    target.write_bytes(b"PNG")
    with pytest.raises(LabelError) as err:
        print_file(target, command)
    assert err.value.message.msgid == msgid


def test_print_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LabelError) as err:
        print_file(tmp_path / "gone.png", python_command("pass"))
    assert err.value.message.msgid == "The file to print does not exist: {path}"
