"""Shipping labels (100x150 mm) and the warehouse desk card of command barcodes.

One layout, described in millimetres, feeds every output format so they cannot drift apart:

* ``svg``: vector, barcodes drawn by python-barcode's SVG writer (``<g id="barcode-...">`` groups);
* ``png``: raster at ``dpi`` (300 by default), barcodes drawn by python-barcode's ImageWriter;
* ``pdf``: the very same raster wrapped by Pillow, page size exactly 100x150 mm (A4 for the desk card);
* ``zpl``: text for Zebra-compatible thermal printers at 203 dpi (labels only).

Chinese text in PNG/PDF needs a CJK font. ``ORDERDESK_FONT`` names one explicitly; otherwise common
system locations are searched (Noto Sans CJK / Source Han, WenQuanYi, Droid Sans Fallback, AR PL,
PingFang, Microsoft YaHei...). Without one, labels still render with Pillow's default font, and the
Chinese characters come out missing. On Debian/Ubuntu install ``fonts-noto-cjk`` or the much smaller
``fonts-wqy-microhei``.

ZPL prints Chinese with ``^CI28`` (UTF-8) and the scalable printer font ``E:SIMSUN.TTF`` via ``^A@``;
that font has to be downloaded to the printer once (Zebra Setup Utilities / ``~DU``), or point
``ORDERDESK_ZPL_FONT`` at a font the printer has (e.g. ``E:ANMDS.TTF`` or ``Z:SIMSUN.FNT``).

Printing runs a configurable command, e.g. ``lp -d ZEBRA`` for PNG/PDF through CUPS, or
``lp -d ZEBRA -o raw`` to send ZPL unchanged.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import shlex
import subprocess
import tomllib
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import barcode
from barcode.writer import ImageWriter, SVGWriter
from PIL import Image, ImageDraw, ImageFont

from orderdesk.barcodes import check_preset_id, command_barcode, multiplier_barcode
from orderdesk.errors import OrderdeskError
from orderdesk.i18n import Msg, msg

__all__ = [
    "CARD_FORMATS",
    "LABEL_FORMATS",
    "DeskCardEntry",
    "LabelData",
    "LabelError",
    "Party",
    "Preset",
    "desk_card_entries",
    "find_cjk_font",
    "label_size_px",
    "load_presets",
    "print_file",
    "render_desk_card",
    "render_label",
]

log = logging.getLogger(__name__)

LABEL_FORMATS = ("svg", "png", "zpl", "pdf")
CARD_FORMATS = ("svg", "png", "pdf")
LABEL_MM = (100.0, 150.0)
A4_MM = (210.0, 297.0)
RASTER_DPI = 300
# ZPL: a 203 dpi printer with the usual 4x6 in print width/length (812x1218 dots) for 100x150 mm stock.
ZPL_DPI = 203
ZPL_WIDTH_DOTS = 812
ZPL_HEIGHT_DOTS = 1218
ZPL_FONT = "E:SIMSUN.TTF"
QUIET_MODULES = 10  # Code 128 needs a quiet zone of at least 10 modules on each side
MULTIPLIERS = (2, 6, 12, 24)
PRINT_TIMEOUT_S = 60
_MM_PER_INCH = 25.4
_SVG_FONTS = "'Noto Sans CJK SC', 'Source Han Sans SC', 'WenQuanYi Micro Hei', 'Microsoft YaHei', sans-serif"


class LabelError(OrderdeskError):
    """A label or desk card cannot be produced or printed."""

    def __init__(self, message: Msg) -> None:
        super().__init__(message, code="label")


class LabelFormatError(LabelError, ValueError):
    """An output format that is not supported."""


# --------------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Party:
    """Sender or recipient of a parcel."""

    name: str
    address: str
    phone: str
    contact: str = ""


@dataclass(frozen=True)
class LabelData:
    """Everything printed on one shipping label."""

    sender: Party
    recipient: Party
    order_no: str
    waybill: str
    item_count: int
    packing_preset: str
    ship_date: date
    carrier: str = "LOCAL"


@dataclass(frozen=True)
class DeskCardEntry:
    """One command barcode on the desk card, captioned in both languages."""

    label_en: str
    label_zh: str
    barcode_text: str


@dataclass(frozen=True)
class Preset:
    """A packing preset: the box (or bag, pallet) an order is packed in."""

    id: str
    label_en: str
    label_zh: str
    length_mm: int
    width_mm: int
    height_mm: int
    max_weight_kg: float


# --------------------------------------------------------------------------------------------------
# Packing presets


def _default_presets_path() -> Path:
    installed = Path(__file__).parent / "_data" / "packing_presets.toml"  # wheel: data/ -> orderdesk/_data
    return installed if installed.exists() else Path(__file__).parent.parent / "data" / "packing_presets.toml"


def load_presets(path: Path | None = None) -> list[Preset]:
    """Read packing presets from a TOML file (``[[presets]]`` tables); errors name the file."""
    path = path or _default_presets_path()

    def bad(problem: Msg) -> LabelError:
        return LabelError(msg("Packing presets file {path}: {problem}", path=str(path), problem=problem))

    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise bad(msg("the file does not exist")) from None
    except (OSError, UnicodeDecodeError) as err:
        raise bad(msg("cannot be read: {error}", error=str(err))) from err
    except tomllib.TOMLDecodeError as err:
        raise bad(msg("not valid TOML: {error}", error=str(err))) from err

    tables = document.get("presets")
    if not isinstance(tables, list) or not tables:
        raise bad(msg("no [[presets]] entries"))
    presets: list[Preset] = []
    for number, table in enumerate(tables, start=1):
        presets.append(_preset_from_table(number, table, bad))
    ids = [p.id for p in presets]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate is not None:
        raise bad(msg("preset id {id} is used twice", id=duplicate))
    return presets


def _preset_from_table(number: int, table: Any, bad: Any) -> Preset:
    if not isinstance(table, dict):
        raise bad(msg("preset {number} is not a table", number=number))
    values: dict[str, Any] = {}
    for key in ("id", "label_en", "label_zh"):
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            raise bad(msg("preset {number}: {key} must be a non-empty text", number=number, key=key))
        values[key] = value.strip()
    try:
        check_preset_id(values["id"])  # the id must fit on a desk card barcode
    except OrderdeskError:
        raise bad(
            msg(
                "preset {number}: id {id} may only hold letters, digits, - and _",
                number=number,
                id=values["id"],
            )
        ) from None
    for key in ("length_mm", "width_mm", "height_mm", "max_weight_kg"):
        value = table.get(key)
        integral = key != "max_weight_kg"
        ok_type = isinstance(value, int) if integral else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type or value <= 0:
            raise bad(msg("preset {number}: {key} must be a positive number", number=number, key=key))
        values[key] = value if integral else float(value)
    unknown = sorted(set(table) - set(values))
    if unknown:
        raise bad(msg("preset {number}: unknown key {key}", number=number, key=unknown[0]))
    return Preset(**values)


# --------------------------------------------------------------------------------------------------
# Layout primitives, in millimetres from the top-left corner


@dataclass(frozen=True)
class _Text:
    x: float
    y: float  # top of the text
    w: float  # box width, for alignment and fitting
    size: float  # em height in mm
    text: str
    align: str = "left"  # left | right | center
    bold: bool = False


@dataclass(frozen=True)
class _Line:
    x1: float
    y1: float
    x2: float
    y2: float
    width: float = 0.4


@dataclass(frozen=True)
class _Bars:
    """A Code 128 barcode centred in the box (x, y, w) with bars ``h`` tall."""

    x: float
    y: float
    w: float
    h: float
    data: str
    name: str  # SVG group id: barcode-<name>


@dataclass(frozen=True)
class _Page:
    width: float
    height: float
    items: tuple[_Text | _Line | _Bars, ...]
    title: str


def _clean(text: str) -> str:
    """Control characters would corrupt ZPL and SVG; an address typed with tabs is still an address."""
    return "".join(" " if unicodedata.category(c).startswith("C") else c for c in text).strip()


def _char_em(char: str) -> float:
    return 1.0 if unicodedata.east_asian_width(char) in "WF" else 0.6


def _est_width(text: str, size: float) -> float:
    """Estimated width in mm; the same estimate wraps text in every format, so they break alike."""
    return sum(_char_em(c) for c in text) * size


def _wrap(text: str, size: float, width: float, max_lines: int) -> list[str]:
    """Greedy line breaking: at spaces for Latin text, anywhere between CJK characters."""
    lines: list[str] = []
    for paragraph in text.replace("\r", "\n").split("\n"):
        line = ""
        for char in _clean(paragraph):
            if _est_width(line + char, size) <= width or not line:
                line += char
                continue
            cut = line.rfind(" ")
            if char != " " and cut > 0 and not _is_wide(char):
                lines.append(line[:cut])
                line = line[cut + 1 :] + char
            else:
                lines.append(line.rstrip())
                line = char.lstrip()
        if line.strip():
            lines.append(line.strip())
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and _est_width(last + "…", size) > width:
            last = last[:-1]
        lines[-1] = last + "…"
    return lines


def _one_line(text: str, size: float, width: float) -> str:
    lines = _wrap(text, size, width, 1)
    return lines[0] if lines else ""


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in "WF"


def _ascii_code128(data: str) -> str:
    if not data or not all(" " <= c <= "~" for c in data):
        raise LabelError(
            msg(
                "{text} cannot be printed as a Code 128 barcode: use ASCII letters, digits and symbols",
                text=data,
            )
        )
    return data


def _code128_pattern(data: str) -> str:
    # A fresh Code128 object per call: python-barcode keeps charset state between builds.
    return barcode.get("code128", _ascii_code128(data)).build()[0]


def _label_page(data: LabelData) -> _Page:
    width, height = LABEL_MM
    m = 3.0
    inner = width - 2 * m
    items: list[_Text | _Line | _Bars] = []
    add = items.append

    # Carrier and date
    add(_Text(m, 3.0, inner * 0.62, 7.0, _clean(data.carrier) or "LOCAL", bold=True))
    add(_Text(m, 3.0, inner, 3.4, "发货日期 Ship date", align="right"))
    add(_Text(m, 7.4, inner, 3.8, data.ship_date.isoformat(), align="right", bold=True))
    add(_Line(m, 13.0, width - m, 13.0))

    # Waybill: the carrier's sorting centres scan this one, so it is the biggest barcode.
    add(_Bars(m, 15.0, inner, 18.0, _ascii_code128(data.waybill), "waybill"))
    add(_Text(m, 34.5, inner, 4.2, f"运单号 Waybill  {data.waybill}", align="center", bold=True))
    add(_Line(m, 41.0, width - m, 41.0))

    # Recipient
    y = 43.0
    add(_Text(m, y, inner, 3.4, "收件人 To", bold=True))
    y += 4.6
    add(_Text(m, y, inner * 0.55, 5.0, _one_line(data.recipient.name, 5.0, inner * 0.55), bold=True))
    add(_Text(m, y + 0.5, inner, 4.4, _clean(data.recipient.phone), align="right", bold=True))
    y += 6.4
    if data.recipient.contact.strip():
        add(_Text(m, y, inner, 3.6, _one_line(f"联系人 Attn: {data.recipient.contact}", 3.6, inner)))
        y += 4.6
    for line in _wrap(data.recipient.address, 4.4, inner, 4 if y < 56 else 3):
        add(_Text(m, y, inner, 4.4, line))
        y += 5.6
    add(_Line(m, 80.0, width - m, 80.0))

    # Sender
    y = 82.0
    add(_Text(m, y, inner, 3.0, "寄件人 From", bold=True))
    y += 4.2
    sender_name = data.sender.name + (f" ({data.sender.contact})" if data.sender.contact.strip() else "")
    add(_Text(m, y, inner * 0.62, 3.6, _one_line(sender_name, 3.6, inner * 0.62)))
    add(_Text(m, y, inner, 3.6, _clean(data.sender.phone), align="right"))
    y += 4.8
    for line in _wrap(data.sender.address, 3.4, inner, 3):
        add(_Text(m, y, inner, 3.4, line))
        y += 4.4
    add(_Line(m, 104.0, width - m, 104.0))

    # Order: the desk scans this to find the order again when a parcel comes back.
    add(_Text(m, 106.0, inner, 3.0, "订单号 Order", bold=True))
    add(_Bars(m, 110.0, inner, 14.0, _ascii_code128(data.order_no), "order"))
    add(_Text(m, 125.5, inner, 4.2, data.order_no, align="center", bold=True))
    add(_Line(m, 131.5, width - m, 131.5))
    add(_Text(m, 133.5, inner, 3.6, f"件数 Items: {data.item_count}"))
    for i, line in enumerate(_wrap(f"包装 Packing: {data.packing_preset}", 3.6, inner, 2)):
        add(_Text(m, 138.5 + i * 4.6, inner, 3.6, line))
    return _Page(width, height, tuple(items), f"{data.carrier} {data.waybill} {data.order_no}")


def desk_card_entries(presets: Sequence[tuple[str, str, str]]) -> list[DeskCardEntry]:
    """The desk card's barcodes: SHIP, UNDO, CANCEL ORDER, NEXT, *2/*6/*12/*24, one per preset.

    ``presets`` are ``(id, label_en, label_zh)`` tuples (see :func:`load_presets`).
    """
    entries = [
        DeskCardEntry("Ship order", "发货", command_barcode("SHIP")),
        DeskCardEntry("Undo last scan", "撤销上一次扫描", command_barcode("UNDO")),
        DeskCardEntry("Cancel order", "取消订单", command_barcode("CANCEL")),
        DeskCardEntry("Next order", "下一单", command_barcode("NEXT")),
    ]
    entries += [DeskCardEntry(f"Quantity x{n}", f"数量 x{n}", multiplier_barcode(n)) for n in MULTIPLIERS]
    entries += [
        DeskCardEntry(f"Pack: {label_en}", f"包装：{label_zh}", command_barcode("PRESET", preset_id))
        for preset_id, label_en, label_zh in presets
    ]
    return entries


def _card_page(entries: Sequence[DeskCardEntry]) -> _Page:
    width, height = A4_MM
    m = 10.0
    items: list[_Text | _Line | _Bars] = [
        _Text(m, 8.0, width - 2 * m, 7.0, "OrderDesk 扫码指令卡 Scanner commands", align="center", bold=True),
        _Text(
            m,
            17.0,
            width - 2 * m,
            3.6,
            "扫描条码执行指令 · Scan a barcode to run its command",
            align="center",
        ),
    ]
    if not entries:
        return _Page(width, height, tuple(items), "OrderDesk desk card")
    columns = 2
    rows = math.ceil(len(entries) / columns)
    top, bottom = 25.0, height - m
    min_row_h = 24.0  # captions, a scannable bar height and the human-readable text
    row_h = min(42.0, (bottom - top) / rows)
    if row_h < min_row_h:
        most = columns * int((bottom - top) // min_row_h)
        raise LabelError(
            msg(
                "{count} barcodes do not fit on one A4 desk card (at most {max})",
                count=len(entries),
                max=most,
            )
        )
    col_w = (width - 2 * m) / columns
    bar_h = min(16.0, row_h - 17.0)
    for index, entry in enumerate(entries):
        row, col = divmod(index, columns)
        x, y = m + col * col_w, top + row * row_h
        pad = 3.0
        items.append(_Line(x, y, x + col_w, y, 0.2))
        items.append(_Text(x + pad, y + 2.0, col_w - 2 * pad, 4.2, _clean(entry.label_en), bold=True))
        items.append(_Text(x + pad, y + 7.0, col_w - 2 * pad, 4.2, _clean(entry.label_zh)))
        items.append(_Bars(x + pad, y + 12.5, col_w - 2 * pad, bar_h, entry.barcode_text, f"card-{index}"))
        items.append(
            _Text(x + pad, y + 13.5 + bar_h, col_w - 2 * pad, 2.8, entry.barcode_text, align="center")
        )
    items.append(_Line(m, top + rows * row_h, width - m, top + rows * row_h, 0.2))
    return _Page(width, height, tuple(items), "OrderDesk desk card")


# --------------------------------------------------------------------------------------------------
# Barcode sizing


def _module_units(data: str, pattern: str, box_units: float, max_units: int) -> int:
    """Module width in whole dots/pixels (exact multiples scan best) that fits the box with quiet zones."""
    units = min(max_units, int(box_units // (len(pattern) + 2 * QUIET_MODULES)))
    if units < 2:  # one-dot modules do not survive thermal print-head spread
        raise LabelError(msg("{text} is too long to print as a barcode here", text=data))
    return units


def _raster_module_px(data: str, pattern: str, box_mm: float, dpi: int) -> int:
    # ~0.34 mm modules at most: wide enough for any scanner, narrow enough to fit long waybills.
    return _module_units(data, pattern, box_mm * dpi / _MM_PER_INCH, max(2, round(0.34 * dpi / _MM_PER_INCH)))


# --------------------------------------------------------------------------------------------------
# Fonts


_FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    "/System/Library/Fonts",
    "/Library/Fonts",
    "C:/Windows/Fonts",
)
# In order of preference: Simplified Chinese faces first, then broad fallbacks.
_CJK_FONT_NAMES = (
    "NotoSansCJK-Regular.ttc",
    "NotoSansCJKsc-Regular.otf",
    "NotoSansSC-Regular.otf",
    "NotoSansSC-Regular.ttf",
    "SourceHanSansSC-Regular.otf",
    "SourceHanSans-Regular.ttc",
    "wqy-microhei.ttc",
    "wqy-zenhei.ttc",
    "DroidSansFallbackFull.ttf",
    "DroidSansFallback.ttf",
    "NotoSerifCJK-Regular.ttc",
    "uming.ttc",
    "ukai.ttc",
    "PingFang.ttc",
    "Hiragino Sans GB.ttc",
    "STHeiti Light.ttc",
    "msyh.ttc",
    "simhei.ttf",
    "simsun.ttc",
    "Arial Unicode.ttf",
)


@cache
def _system_cjk_font() -> Path | None:
    found: dict[str, Path] = {}
    wanted = {name.lower() for name in _CJK_FONT_NAMES}
    for folder in _FONT_DIRS:
        root = Path(folder).expanduser()
        if not root.is_dir():
            continue
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                if name.lower() in wanted:
                    found.setdefault(name.lower(), Path(dirpath) / name)
    return next((found[n.lower()] for n in _CJK_FONT_NAMES if n.lower() in found), None)


def find_cjk_font() -> Path | None:
    """The font used for Chinese text: ``ORDERDESK_FONT`` if set, else the first system CJK font found."""
    override = os.environ.get("ORDERDESK_FONT", "").strip()
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise LabelError(msg("ORDERDESK_FONT names {path}, which is not a font file", path=str(path)))
        return path
    return _system_cjk_font()


@cache
def _face_index(path: Path) -> int:
    """In a font collection pick the Simplified Chinese face (Noto CJK lists Japanese first)."""
    if path.suffix.lower() != ".ttc":
        return 0
    for index in range(12):
        try:
            family = ImageFont.truetype(str(path), 12, index=index).getname()[0] or ""
        except OSError:
            break
        if re.search(r"\b(SC|GB)\b|Hei SC|MicroHei|YaHei", family):
            return index
    return 0


@cache
def _font(path: Path | None, size_px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if path is None:
        return ImageFont.load_default(size_px)
    try:
        return ImageFont.truetype(str(path), size_px, index=_face_index(path))
    except OSError as err:
        raise LabelError(msg("Cannot load the font {path}: {error}", path=str(path), error=str(err))) from err


def _raster_font_path() -> Path | None:
    path = find_cjk_font()
    if path is None:
        _warn_no_font()
    return path


@cache
def _warn_no_font() -> None:
    log.warning(
        "No CJK font found: Chinese text on labels will be missing. Install fonts-noto-cjk or "
        "fonts-wqy-microhei, or set ORDERDESK_FONT to a .ttf/.ttc/.otf file."
    )


# --------------------------------------------------------------------------------------------------
# Renderers


def _render_raster(page: _Page, dpi: int) -> Image.Image:
    def px(mm: float) -> int:
        return round(mm * dpi / _MM_PER_INCH)

    image = Image.new("L", (px(page.width), px(page.height)), 255)
    draw = ImageDraw.Draw(image)
    font_path = _raster_font_path()
    for item in page.items:
        if isinstance(item, _Line):
            draw.line(
                [(px(item.x1), px(item.y1)), (px(item.x2), px(item.y2))], fill=0, width=max(1, px(item.width))
            )
        elif isinstance(item, _Text):
            _draw_text(draw, item, font_path, px)
        else:
            bars = _raster_bars(item, dpi)
            left = px(item.x) + (px(item.w) - bars.width) // 2
            image.paste(bars, (left, px(item.y)))
    return image


def _draw_text(draw: ImageDraw.ImageDraw, item: _Text, font_path: Path | None, px: Any) -> None:
    text = _clean(item.text)
    if not text:
        return
    size = max(6, px(item.size))
    font = _font(font_path, size)
    # Real glyphs can be wider than the layout's estimate: shrink rather than overflow the label.
    while size > 6 and draw.textlength(text, font=font) > px(item.w):
        size = max(6, int(size * 0.92))
        font = _font(font_path, size)
    anchor, x = {"left": ("la", px(item.x)), "right": ("ra", px(item.x + item.w))}.get(
        item.align, ("ma", px(item.x + item.w / 2))
    )
    stroke = max(1, size // 28) if item.bold else 0
    draw.text((x, px(item.y)), text, font=font, fill=0, anchor=anchor, stroke_width=stroke, stroke_fill=0)


def _raster_bars(item: _Bars, dpi: int) -> Image.Image:
    pattern = _code128_pattern(item.data)
    module = _raster_module_px(item.data, pattern, item.w, dpi)
    module_mm = module * _MM_PER_INCH / dpi
    writer = ImageWriter(mode="L", dpi=dpi)
    code = barcode.get("code128", item.data, writer=writer)
    options = {
        # A hair over the exact width so float rounding in the writer never drops a pixel column.
        "module_width": module_mm + 1e-9,
        "module_height": item.h,
        "quiet_zone": QUIET_MODULES * module_mm,
        "write_text": False,
        "margin_top": 0,
        "margin_bottom": 0,
    }
    image = code.render(options)
    return image.convert("L")


def _svg_bars(item: _Bars, dpi: int = RASTER_DPI) -> str:
    """A ``<g>`` of the python-barcode SVG writer's bars, placed in the page's mm coordinates."""
    pattern = _code128_pattern(item.data)
    module = _raster_module_px(
        item.data, pattern, item.w, dpi
    )  # same module as a 300 dpi raster: prints crisply
    module_mm = module * _MM_PER_INCH / dpi
    code = barcode.get("code128", item.data, writer=SVGWriter())
    svg = code.render(
        {
            "module_width": module_mm,
            "module_height": item.h,
            "quiet_zone": QUIET_MODULES * module_mm,
            "write_text": False,
            "margin_top": 0,
            "margin_bottom": 0,
        }
    )
    root = ET.fromstring(svg)
    total = (len(pattern) + 2 * QUIET_MODULES) * module_mm
    left = item.x + (item.w - total) / 2
    parts = [
        f'<g id="barcode-{item.name}" data-content={quoteattr(item.data)} transform="translate({left:.3f},{item.y:.3f})">',
        f'<rect x="0" y="0" width="{total:.3f}" height="{item.h:.3f}" fill="#fff"/>',
    ]
    for rect in root.iter("{http://www.w3.org/2000/svg}rect"):
        if rect.get("width", "").endswith("%"):  # the writer's own background
            continue
        x, w, h = (float(rect.get(k, "0").removesuffix("mm")) for k in ("x", "width", "height"))
        y = float(rect.get("y", "0").removesuffix("mm"))
        parts.append(f'<rect x="{x:.4f}" y="{y:.4f}" width="{w:.4f}" height="{h:.4f}" fill="#000"/>')
    parts.append("</g>")
    return "".join(parts)


def _render_svg(page: _Page) -> bytes:
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{page.width:g}mm" '
        f'height="{page.height:g}mm" viewBox="0 0 {page.width:g} {page.height:g}">',
        f"<title>{escape(page.title)}</title>",
        f'<rect x="0" y="0" width="{page.width:g}" height="{page.height:g}" fill="#fff"/>',
    ]
    for item in page.items:
        if isinstance(item, _Line):
            out.append(
                f'<line x1="{item.x1:g}" y1="{item.y1:g}" x2="{item.x2:g}" y2="{item.y2:g}" '
                f'stroke="#000" stroke-width="{item.width:g}"/>'
            )
        elif isinstance(item, _Text):
            text = _clean(item.text)
            if not text:
                continue
            anchor, x = {"left": ("start", item.x), "right": ("end", item.x + item.w)}.get(
                item.align, ("middle", item.x + item.w / 2)
            )
            weight = ' font-weight="bold"' if item.bold else ""
            # Scale the font down in the file itself when the estimate says it would overflow.
            size = min(item.size, item.size * item.w / max(_est_width(text, item.size), 1e-6))
            out.append(
                f'<text x="{x:.2f}" y="{item.y + size * 0.88:.2f}" font-size="{size:.2f}" '
                f'font-family="{_SVG_FONTS}" text-anchor="{anchor}"{weight}>{escape(text)}</text>'
            )
        else:
            out.append(_svg_bars(item))
    out.append("</svg>")
    return "\n".join(out).encode("utf-8")


def _zpl_field(text: str) -> str:
    """``^FD...^FS`` with ``^``, ``~`` (ZPL prefixes) and ``_`` (the ^FH indicator) hex-escaped."""
    if any(c in text for c in "^~_"):
        escaped = text.replace("_", "_5F").replace("^", "_5E").replace("~", "_7E")
        return f"^FH_^FD{escaped}^FS"
    return f"^FD{text}^FS"


def _render_zpl(page: _Page) -> bytes:
    def dots(mm: float) -> int:
        return round(mm * ZPL_DPI / _MM_PER_INCH)

    font = os.environ.get("ORDERDESK_ZPL_FONT", "").strip() or ZPL_FONT
    out = ["^XA", "^CI28", f"^PW{ZPL_WIDTH_DOTS}", f"^LL{ZPL_HEIGHT_DOTS}", "^LH0,0"]
    for item in page.items:
        if isinstance(item, _Line):
            thickness = max(1, dots(item.width))
            x, y = dots(min(item.x1, item.x2)), dots(min(item.y1, item.y2))
            w = max(thickness, dots(abs(item.x2 - item.x1)))
            h = max(thickness, dots(abs(item.y2 - item.y1)))
            out.append(f"^FO{x},{y}^GB{w},{h},{thickness}^FS")
        elif isinstance(item, _Text):
            text = _clean(item.text)
            if not text:
                continue
            h = dots(item.size)
            justify = {"left": "L", "right": "R"}.get(item.align, "C")
            # ^A@ has no bold: printing the field twice, one dot apart, is the usual trick.
            for offset in (0, 1) if item.bold else (0,):
                out.append(
                    f"^FO{dots(item.x) + offset},{dots(item.y)}^A@N,{h},{h},{font}"
                    f"^FB{dots(item.w)},1,0,{justify},0{_zpl_field(text)}"
                )
        else:
            pattern = _code128_pattern(item.data)
            box = dots(item.w)
            module = _module_units(item.data, pattern, box, 3)
            x = dots(item.x) + (box - len(pattern) * module) // 2
            # Mode A lets the printer pick Code 128 subsets itself (and takes the data literally).
            out.append(
                f"^FO{x},{dots(item.y)}^BY{module},3,{dots(item.h)}^BCN,{dots(item.h)},N,N,N,A{_zpl_field(item.data)}"
            )
    out += ["^PQ1", "^XZ", ""]
    return "\n".join(out).encode("utf-8")


def _render_pdf(page: _Page, dpi: int) -> bytes:
    image = _render_raster(page, dpi)
    buffer = io.BytesIO()
    # The PDF embeds the same raster as the PNG (resolution makes the page exactly the label size).
    image.save(buffer, "PDF", resolution=float(dpi), title=page.title, creator="orderdesk", quality=95)
    return buffer.getvalue()


def _render_png(page: _Page, dpi: int) -> bytes:
    buffer = io.BytesIO()
    _render_raster(page, dpi).save(buffer, "PNG", dpi=(dpi, dpi), optimize=True)
    return buffer.getvalue()


def _check_format(fmt: str, valid: Iterable[str]) -> str:
    valid = tuple(valid)
    name = fmt.strip().lower()
    if name not in valid:
        raise LabelFormatError(
            msg("Unknown format {fmt}: use one of {formats}", fmt=fmt, formats=", ".join(valid))
        )
    return name


def label_size_px(dpi: int = RASTER_DPI) -> tuple[int, int]:
    """Pixel size of a 100x150 mm label raster at ``dpi``."""
    return round(LABEL_MM[0] * dpi / _MM_PER_INCH), round(LABEL_MM[1] * dpi / _MM_PER_INCH)


def render_label(data: LabelData, fmt: str, *, dpi: int = RASTER_DPI) -> bytes:
    """Render a 100x150 mm shipping label as ``svg``, ``png``, ``zpl`` or ``pdf`` bytes.

    ``dpi`` applies to PNG and PDF (ZPL is always 203 dpi, SVG is vector).
    """
    name = _check_format(fmt, LABEL_FORMATS)
    page = _label_page(data)
    if name == "svg":
        return _render_svg(page)
    if name == "zpl":
        return _render_zpl(page)
    if name == "pdf":
        return _render_pdf(page, dpi)
    return _render_png(page, dpi)


def render_desk_card(entries: Sequence[DeskCardEntry], fmt: str, *, dpi: int = RASTER_DPI) -> bytes:
    """Render the A4 desk card of command barcodes as ``svg``, ``png`` or ``pdf`` bytes."""
    name = _check_format(fmt, CARD_FORMATS)
    page = _card_page(entries)
    if name == "svg":
        return _render_svg(page)
    if name == "pdf":
        return _render_pdf(page, dpi)
    return _render_png(page, dpi)


# --------------------------------------------------------------------------------------------------
# Printing


def print_file(path: Path, command: str) -> None:
    """Print ``path`` by running ``command`` (e.g. ``lp -d ZEBRA``) with the file name appended.

    The command is split like a shell would (``shlex``) but run without a shell, so file names and
    settings cannot inject commands. Raises :class:`LabelError` with the printer's complaint.
    """
    try:
        argv = shlex.split(command)
    except ValueError as err:
        raise LabelError(
            msg("The print command {command} is malformed: {error}", command=command, error=str(err))
        ) from err
    if not argv:
        raise LabelError(msg("No print command is configured"))
    if not Path(path).is_file():
        raise LabelError(msg("The file to print does not exist: {path}", path=str(path)))
    try:
        result = subprocess.run(
            [*argv, str(path)],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=PRINT_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise LabelError(msg("The print command {program} was not found", program=argv[0])) from None
    except subprocess.TimeoutExpired:
        raise LabelError(
            msg(
                "The print command {program} did not finish within {seconds} s",
                program=argv[0],
                seconds=PRINT_TIMEOUT_S,
            )
        ) from None
    except OSError as err:
        raise LabelError(
            msg("Cannot run the print command {program}: {error}", program=argv[0], error=str(err))
        ) from err
    if result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip())[-500:]
        raise LabelError(
            msg("Printing failed (exit code {code}): {detail}", code=result.returncode, detail=detail or "-")
        )
