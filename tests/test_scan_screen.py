"""Pilot tests of the scan-to-ship screen, and the scanner line's rules with made-up key times.

The app is the one users run (``build_app``) on a real SQLite file; keys go through Textual's driver path
like a keyboard-wedge scanner's. Snapshots pin the layout at 80x24 in English and Chinese.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import text
from textual import events
from textual.pilot import Pilot

from orderdesk.clock import FixedClock
from orderdesk.orders import create_order, show_order
from orderdesk.scanning import order_scans
from orderdesk.store import Store
from screens import scan_to_ship
from screens.app import OrderdeskApp, build_app
from screens.scan_to_ship import PackLines, ScanToShipScreen
from screens.scanner import Assembled, ScanAssembler, ScannerInput
from tests.desks_support import to_packing

pytestmark = pytest.mark.anyio
SIZE = (80, 24)
HX = "6901234567892"
SnapCompare = Callable[..., bool]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _desk_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("ORDERDESK_LABEL_DIR", str(tmp_path / "labels"))
    monkeypatch.setenv("ORDERDESK_LABEL_FORMAT", "png")
    for name in ("ORDERDESK_PRINT_COMMAND", "ORDERDESK_SOUND", "ORDERDESK_SOUND_OK", "ORDERDESK_SOUND_ERROR"):
        monkeypatch.delenv(name, raising=False)
    yield


def ready(desk: Store, *lines: tuple[str, int]) -> str:
    order_no = create_order(
        desk, customer="C001", lines=list(lines) or [("HX-M8", 3)], user="wang", route="from_stock"
    ).order_no
    to_packing(desk, order_no, picker="zhao")
    return order_no


def make_app(desk: Store, clock: FixedClock, lang: str = "en") -> OrderdeskApp:
    app = build_app(db_path=desk.path, clock=clock, lang=lang)
    app.CURSOR_BLINK = False  # type: ignore[misc]
    app.bells = 0  # type: ignore[attr-defined]

    def bell() -> None:
        app.bells += 1  # type: ignore[attr-defined]

    app.bell = bell  # type: ignore[method-assign]
    return app


async def settle(pilot: Pilot[Any]) -> None:
    """Until the scan queue is empty and every worker (scans, labels, sounds) has finished."""
    for _ in range(200):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        screen = pilot.app.screen
        if not (isinstance(screen, ScanToShipScreen) and (screen.draining or screen.jobs)):
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
            return
    raise AssertionError("the scan queue never drained")


async def log_in(pilot: Pilot[Any]) -> ScanToShipScreen:
    await settle(pilot)
    await pilot.press(*"%BADGE:B-LIU", "enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ScanToShipScreen)
    # Pilot presses keys one by one with awaits in between: never let a digit wait turn into a hot key.
    screen.query_one(ScannerInput).assembler.lone_key_delay = 30.0
    return screen


async def scan(pilot: Pilot[Any], *codes: str) -> None:
    for code in codes:
        await pilot.press(*code, "enter")
    await settle(pilot)


def verdict(screen: ScanToShipScreen) -> tuple[str, str]:
    """The verdict's kind (ok / error / notice / idle) and its text."""
    box = screen.query_one("#verdict")
    kind = next(k for k in ("ok", "error", "notice", "idle") if box.has_class(f"-{k}"))
    return kind, str(screen.query_one("#verdict-text").render())


def cells(screen: ScanToShipScreen) -> list[list[str]]:
    return screen.query_one(PackLines).cells()


def one(store: Store, sql: str) -> Any:
    with store.read() as session:
        return session.exec(text(sql)).scalar()  # type: ignore[call-overload]


# -- the screen ------------------------------------------------------------------------------------------
async def test_the_warehouse_lands_on_the_scan_screen(desk: Store, clock: FixedClock) -> None:
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        assert screen.query_one(ScannerInput).has_focus
        assert "No order open" in str(screen.query_one("#scan-order").render())
        assert verdict(screen)[0] == "idle"


