"""The board's queries: counts per state kept by triggers, red/amber/green by due date, oldest and overdue
per state, the bottleneck, alerts by level with their deadlines, shipped today and the week's on-time rate;
the tallies survive a rebuilt table; ``orderdesk board`` prints it once."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from orderdesk.alerts import run_alert_pass
from orderdesk.board import age_text, countdown_text, ensure_tallies, load_board, tallies_suspended
from orderdesk.cli import main
from orderdesk.clock import FixedClock
from orderdesk.notify import NotifyConfig
from orderdesk.orders import create_order, edit_order, move_order
from orderdesk.store import Store

CONFIG = NotifyConfig()


def order(store: Store, promised: date | None = date(2026, 12, 31), **kw: Any) -> str:
    return create_order(
        store, customer="C001", lines=[("HX-M8", 1)], user="wang", promised=promised, **kw
    ).order_no


def counts(store: Store) -> dict[str, int]:
    return {s.state: s.count for s in load_board(store, CONFIG).states if s.count}


def tally_matches_the_orders(store: Store) -> bool:
    with store.read() as session:
        tally = session.execute(
            text("SELECT state, promised, n FROM board_tally WHERE n <> 0 ORDER BY 1, 2")
        ).all()
        truth = session.execute(
            text(
                "SELECT state, coalesce(promised_date, ''), count(*) FROM sales_order GROUP BY 1, 2 ORDER BY 1, 2"
            )
        ).all()
    return [tuple(r) for r in tally] == [tuple(r) for r in truth]


def test_counts_follow_creates_moves_and_date_changes(desk: Store, clock: FixedClock) -> None:
    a, b = order(desk), order(desk)
    order(desk, promised=None)
    assert counts(desk) == {"draft": 3}
    move_order(desk, order_no=a, to="contract_signed", user="wang")
    edit_order(desk, order_no=b, changes={"promised_date": "2026-11-21"}, user="zhao")
    assert counts(desk) == {"draft": 2, "contract_signed": 1}
    assert tally_matches_the_orders(desk)


def test_red_amber_green_by_promised_date(desk: Store, clock: FixedClock) -> None:
    order(desk, promised=date(2026, 11, 20))  # today (Shanghai): amber
    order(desk, promised=date(2026, 11, 23))  # 3 days: amber
    order(desk, promised=date(2026, 11, 24))  # 4 days: green
    order(desk, promised=None)
    board = load_board(desk, CONFIG)
    assert (board.red, board.amber, board.green, board.undated) == (0, 2, 1, 1)
    clock.advance(days=1)
    board = load_board(desk, CONFIG)
    assert (board.red, board.amber, board.green, board.undated) == (1, 2, 0, 1)


def test_oldest_overdue_and_bottleneck(desk: Store, clock: FixedClock) -> None:
    first = order(desk)
    clock.advance(hours=1)
    order(desk)
    clock.advance(hours=1)
    signed = order(desk)
    move_order(desk, order_no=signed, to="contract_signed", user="wang")
    board = load_board(desk, CONFIG)
    draft = next(s for s in board.states if s.state == "draft")
    assert draft.oldest_order_no == first and draft.oldest_since == clock.now - timedelta(hours=2)
    assert board.bottleneck == ""
    clock.advance(hours=24)  # the contract has sat its 24 h; the drafts are within their 48 h
    board = load_board(desk, CONFIG)
    assert board.bottleneck == "contract_signed"
    clock.advance(hours=22, minutes=30)  # the first draft is 48.5 h old, the second 47.5 h
    by_state = {s.state: s.overdue for s in load_board(desk, CONFIG).states}
    assert (by_state["draft"], by_state["contract_signed"]) == (1, 1)
    clock.advance(hours=1)
    assert load_board(desk, CONFIG).bottleneck == "draft"  # two late drafts against one contract


def test_alerts_by_level_with_countdown(desk: Store, clock: FixedClock) -> None:
    order(desk)
    order(desk)
    run_alert_pass(desk, CONFIG)
    clock.advance(hours=48)
    run_alert_pass(desk, CONFIG)
    board = load_board(desk, CONFIG)
    assert [(lv.level, lv.open) for lv in board.levels] == [(0, 2)]
    assert board.levels[0].next_escalate_at == clock.now + timedelta(minutes=15)
    assert len(board.next_escalations) == 2
    clock.advance(minutes=15)
    run_alert_pass(desk, CONFIG)
    assert [(lv.level, lv.open) for lv in load_board(desk, CONFIG).levels] == [(1, 2)]


def test_shipped_today_and_on_time_this_week(desk: Store, clock: FixedClock) -> None:
    on_time = order(desk, promised=date(2026, 11, 30), route="from_stock")
    late = order(desk, promised=date(2026, 11, 20), route="from_stock")
    with desk.write() as session:
        # Walk both orders to delivered directly (scanning and waybills are another desk's business).
        session.execute(
            text("UPDATE sales_order SET state = 'shipped', state_since = :t WHERE order_no IN (:a, :b)"),
            {"t": clock.now.strftime("%Y-%m-%d %H:%M:%S.%f"), "a": on_time, "b": late},
        )
    board = load_board(desk, CONFIG)
    assert board.shipped_today == 2 and board.delivered_week == 0 and board.on_time_rate is None
    clock.advance(days=2)  # Sunday the 22nd in Shanghai: the same week
    for no in (on_time, late):
        move_order(desk, order_no=no, to="in_transit", user="liu")
        move_order(desk, order_no=no, to="delivered", user="wang")
    board = load_board(desk, CONFIG)
    assert board.shipped_today == 0
    assert (board.delivered_week, board.on_time_week, board.on_time_rate) == (2, 1, 0.5)
    clock.advance(days=1)  # Monday: a new week
    assert load_board(desk, CONFIG).delivered_week == 0


def test_tallies_are_rebuilt_if_a_migration_dropped_the_triggers(desk: Store, clock: FixedClock) -> None:
    order(desk)
    with desk.write() as session:
        session.execute(text("DROP TRIGGER board_tally_insert"))
    order(desk)  # not counted: the trigger is gone
    assert not tally_matches_the_orders(desk)
    assert ensure_tallies(desk) is True
    assert tally_matches_the_orders(desk)
    order(desk)
    assert tally_matches_the_orders(desk) and counts(desk) == {"draft": 3}
    assert ensure_tallies(desk) is False


def test_a_bulk_load_suspends_the_triggers_and_rebuilds_the_tallies(desk: Store, clock: FixedClock) -> None:
    order(desk)
    with tallies_suspended(desk):
        order(desk)
        order(desk, promised=None)
        with desk.read() as session:
            assert session.execute(text("SELECT sum(n) FROM board_tally")).scalar() == 1
    assert tally_matches_the_orders(desk) and counts(desk) == {"draft": 3}
    order(desk)  # the triggers are back
    assert tally_matches_the_orders(desk)


def test_board_json_and_rich_output(
    desk: Store, clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    order(desk)
    assert main(["--db", str(desk.path), "board", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["states"][0]["state"] == "draft" and data["states"][0]["count"] == 1
    assert data["due"] == {"red": 0, "amber": 0, "green": 1, "undated": 0}
    assert main(["--db", str(desk.path), "--lang", "zh", "board"]) == 0
    out = capsys.readouterr().out
    assert "各状态订单" in out and "草稿" in out


def test_alerts_check_and_list_from_the_cli(
    desk: Store, clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    no = order(desk)
    with desk.write() as session:  # make it 3 days old without moving the CLI's (real) clock
        session.execute(
            text("UPDATE sales_order SET state_since = '2020-01-01 00:00:00.000000' WHERE order_no = :n"),
            {"n": no},
        )
    assert main(["--db", str(desk.path), "alerts", "check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pass"]["raised"] >= 1
    assert main(["--db", str(desk.path), "alerts", "list", "--json"]) == 0
    [alert] = [a for a in json.loads(capsys.readouterr().out) if a["kind"] == "overdue"]
    assert alert["order_no"] == no and alert["target_role"] == "sales"
    assert main(["--db", str(desk.path), "alerts", "ack", str(alert["id"]), "--user", "liu"]) == 1
    assert "may not" in capsys.readouterr().err
    assert (
        main(
            [
                "--db",
                str(desk.path),
                "alerts",
                "snooze",
                str(alert["id"]),
                "--until",
                "+2h",
                "--reason",
                "waiting",
                "--user",
                "wang",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "--db",
                str(desk.path),
                "alerts",
                "snooze",
                str(alert["id"]),
                "--until",
                "soon",
                "--reason",
                "x",
                "--user",
                "wang",
            ]
        )
        == 2
    )


def test_countdown_and_age_texts() -> None:
    assert countdown_text(14 * 60 + 5) == "14:05"
    assert countdown_text(-40) == "-0:40"
    assert countdown_text(2 * 3600 + 5 * 60) == "2h05"
    assert countdown_text(3 * 86400 + 4 * 3600) == "3d04"
    assert (age_text(45 * 60), age_text(7 * 3600), age_text(3 * 86400)) == ("45m", "7h", "3d")
