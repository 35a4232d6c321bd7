"""Pilot tests of the TUI shell: login, the order browser, the order detail and its move dialog, both
languages. Each test runs the real app (``build_app``) on a real SQLite file from the ``desk`` fixture."""

from __future__ import annotations

import contextlib
import gc
import re
import subprocess
import sys
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandList
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Input, OptionList, Static

from orderdesk.clock import FixedClock
from orderdesk.i18n import catalog
from orderdesk.orders import create_order, move_order, show_order
from orderdesk.store import Store
from screens.app import HOME_SCREENS, OrderdeskApp, build_app
from screens.login import LoginScreen
from screens.order_detail import OrderDetailScreen
from screens.order_dialogs import MoveDialog, NoteDialog
from screens.orders import PAGE, OrderBrowserScreen
from screens.session import DeskSession

pytestmark = pytest.mark.anyio

SIZE = (80, 24)
REPO = Path(__file__).resolve().parent.parent


# -- helpers ---------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _every_role_home_is_the_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests pin the shell (login, browser, detail, dialogs); the role desks have tests of their own."""
    for home in ("sales", "qc", "warehouse", "finance", "planner", "supervisor", "admin"):
        monkeypatch.setitem(HOME_SCREENS, home, OrderBrowserScreen)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_app(store: Store, clock: FixedClock, **kwargs: Any) -> OrderdeskApp:
    return build_app(db_path=store.path, clock=clock, **kwargs)


async def settle(pilot: Pilot[Any]) -> None:
    """Let workers finish and their messages be handled (a worker may start another screen's worker)."""
    for _ in range(4):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def type_and_enter(pilot: Pilot[Any], *entries: str) -> None:
    """Type each entry and Enter (as a person or a keyboard-wedge scanner would), then let the desk settle."""
    await pilot.press(*(key for entry in entries for key in (*entry, "enter")))
    await settle(pilot)


async def log_in(pilot: Pilot[Any], name: str, pin: str = "1234") -> None:
    """Fill the login form and press Enter (typing key by key is covered by the login tests)."""
    await settle(pilot)
    screen = pilot.app.screen
    screen.query_one("#login-name", Input).value = name
    field = screen.query_one("#login-pin", Input)
    field.value = pin
    field.focus()
    await pilot.press("enter")
    await settle(pilot)


async def search(pilot: Pilot[Any], text: str) -> list[str]:
    field = pilot.app.screen.query_one("#search", Input)
    field.value = text
    await settle(pilot)
    return row_keys(pilot.app.screen.query_one("#orders", DataTable))


def row_keys(table: DataTable[Any]) -> list[str]:
    return [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(table.row_count)]


def cell_texts(table: DataTable[Any]) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def login_message(app: OrderdeskApp) -> Static:
    return app.screen.query_one("#login-message", Static)


def order(store: Store, customer: str = "C001", *lines: tuple[str, int], **kwargs: Any) -> str:
    detail = create_order(
        store,
        customer=customer,
        lines=list(lines) or [("HX-M8", 10), ("FL-DN50", 2)],
        user="wang",
        promised=kwargs.pop("promised", date(2026, 12, 1)),
        **kwargs,
    )
    return detail.order_no