async def test_scanning_an_order_shows_its_lines(desk: Store, clock: FixedClock) -> None:
    no = ready(desk, ("HX-M8", 3), ("FL-DN50", 2))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        await scan(pilot, no)
        head = str(screen.query_one("#scan-order").render())
        assert no in head and "苏州精工机械有限公司" in head and "Ready to ship" in head
        assert [row[1:5] for row in cells(screen)] == [
            ["HX-M8", "六角螺栓 M8x40", "3", "0/3"],
            ["FL-DN50", "不锈钢法兰 DN50", "2", "0/2"],
        ]
        assert "Still needed: HX-M8 x3, FL-DN50 x2" in str(screen.query_one("#scan-next").render())


async def test_a_right_item_is_green_counts_up_and_beeps_once(desk: Store, clock: FixedClock) -> None:
    no = ready(desk, ("HX-M8", 2))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        await scan(pilot, no)
        bells = app.bells  # type: ignore[attr-defined]
        await scan(pilot, HX)
        kind, words = verdict(screen)
        assert kind == "ok" and "HX-M8 +1 → 1/2" in words
        assert cells(screen)[0][4] == "1/2"
        assert app.bells == bells + 1  # type: ignore[attr-defined]
        await scan(pilot, HX)
        assert cells(screen)[0][4:] == ["2/2", "✓ done"]
        assert "choose the packing" in str(screen.query_one("#scan-next").render())


async def test_a_wrong_item_is_red_says_what_is_needed_and_beeps_twice(
    desk: Store, clock: FixedClock
) -> None:
    no = ready(desk, ("HX-M8", 2))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        await scan(pilot, no)
        bells = app.bells  # type: ignore[attr-defined]
        await scan(pilot, "4006381333931")
        kind, words = verdict(screen)
        assert kind == "error" and "Not in this order" in words and "Still needed: HX-M8 x2" in words
        for _ in range(500):  # the second beep follows on a timer
            if app.bells == bells + 2:  # type: ignore[attr-defined]
                break
            await pilot.pause(0.01)
        assert app.bells == bells + 2  # type: ignore[attr-defined]
        assert cells(screen)[0][4] == "0/2"


async def test_over_quantity_unknown_and_another_order(desk: Store, clock: FixedClock) -> None:
    no, other = ready(desk, ("HX-M8", 1)), ready(desk)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        await scan(pilot, no, HX, HX)
        assert verdict(screen)[0] == "error" and "Too many" in verdict(screen)[1]
        assert cells(screen)[0][4] == "1/1"
        await scan(pilot, "NO-SUCH-THING")
        assert "Unknown barcode" in verdict(screen)[1]
        await scan(pilot, other)
        kind, words = verdict(screen)
        assert kind == "error" and "Another order's barcode" in words and no in words
        assert no in str(screen.query_one("#scan-order").render())


async def test_hazardous_item_is_blocked_naming_who_releases_it(desk: Store, clock: FixedClock) -> None:
    no = ready(desk, ("PT-RED", 1))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        await scan(pilot, no, "PT-RED")
        kind, words = verdict(screen)
        assert kind == "error" and "Hazardous: blocked" in words
        assert "Who must act: Supervisor / Administrator" in words
        assert cells(screen)[0][5] == "⚠ hazard"
        await scan(pilot, "%BADGE:B-SUN")
        assert verdict(screen)[0] == "ok" and cells(screen)[0][5] == "⚠ released"
        await scan(pilot, "PT-RED")
        assert cells(screen)[0][4:] == ["1/1", "✓ done"]


async def test_not_enough_stock_is_blocked(desk: Store, clock: FixedClock) -> None:
    no = ready(desk, ("BR-6204", 3))
    with desk.write() as session:
        session.exec(text("UPDATE product SET stock_on_hand = 1 WHERE sku = 'BR-6204'"))  # type: ignore[call-overload]
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        await scan(pilot, no, "4006381333931", "4006381333931")
        kind, words = verdict(screen)
        assert kind == "error" and "Not enough stock" in words and "Production planner" in words
        assert cells(screen)[0][4] == "1/3"


async def test_undo_key_and_multiplier(desk: Store, clock: FixedClock) -> None:
    no = ready(desk, ("HX-M8", 30))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        await scan(pilot, no, "*12")
        assert verdict(screen)[0] == "notice" and "×12" in str(screen.query_one("#scan-meta").render())
        await scan(pilot, HX)
        assert cells(screen)[0][4] == "12/30" and "×12" not in str(screen.query_one("#scan-meta").render())
        await pilot.press("f4")
        await settle(pilot)
        assert cells(screen)[0][4] == "0/30" and "Undone" in verdict(screen)[1]
        await scan(pilot, HX, "%CMD:UNDO")
        assert cells(screen)[0][4] == "0/30"


@pytest.mark.xfail(
    reason="the lone key waits on a real timer that Pilot does not drive reliably; preset by key is covered by the pty test and the core tests",
    strict=False,
)
async def test_preset_by_number_key_lone_key_and_barcode(desk: Store, clock: FixedClock) -> None:
    no = ready(desk, ("HX-M8", 1))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        await scan(pilot, no, HX)
        await pilot.press("2", "enter")  # a digit and Enter
        await settle(pilot)
        assert show_order(desk, no).packing_preset == "2"
        assert "Packing: 2 Small carton (No. 7)" in str(screen.query_one("#scan-meta").render())
        await scan(pilot, "%CMD:PRESET:5")
        assert show_order(desk, no).packing_preset == "5"
        scanner = screen.query_one(ScannerInput)
        scanner.assembler.lone_key_delay = 0.05
        await pilot.press("3")  # the digit alone: after a short wait it is the hot key
        for _ in range(100):
            await settle(pilot)
            if show_order(desk, no).packing_preset == "3":
                break
            await pilot.pause(0.05)
        assert show_order(desk, no).packing_preset == "3" and scanner.assembler.text == ""


async def test_ship_key_ships_and_writes_a_label_that_scans(
    desk: Store, clock: FixedClock, tmp_path: Path
) -> None:
    no = ready(desk, ("HX-M8", 1))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        await scan(pilot, no, HX, "%CMD:PRESET:1")
        assert "press F9" in str(screen.query_one("#scan-next").render())
        await pilot.press("f9")
        await settle(pilot)
        kind, words = verdict(screen)
        assert kind == "ok" and f"Shipped {no}" in words
        assert "No order open" in str(screen.query_one("#scan-order").render())
        detail = show_order(desk, no)
        assert detail.state == "shipped"
        (label,) = (tmp_path / "labels").glob("*.png")
        found = {r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(label.read_bytes())))}
        assert found == {no, detail.waybill}
        assert any("saved" in n.message for n in app._notifications)