async def open_order(pilot: Pilot[Any], order_no: str) -> OrderDetailScreen:
    await search(pilot, order_no)
    pilot.app.screen.query_one("#orders", DataTable).focus()
    await pilot.press("enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, OrderDetailScreen)
    return screen


# -- startup ---------------------------------------------------------------------------------------------
def test_building_the_app_does_not_import_the_database_layer(tmp_path: Path) -> None:
    """The first frame must not wait for SQLAlchemy: the store is opened by a worker after it is shown."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from screens.app import build_app\n"
        f"build_app(db_path=Path({str(tmp_path / 'x.db')!r}))\n"
        "heavy = [m for m in ('sqlalchemy', 'sqlmodel', 'alembic', 'orderdesk.orders') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.pty
def test_orderdesk_run_paints_the_login_quickly_and_quits(desk: Store) -> None:
    """The real program in a pseudo-terminal: login on screen fast (target 0.8 s), ctrl+q exits cleanly."""
    import fcntl
    import os
    import pty
    import select
    import signal
    import struct
    import termios
    import time

    argv = [sys.executable, "-m", "orderdesk.cli", "--db", str(desk.path), "--lang", "en", "run"]
    started = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:  # the child: an 80x24 terminal, then the program
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        os.chdir(REPO)
        os.execve(argv[0], argv, {**os.environ, "TERM": "xterm-256color", "TEXTUAL_ANIMATION": "none"})
    try:
        seen, painted = b"", None
        while time.monotonic() - started < 60 and painted is None:
            ready, _w, _x = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    break
                if b"User name" in seen:
                    painted = time.monotonic() - started
        assert painted is not None, seen[-2000:]
        # How fast is measured by bench/bench_startup.py; a test must not depend on the machine's load.
        time.sleep(0.5)  # let the desk open before quitting, so the worker is part of the test
        os.write(fd, b"\x11")  # ctrl+q
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert os.waitstatus_to_exitcode(status) == 0
                pid = 0
                break
            if select.select([fd], [], [], 0.05)[0]:
                with contextlib.suppress(OSError):  # keep the pty drained so the program can exit
                    os.read(fd, 65536)
        assert pid == 0, "orderdesk did not exit on ctrl+q"
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


async def test_login_screen_shows_then_opens_the_desk(desk: Store, clock: FixedClock) -> None:
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, LoginScreen)
        await settle(pilot)
        assert app.store is not None and app.workflow is not None
        assert str(login_message(app).render()) == ""


async def test_the_opened_desk_freezes_the_long_lived_heap(desk: Store, clock: FixedClock) -> None:
    """Once the desk is open, what was loaded is out of the collector's way: a full collection during a busy
    sync then scans only what the work made (``bench/bench_sync.py --drain``: no 100 ms pauses)."""
    gc.unfreeze()  # another app in this process may have frozen it already
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.store is not None
        assert gc.get_freeze_count() > 10_000


async def test_a_damaged_database_is_a_message_not_a_traceback(tmp_path: Path, clock: FixedClock) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database at all" * 10)
    app = build_app(db_path=bad, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, LoginScreen)
        message = login_message(app)
        assert "damaged" in str(message.render())
        assert message.has_class("-error")
        assert app.screen.query_one("#login-name", Input).disabled


async def test_a_broken_workflow_file_is_shown_with_its_line(
    desk: Store, clock: FixedClock, tmp_path: Path
) -> None:
    broken = tmp_path / "workflow.toml"
    broken.write_text('[workflow]\nid = "x"\ninitial = \n', encoding="utf-8")
    app = build_app(db_path=desk.path, workflow_path=broken, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        text = str(login_message(app).render())
        assert "workflow.toml:3" in text
        assert app.store is None


# -- login -----------------------------------------------------------------------------------------------
async def test_wrong_pin_shows_the_refusal_and_clears_the_pin(desk: Store, clock: FixedClock) -> None:
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await type_and_enter(pilot, "wang", "9999")
        assert isinstance(app.screen, LoginScreen)
        message = login_message(app)
        assert str(message.render()) == "Wrong name or PIN."
        assert message.has_class("-error")
        pin = app.screen.query_one("#login-pin", Input)
        assert pin.value == "" and pin.has_focus
        assert app.session is None


async def test_right_pin_lands_on_the_role_home(desk: Store, clock: FixedClock) -> None:
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await type_and_enter(pilot, "wang", "1234")
        assert isinstance(app.screen, OrderBrowserScreen)
        assert app.session is not None and app.session.user.name == "wang"
        status = str(app.screen.query_one("StatusLine", Static).render())
        assert status == "wang · Sales · English · desk.db"


async def test_user_option_prefills_the_name_and_focuses_the_pin(desk: Store, clock: FixedClock) -> None:
    app = make_app(desk, clock, user="zhou")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.screen.query_one("#login-name", Input).value == "zhou"
        assert app.screen.query_one("#login-pin", Input).has_focus
        await type_and_enter(pilot, "1234")
        assert app.session is not None and app.session.user.role == "qc"


async def test_badge_scan_logs_in(desk: Store, clock: FixedClock) -> None:
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        # A keyboard-wedge scanner types the badge and Enter into whatever field has focus.
        await type_and_enter(pilot, "%BADGE:B-LIU")
        assert isinstance(app.screen, OrderBrowserScreen)
        assert app.session is not None and app.session.user.name == "liu"


async def test_badge_scanned_into_the_pin_field_logs_in(desk: Store, clock: FixedClock) -> None:
    app = make_app(desk, clock, user="someone")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await type_and_enter(pilot, "%BADGE:B-CHEN")
        assert app.session is not None and app.session.user.name == "chen"


async def test_unknown_badge_is_refused(desk: Store, clock: FixedClock) -> None:
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await type_and_enter(pilot, "%BADGE:B-NOBODY")
        assert isinstance(app.screen, LoginScreen)
        assert "not registered" in str(login_message(app).render())
        assert app.screen.query_one("#login-name", Input).value == ""


async def test_login_typed_before_the_desk_opens_is_kept(desk: Store, clock: FixedClock) -> None:
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        # No settle: the keys may arrive while the store is still opening.
        await type_and_enter(pilot, "wang", "1234")
        assert isinstance(app.screen, OrderBrowserScreen)


async def test_log_out_returns_to_login(desk: Store, clock: FixedClock) -> None:
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        await app.action_log_out()
        await settle(pilot)
        assert isinstance(app.screen, LoginScreen)
        assert app.session is None
        assert len(app.screen_stack) == 2


# -- the order browser -----------------------------------------------------------------------------------
async def test_home_lists_the_newest_orders_first(desk: Store, clock: FixedClock) -> None:
    first, second = order(desk), order(desk, "C003")
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        table = app.screen.query_one("#orders", DataTable)
        assert row_keys(table) == [second, first]
        rows = cell_texts(table)
        assert rows[0][1].startswith("Shenzhen Bright")
        assert rows[0][2] == "Draft"
        assert rows[0][3] == "2026-12-01"
        assert rows[0][4] == "¥191.00"  # sales may see the amount


async def test_warehouse_does_not_see_amounts(desk: Store, clock: FixedClock) -> None:
    order(desk)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "liu")
        table = app.screen.query_one("#orders", DataTable)
        assert [str(c.label) for c in table.columns.values()] == ["Order", "Customer", "State", "Promised"]
        assert not any("¥" in cell for cell in cell_texts(table)[0])


@pytest.mark.parametrize(
    "query",
    ["SO-D1-0000002", "so-d1-0000002", "2", "宁波", "C002", "13900002222", "139000"],
)
async def test_search_finds_the_order(desk: Store, clock: FixedClock, query: str) -> None:
    order(desk)
    wanted = order(desk, "C002", ("HX-M8", 1))
    order(desk, "C003")
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        assert await search(pilot, query) == [wanted]


async def test_search_with_no_match_shows_an_empty_table(desk: Store, clock: FixedClock) -> None:
    order(desk)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        assert await search(pilot, "nobody-like-this") == []
        assert app.screen.query_one("#search", Input).border_subtitle == "0 found"
        assert await search(pilot, "") != []  # clearing the search lists the newest orders again


async def test_state_filter_cycles_through_states(desk: Store, clock: FixedClock) -> None:
    draft = order(desk)
    signed = order(desk)
    move_order(desk, order_no=signed, to="sign_contract", user="wang")
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        await pilot.press("f3")  # All -> Draft
        await settle(pilot)
        assert row_keys(app.screen.query_one("#orders", DataTable)) == [draft]
        assert str(app.screen.query_one("#state-filter", Static).render()) == "Draft"
        await pilot.press("f3")  # -> Contract signed
        await settle(pilot)
        assert row_keys(app.screen.query_one("#orders", DataTable)) == [signed]
        await pilot.press("shift+f3", "shift+f3")  # back to All
        await settle(pilot)
        assert set(row_keys(app.screen.query_one("#orders", DataTable))) == {draft, signed}


async def test_the_table_never_holds_more_than_a_page(desk: Store, clock: FixedClock) -> None:
    for _ in range(PAGE + 5):
        order(desk, "C003", ("HX-M8", 1))
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        assert app.screen.query_one("#orders", DataTable).row_count == PAGE
        assert app.screen.query_one("#search", Input).border_subtitle == f"{PAGE} of {PAGE + 5}"


async def test_scanning_an_order_number_opens_it(desk: Store, clock: FixedClock) -> None:
    order(desk)
    wanted = order(desk)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "liu")
        await type_and_enter(pilot, wanted.lower())
        assert isinstance(app.screen, OrderDetailScreen)
        assert app.screen.order_no == wanted


# -- the order detail ------------------------------------------------------------------------------------
async def test_enter_opens_the_detail_with_lines_and_timeline(desk: Store, clock: FixedClock) -> None:
    no = order(desk)
    move_order(desk, order_no=no, to="sign_contract", user="wang", reason="签字盖章")
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        screen = await open_order(pilot, no)
        lines = cell_texts(screen.query_one("#lines", DataTable))
        assert [row[:2] for row in lines] == [["HX-M8", "六角螺栓 M8x40"], ["FL-DN50", "不锈钢法兰 DN50"]]
        assert lines[1][-1] == "¥88.00"  # sales sees unit prices
        timeline = cell_texts(screen.query_one("#timeline", DataTable))
        assert [row[1:] for row in timeline] == [
            ["wang", "Draft → Contract signed · 签字盖章"],
            ["wang", "Created the order"],
        ]
        header = str(screen.query_one("#detail-header", Static).render())
        assert no in header and "Contract signed" in header and "v2" in header
        assert "13800001111" in header and "星湖街" in header
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, OrderBrowserScreen)


async def test_warehouse_detail_hides_prices(desk: Store, clock: FixedClock) -> None:
    no = order(desk)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "liu")
        screen = await open_order(pilot, no)
        labels = [str(c.label) for c in screen.query_one("#lines", DataTable).columns.values()]
        assert labels == ["SKU", "Name", "Qty", "Scanned", "Shipped"]
        header = str(screen.query_one("#detail-header", Static).render())
        assert "¥" not in header


async def test_move_dialog_offers_only_the_users_moves(desk: Store, clock: FixedClock) -> None:
    no = order(desk)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        await open_order(pilot, no)
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, MoveDialog)
        options = app.screen.query_one("#move-options", OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert ids == ["sign_contract", "cancel"]  # not ship, not hold (planner/finance/supervisor)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, OrderDetailScreen)


async def test_a_move_runs_and_refreshes_the_detail(desk: Store, clock: FixedClock) -> None:
    no = order(desk)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        screen = await open_order(pilot, no)
        await pilot.press("m", "enter", *"ok", "enter")
        await settle(pilot)
        assert app.screen is screen
        assert screen.detail is not None and screen.detail.state == "contract_signed"
        assert "Contract signed" in str(screen.query_one("#detail-header", Static).render())
        fresh = show_order(desk, no)
        assert (fresh.state, fresh.version) == ("contract_signed", 2)
        assert fresh.timeline[-1].detail["reason"] == "ok"


async def test_a_guard_refusal_is_shown_and_the_order_is_unchanged(desk: Store, clock: FixedClock) -> None:
    no = order(desk, "C002", ("HX-M8", 1000))  # ¥1,500 against a ¥1,000 credit limit
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        await open_order(pilot, no)
        await pilot.press("m", "enter", *"try", "enter")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, MoveDialog)  # stays open
        error = dialog.query_one("#move-error", Static)
        text = str(error.render())
        assert text.startswith("Over the credit limit")
        assert "Who must act: Finance" in text
        fresh = show_order(desk, no)
        assert (fresh.state, fresh.version) == ("draft", 1)
        assert [e.command for e in fresh.timeline] == ["create_order"]


async def test_a_stale_version_is_refused(desk: Store, clock: FixedClock) -> None:
    no = order(desk)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        screen = await open_order(pilot, no)
        assert screen.detail is not None and screen.detail.version == 1
        # Someone else moves the order while wang is looking at version 1.
        move_order(desk, order_no=no, to="sign_contract", user="admin")
        await pilot.press("m", "down", "enter", *"customer changed mind", "enter")
        await settle(pilot)
        assert isinstance(app.screen, MoveDialog)
        text = str(app.screen.query_one("#move-error", Static).render())
        assert "was changed by admin while you were looking at it (version 1 → 2)" in text
        fresh = show_order(desk, no)
        assert (fresh.state, fresh.version) == ("contract_signed", 2)
        await pilot.press("escape")  # closing the dialog shows the order as it is now
        await settle(pilot)
        assert screen.detail is not None and screen.detail.version == 2


async def test_no_moves_for_this_user_is_a_notice(desk: Store, clock: FixedClock) -> None:
    no = order(desk)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "liu")  # the warehouse has nothing to do with a draft
        await open_order(pilot, no)
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, OrderDetailScreen)
        assert any("no moves" in n.message for n in app._notifications)


async def test_adding_a_note(desk: Store, clock: FixedClock) -> None:
    no = order(desk)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "zhou")
        screen = await open_order(pilot, no)
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, NoteDialog)
        await pilot.press("enter")  # an empty note is refused by the core
        await settle(pilot)
        assert "must not be empty" in str(app.screen.query_one("#note-error", Static).render())
        await type_and_enter(pilot, "box 3 dented")
        assert app.screen is screen
        first = cell_texts(screen.query_one("#timeline", DataTable))[0]
        assert first[1:] == ["zhou", "Note: box 3 dented"]


# -- the shell -------------------------------------------------------------------------------------------
async def test_chinese_mode_shows_chinese_labels(desk: Store, clock: FixedClock) -> None:
    no = order(desk)
    app = make_app(desk, clock, lang="zh")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.screen.query_one("#login-name", Input).border_title == "用户名"
        await log_in(pilot, "wang")
        table = app.screen.query_one("#orders", DataTable)
        assert [str(c.label) for c in table.columns.values()] == ["订单", "客户", "状态", "承诺交期", "金额"]
        assert cell_texts(table)[0][2] == "草稿"
        status = str(app.screen.query_one("StatusLine", Static).render())
        assert status == "wang · 销售 · 中文 · desk.db"
        screen = await open_order(pilot, no)
        assert screen.query_one("#timeline", DataTable).border_title == "时间线"
        assert cell_texts(screen.query_one("#timeline", DataTable))[0][2] == "创建了订单"
        footer_keys = {b.description for _k, b in screen._bindings}
        assert {"流转", "备注", "返回"} <= footer_keys


async def test_f2_switches_language_and_keeps_the_open_order(desk: Store, clock: FixedClock) -> None:
    no = order(desk)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        await open_order(pilot, no)
        await pilot.press("f2")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, OrderDetailScreen) and screen.order_no == no
        assert "草稿" in str(screen.query_one("#detail-header", Static).render())
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, OrderBrowserScreen)
        assert app.screen.query_one("#search", Input).border_title == "查找订单"
        await pilot.press("f2")
        await settle(pilot)
        assert app.screen.query_one("#search", Input).border_title == "Find order"


async def test_command_palette_logs_out(desk: Store, clock: FixedClock) -> None:
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        await pilot.press("ctrl+p")
        await settle(pilot)
        await pilot.press(*"log out")
        hits = app.screen.query_one(CommandList)
        for _ in range(200):  # the palette searches its providers in background tasks
            if hits.option_count and "Log out" in str(hits.get_option_at_index(0).prompt):
                break
            await pilot.pause()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, LoginScreen)
        assert app.session is None


async def test_a_failing_worker_is_reported_not_fatal(
    desk: Store, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orderdesk.orders

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "wang")
        monkeypatch.setattr(orderdesk.orders, "search_orders", broken)
        await search(pilot, "宁波")
        assert isinstance(app.screen, OrderBrowserScreen)
        assert any("disk on fire" in n.message for n in app._notifications)


async def test_a_role_home_is_one_registration(
    desk: Store, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    class ScanDesk(Screen[None]):
        def __init__(self, session: DeskSession) -> None:
            super().__init__()
            self.session = session

    monkeypatch.setitem(HOME_SCREENS, "warehouse", ScanDesk)
    app = make_app(desk, clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "liu")
        assert isinstance(app.screen, ScanDesk)
        assert app.screen.session.user.home == "warehouse"


# -- translations ----------------------------------------------------------------------------------------
MSGID = re.compile(r'\b_\(\s*"((?:[^"\\]|\\.)*)"')
BINDING = re.compile(r'Binding\(\s*"[^"]*",\s*"[^"]*",\s*"((?:[^"\\]|\\.)*)"')


def test_every_screen_string_has_a_chinese_translation() -> None:
    zh = catalog("zh")
    missing = set()
    for path in (REPO / "screens").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        for msgid in MSGID.findall(source) + BINDING.findall(source):
            if msgid not in zh and not re.search(r"[\u4e00-\u9fff]", msgid):
                missing.add(msgid)
    assert not missing


def test_screen_catalog_agrees_with_the_other_catalogs() -> None:
    folder = REPO / "orderdesk" / "locales" / "zh"
    ours = tomllib.loads((folder / "screens.toml").read_text(encoding="utf-8"))
    for other in folder.glob("*.toml"):
        if other.name == "screens.toml":
            continue
        theirs = tomllib.loads(other.read_text(encoding="utf-8"))
        clashes = {k: (v, theirs[k]) for k, v in ours.items() if k in theirs and theirs[k] != v}
        assert not clashes, f"{other.name} translates these differently: {clashes}"