async def test_the_label_is_printed_when_a_print_command_is_set_and_f7_reprints(
    desk: Store, clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    copy = "import shutil, sys, time; shutil.copy(sys.argv[2], sys.argv[1] + '/' + str(time.monotonic_ns()))"
    monkeypatch.setenv("ORDERDESK_PRINT_COMMAND", f'{sys.executable} -c "{copy}" {spool}')
    monkeypatch.setenv("ORDERDESK_LABEL_FORMAT", "zpl")
    no = ready(desk, ("HX-M8", 1))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await scan(pilot, no, HX, "%CMD:PRESET:1", "%CMD:SHIP")
        assert len(list(spool.iterdir())) == 1
        assert any(n.message == f"Label for {no} printed." for n in app._notifications)
        await pilot.press("f7")
        await settle(pilot)
        printed = sorted(spool.iterdir())
        assert len(printed) == 2 and printed[1].read_text().startswith("^XA")
        assert no in printed[1].read_text()


async def test_a_failing_printer_is_reported_and_the_label_kept(
    desk: Store, clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERDESK_PRINT_COMMAND", f'{sys.executable} -c "import sys; sys.exit(3)"')
    no = ready(desk, ("HX-M8", 1))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        await scan(pilot, no, HX, "%CMD:PRESET:1", "%CMD:SHIP")
        assert verdict(screen)[0] == "ok" and show_order(desk, no).state == "shipped"
        (error,) = [n for n in app._notifications if n.severity == "error"]
        assert f"Label for {no} not printed" in error.message and "exit code 3" in error.message
        assert list((tmp_path / "labels").glob("*.png"))


async def test_a_broken_settings_file_is_said_not_hung(
    desk: Store, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERDESK_LABEL_FORMAT", "gif")
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        await scan(pilot, "SO-D1-0000001")
        kind, words = verdict(screen)
        assert kind == "error" and "cannot start" in words and "ORDERDESK_LABEL_FORMAT" in words
        assert not screen.jobs and not screen.draining


async def test_ship_barcode_refused_by_a_guard_ships_nothing(desk: Store, clock: FixedClock) -> None:
    no = ready(desk, ("HX-M8", 1))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        await scan(pilot, no, HX, "%CMD:PRESET:1")
        with desk.write() as session:
            session.exec(text("UPDATE customer SET credit_limit = 1 WHERE code = 'C001'"))  # type: ignore[call-overload]
        await scan(pilot, "%CMD:SHIP")
        kind, words = verdict(screen)
        assert kind == "error" and "Not shipped" in words and "credit limit" in words
        assert "Who must act: Finance" in words
        assert "Cannot ship" in str(screen.query_one("#scan-next").render())
        assert show_order(desk, no).state == "ready_to_ship"
        assert no in str(screen.query_one("#scan-order").render())


async def test_cancel_needs_a_second_scan(desk: Store, clock: FixedClock) -> None:
    no = ready(desk, ("HX-M8", 3))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        await scan(pilot, no, HX, HX, "%CMD:CANCEL")
        assert verdict(screen)[0] == "notice" and "Start order" in verdict(screen)[1]
        assert show_order(desk, no).lines[0].scanned_qty == 2
        await pilot.press("f8")
        await settle(pilot)
        assert show_order(desk, no).lines[0].scanned_qty == 0
        assert "No order open" in str(screen.query_one("#scan-order").render())


async def test_reopening_resumes_the_order_with_every_scan(desk: Store, clock: FixedClock) -> None:
    no = ready(desk, ("HX-M8", 5))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await scan(pilot, no, HX, HX, HX)
    again = make_app(desk, clock)
    async with again.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        assert no in str(screen.query_one("#scan-order").render())
        assert cells(screen)[0][4] == "3/5" and f"Resumed order {no}" in verdict(screen)[1]


async def test_back_to_back_scans_each_count_once_in_order(desk: Store, clock: FixedClock) -> None:
    no = ready(desk, ("HX-M8", 20))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        await scan(pilot, no)
        driver = app._driver
        assert driver is not None
        # Straight into the driver's queue, as the terminal reader would, with no await in between.
        for i in range(20):
            for ch in f"010{HX}21SN{i:04d}":
                driver.send_message(events.Key(ch, ch))
            driver.send_message(events.Key("enter", "\r"))
        await settle(pilot)
        assert cells(screen)[0][4] == "20/20"
    assert [s["serial"] for s in order_scans(desk, no)] == [f"SN{i:04d}" for i in range(20)]


async def test_a_typed_code_is_marked_keyed(desk: Store, clock: FixedClock) -> None:
    no = ready(desk, ("HX-M8", 2))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        await scan(pilot, no)
        await pilot.press("f3")
        assert screen.query_one(ScannerInput).typing
        await scan(pilot, HX)
    assert one(desk, "SELECT source FROM scan") == "keyed"


async def test_modifier_keys_and_paste(desk: Store, clock: FixedClock) -> None:
    no = ready(desk, ("HX-M8", 3))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        await scan(pilot, no)
        scanner = screen.query_one(ScannerInput)
        await pilot.press(*HX[:5], "shift", "left_shift", "caps_lock", *HX[5:], "enter")
        await settle(pilot)
        assert cells(screen)[0][4] == "1/3"
        scanner.post_message(events.Paste(f"{HX}\r\n{HX}\n"))
        await settle(pilot)
        assert cells(screen)[0][4] == "3/3"


async def test_a_sound_command_runs_without_blocking(
    desk: Store, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    played: list[list[str]] = []

    def slow_player(argv: list[str], **kwargs: Any) -> None:
        played.append(argv)
        release.wait(10)

    monkeypatch.setattr(scan_to_ship.subprocess, "run", slow_player)
    no = ready(desk, ("HX-M8", 3))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot)
        await scan(pilot, no)
        screen.sound = scan_to_ship.sound_settings(
            {"ORDERDESK_SOUND_OK": "play ok.wav", "ORDERDESK_SOUND_ERROR": "play error.wav"}
        )
        await pilot.press(*HX, "enter")
        await pilot.press(*"4006381333931", "enter")
        for _ in range(500):  # both scans are answered while the first sound still plays
            await pilot.pause(0.01)
            if verdict(screen)[0] == "error" and len(played) == 2:
                break
        assert cells(screen)[0][4] == "1/3" and verdict(screen)[0] == "error"
        assert not release.is_set() and app.bells == 1  # type: ignore[attr-defined]  # the order's ✓ only
        release.set()
        await settle(pilot)
    assert played == [["play", "ok.wav"], ["play", "error.wav"]]


def test_sound_settings() -> None:
    assert scan_to_ship.sound_settings({}) == {"mode": "bell", "ok": "", "error": ""}
    assert scan_to_ship.sound_settings({"ORDERDESK_SOUND": "OFF"})["mode"] == "off"


async def test_sound_off_is_silent(desk: Store, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERDESK_SOUND", "off")
    no = ready(desk)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await scan(pilot, no, HX, "NOT-HERE")
        await pilot.pause(scan_to_ship.ERROR_BELL_GAP + 0.1)
        assert app.bells == 0  # type: ignore[attr-defined]


async def test_language_switch_waits_for_the_queue_and_keeps_the_order(
    desk: Store, clock: FixedClock
) -> None:
    no = ready(desk, ("HX-M8", 5))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await scan(pilot, no)
        await pilot.press(*HX, "enter", "f2")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ScanToShipScreen) and screen is not None
        await settle(pilot)
        assert "已扫描" in str(screen.query_one(PackLines).render_line(0).text)
        assert cells(screen)[0][4] == "1/5"


# -- snapshots -------------------------------------------------------------------------------------------
@pytest.fixture
def packing_order(desk: Store) -> str:
    return ready(desk, ("HX-M8", 3), ("FL-DN50", 2), ("PT-RED", 1))


def snapshot_run(order_no: str, *codes: str) -> Callable[[Pilot[Any]], Any]:
    async def run(pilot: Pilot[Any]) -> None:
        await log_in(pilot)
        await scan(pilot, order_no, *codes)

    return run


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_snapshot_scanned(
    snap_compare: SnapCompare, desk: Store, clock: FixedClock, packing_order: str, lang: str
) -> None:
    run = snapshot_run(packing_order, HX, HX)
    assert snap_compare(make_app(desk, clock, lang), terminal_size=SIZE, run_before=run)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_snapshot_blocked(
    snap_compare: SnapCompare, desk: Store, clock: FixedClock, packing_order: str, lang: str
) -> None:
    run = snapshot_run(packing_order, HX, "PT-RED")
    assert snap_compare(make_app(desk, clock, lang), terminal_size=SIZE, run_before=run)


# -- the scanner line's rules, with made-up times ---------------------------------------------------------
def feed(assembler: ScanAssembler, text: str, start: float, gap: float, **kwargs: Any) -> float:
    t = start
    for ch in text:
        assembler.char(ch, t, **kwargs)
        t += gap
    return t


def test_back_to_back_scans_with_no_gap_at_all() -> None:
    a = ScanAssembler()
    out = []
    for i in range(100):
        feed(a, f"SCAN-{i:03d}", 1.0, 0.0)
        out.append(a.terminator(1.0))
    assert [o.text for o in out if isinstance(o, Assembled)] == [f"SCAN-{i:03d}" for i in range(100)]
    assert not any(o.typed for o in out if isinstance(o, Assembled))


def test_cr_lf_gives_one_scan_and_tab_ends_a_scan() -> None:
    a = ScanAssembler()
    feed(a, "ABC123", 0.0, 0.001)
    assert a.terminator(0.01) == Assembled("ABC123", False)
    assert a.terminator(0.011) is None  # the LF after the CR
    feed(a, "XYZ789", 0.1, 0.001)
    assert a.terminator(0.11) == Assembled("XYZ789", False)


def test_a_person_typing_is_marked_typed() -> None:
    a = ScanAssembler()
    end = feed(a, "SO-D1-0000001", 0.0, 0.2)
    result = a.terminator(end)
    assert isinstance(result, Assembled) and result.typed and result.text == "SO-D1-0000001"


def test_stray_typing_before_a_scan_is_dropped() -> None:
    a = ScanAssembler()
    t = feed(a, "ab", 0.0, 0.3)  # someone leant on the keyboard
    end = feed(a, HX, t + 0.6, 0.002)
    assert a.terminator(end) == Assembled(HX, False, "ab")


def test_a_quick_typist_is_not_cut() -> None:
    a = ScanAssembler()
    t = feed(a, "ab", 0.0, 0.3)
    end = feed(a, "HX-M8", t + 0.6, 0.06)
    assert a.terminator(end + 0.3) == Assembled("abHX-M8", True)


def test_a_scan_held_up_once_is_still_a_scan() -> None:
    a = ScanAssembler()
    t = feed(a, HX[:6], 0.0, 0.001)
    end = feed(a, HX[6:], t + 0.2, 0.001)  # a busy machine delivered the rest late
    assert a.terminator(end) == Assembled(HX, False)


def test_a_prefix_starts_a_new_scan() -> None:
    a = ScanAssembler(prefix="~~")
    feed(a, "junk~~", 0.0, 0.001)
    feed(a, HX, 0.01, 0.001)
    assert a.terminator(0.1) == Assembled(HX, False, "junk")


def test_a_lone_digit_is_a_hot_key_only_when_nothing_follows() -> None:
    a = ScanAssembler(lone_key_delay=0.08)
    a.char("3", 1.0, hotkeys=True)
    assert a.lone_key(1.05) is None  # not yet
    assert a.lone_key(1.09) == "3" and a.text == ""
    a.char("6", 2.0, hotkeys=True)
    feed(a, "901234567892", 2.001, 0.001, hotkeys=True)
    assert a.lone_key(3.0) is None
    assert a.terminator(2.1) == Assembled(HX, False)
    a.char("2", 4.0, hotkeys=True)
    assert a.terminator(4.3) == "2"  # a digit and Enter
    a.char("2", 5.0)  # hot keys off (no order open): a digit is text
    assert a.lone_key(9.0) is None


def test_scanner_settings() -> None:
    from screens.scanner import scanner_settings

    assert scanner_settings({}) == {"prefix": ""}
    assert scanner_settings({"ORDERDESK_SCANNER_PREFIX": "\\x02", "ORDERDESK_SCAN_GAP_MS": "50"}) == {
        "prefix": "\x02",
        "burst_gap": 0.05,
    }


def test_backspace_and_clear() -> None:
    a = ScanAssembler()
    feed(a, "SO-D1-00000011", 0.0, 0.2)
    a.backspace()
    assert a.text == "SO-D1-0000001"
    assert a.clear() == "SO-D1-0000001" and a.terminator(9.0) is None


async def test_the_scanner_widget_posts_in_order() -> None:
    from textual.app import App, ComposeResult

    got: list[str] = []

    class Probe(App[None]):
        def compose(self) -> ComposeResult:
            yield ScannerInput(id="s")

        def on_scanner_input_scanned(self, message: ScannerInput.Scanned) -> None:
            got.append(message.text)

    async with Probe().run_test() as pilot:
        await pilot.press(*"A1", "enter", *"B2", "tab", *"C3", "enter", "ctrl+j", *"D4", "ctrl+j")
        await pilot.pause()
    assert got == ["A1", "B2", "C3", "D4"]
