"""The alert engine with a moved clock: raised once, escalated on time, closed when resolved; promised-date
risk, rush orders, acknowledgement requests, snoozes, permissions, and two engines racing on one file."""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from orderdesk.alerts import (
    acknowledge_alert,
    alert_trail,
    answer_ack_request,
    assign_alert_owner,
    escalate_alert,
    list_alerts,
    run_alert_pass,
    set_promised_date,
    snooze_alert,
)
from orderdesk.clock import FixedClock
from orderdesk.errors import Refused
from orderdesk.notify import NotifyConfig, inbox, inbox_summary, mark_read
from orderdesk.orders import create_order, edit_order, move_order
from orderdesk.store import Store

CONFIG = NotifyConfig()  # inbox only: no e-mail, no webhooks


def alert_passes(store: Store) -> int:
    """How many alert passes wrote (each is one audit record)."""
    with store.read() as session:
        sql = text("SELECT count(*) FROM audit_record WHERE command = 'alert_pass'")
        return int(session.execute(sql).scalar_one())


def order(store: Store, *, promised: date | None = date(2026, 12, 31), rush: bool = False, **kw: Any) -> str:
    return create_order(
        store,
        customer=kw.pop("customer", "C001"),
        lines=[("HX-M8", 10)],
        user="wang",
        promised=promised,
        rush=rush,
        **kw,
    ).order_no


def pass_(store: Store, **kw: Any) -> Any:
    return run_alert_pass(store, CONFIG, **kw)


def live(store: Store, order_no: str | None = None) -> list[Any]:
    return list_alerts(store, order_no=order_no, config=CONFIG)


def events(store: Store, alert_id: int) -> list[str]:
    return [e.event for e in alert_trail(store, alert_id)]


def inbox_texts(store: Store, user: str) -> list[str]:
    return [i.text for i in inbox(store, user)]


# -- overdue: raised once, escalated on time, closed when resolved ---------------------------------------
def test_overdue_is_raised_once_escalates_on_time_and_closes_when_the_order_moves(
    desk: Store, clock: FixedClock
) -> None:
    no = order(desk)
    assert pass_(desk).raised == 0  # the first pass: nothing is late yet
    clock.advance(hours=47, minutes=59)
    assert pass_(desk).raised == 0
    clock.advance(minutes=1)  # draft's timeout is 48 h
    report = pass_(desk)
    assert report.raised == 1
    [alert] = live(desk, no)
    assert (alert.kind, alert.level, alert.target_role, alert.severity) == ("overdue", 0, "sales", "amber")
    assert alert.escalate_at == clock.now + timedelta(minutes=15)  # [workflow].ack_minutes
    assert any(no in t and "overdue" in t for t in inbox_texts(desk, "wang"))

    # Passes that find nothing new change nothing (no duplicate, no second message).
    clock.advance(minutes=14)
    assert pass_(desk).raised == 0
    assert len(live(desk, no)) == 1 and live(desk, no)[0].level == 0
    assert len(inbox(desk, "wang")) == 1

    clock.advance(minutes=1)  # 15 minutes unacknowledged: one level up, to the supervisor
    assert pass_(desk).escalated == 1
    [alert] = live(desk, no)
    assert (alert.level, alert.target_role) == (1, "supervisor")
    assert any("Escalated to you (level 1)" in t for t in inbox_texts(desk, "sun"))

    clock.advance(minutes=15)
    pass_(desk)
    assert (live(desk, no)[0].level, live(desk, no)[0].target_role) == (2, "admin")
    clock.advance(minutes=15)  # the top of the chain is reminded, not skipped
    pass_(desk)
    assert live(desk, no)[0].level == 2
    assert any("Still unacknowledged" in t for t in inbox_texts(desk, "admin"))

    move_order(desk, order_no=no, to="contract_signed", user="wang")
    assert pass_(desk).closed == 1
    assert live(desk, no) == []
    assert events(desk, alert.id) == ["raised", "escalated", "escalated", "reminder", "closed"]


def test_a_late_engine_catches_up_every_level_it_missed(desk: Store, clock: FixedClock) -> None:
    no = order(desk)
    pass_(desk)
    clock.advance(hours=48)
    pass_(desk)
    clock.advance(minutes=31)  # two deadlines passed while nobody looked
    assert pass_(desk).escalated == 2
    assert live(desk, no)[0].level == 2


@pytest.mark.parametrize(("batch", "transactions"), [(2, 3), (5, 1)])
def test_a_long_catch_up_escalates_in_several_short_transactions(
    desk: Store, clock: FixedClock, monkeypatch: pytest.MonkeyPatch, batch: int, transactions: int
) -> None:
    """A desk that was off for a weekend has many alerts due at once: they climb a few per transaction (so
    the write lock is never held long), each exactly as far as it would in one, and the engine's bookmark
    moves on (the next pass has nothing to do), also when the last batch came out exactly full."""
    from orderdesk import alerts

    numbers = [order(desk) for _ in range(5)]
    pass_(desk)
    clock.advance(hours=48)
    assert pass_(desk).raised == 5

    before = alert_passes(desk)
    monkeypatch.setattr(alerts, "ESCALATE_BATCH", batch)
    clock.advance(minutes=31)  # two deadlines passed for all five
    assert pass_(desk).escalated == 10
    assert alert_passes(desk) - before == transactions
    for no in numbers:
        [alert] = live(desk, no)
        assert alert.level == 2 and events(desk, alert.id) == ["raised", "escalated", "escalated"]
    clock.advance(minutes=1)
    again = pass_(desk)
    assert (again.raised, again.escalated, again.wrote) == (0, 0, False)
    assert alert_passes(desk) - before == transactions


def test_a_move_followed_by_a_split_pass_is_asked_about_once(
    desk: Store, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's bookmark moves on in the transaction that followed the audit trail, not after the
    escalations that did not fit in it: a pass a minute later does not ask about the same move again."""
    from orderdesk import alerts

    pass_(desk)
    for _ in range(3):
        order(desk)
    pass_(desk)
    clock.advance(hours=48)
    assert pass_(desk).raised == 3
    clock.advance(minutes=14)
    no = _to_tech_review(desk)
    assert pass_(desk).wrote  # the bookmark is now less than QUIET_BOOKMARK old
    move_order(desk, order_no=no, to="reject_tech", user="zhao", reason="drawing rev B missing")
    monkeypatch.setattr(alerts, "ESCALATE_BATCH", 3)
    clock.advance(seconds=90)  # the three deadlines passed
    report = pass_(desk)
    assert (report.escalated, report.ack_requests) == (3, 1)
    clock.advance(seconds=30)
    assert pass_(desk).ack_requests == 0
    assert [a.kind for a in live(desk, no)] == ["ack"]


def test_acknowledging_stops_escalation_until_it_gets_worse(desk: Store, clock: FixedClock) -> None:
    no = order(desk)
    pass_(desk)
    clock.advance(hours=48)
    pass_(desk)
    [alert] = live(desk, no)
    acknowledge_alert(desk, alert_id=alert.id, user="wang", note="calling the customer", config=CONFIG)
    clock.advance(hours=2)
    assert pass_(desk).escalated == 0
    assert live(desk, no)[0].status == "acked"
    clock.advance(hours=46)  # twice the timeout: red, the chain starts again at the owner
    assert pass_(desk).reopened == 1
    [alert] = live(desk, no)
    assert (alert.status, alert.severity, alert.level) == ("open", "red", 0)


def test_snooze_needs_a_reason_and_the_alert_comes_back(desk: Store, clock: FixedClock) -> None:
    no = order(desk)
    pass_(desk)
    clock.advance(hours=48)
    pass_(desk)
    [alert] = live(desk, no)
    with pytest.raises(Refused):
        snooze_alert(desk, alert_id=alert.id, user="zhao", until=clock.now + timedelta(hours=2), reason=" ")
    with pytest.raises(Refused):
        snooze_alert(desk, alert_id=alert.id, user="zhao", until=clock.now - timedelta(hours=1), reason="x")
    snooze_alert(
        desk, alert_id=alert.id, user="zhao", until=clock.now + timedelta(hours=2), reason="waiting for paint"
    )
    clock.advance(hours=1, minutes=59)
    assert pass_(desk).escalated == 0
    clock.advance(minutes=1)
    pass_(desk)
    [alert] = live(desk, no)
    assert (alert.status, alert.level) == ("open", 0)
    clock.advance(minutes=15)
    assert pass_(desk).escalated == 1
    assert events(desk, alert.id)[:4] == ["raised", "snoozed", "snooze_ended", "escalated"]


def test_manual_escalation_and_the_top_of_the_chain(desk: Store, clock: FixedClock) -> None:
    no = order(desk)
    pass_(desk)
    clock.advance(hours=48)
    pass_(desk)
    [alert] = live(desk, no)
    escalate_alert(desk, alert_id=alert.id, user="zhao", reason="customer is shouting", config=CONFIG)
    escalate_alert(desk, alert_id=alert.id, user="zhao", config=CONFIG)
    with pytest.raises(Refused) as refused:
        escalate_alert(desk, alert_id=alert.id, user="zhao", config=CONFIG)
    assert refused.value.code == "top_of_chain"
    assert live(desk, no)[0].target_role == "admin"


def test_only_the_chain_and_coordinators_may_act(desk: Store, clock: FixedClock) -> None:
    no = order(desk)
    pass_(desk)
    clock.advance(hours=48)
    pass_(desk)
    [alert] = live(desk, no)
    with pytest.raises(Refused) as refused:
        acknowledge_alert(desk, alert_id=alert.id, user="liu", config=CONFIG)  # warehouse: not its business
    assert refused.value.code == "forbidden"
    with pytest.raises(Refused) as stale:
        acknowledge_alert(
            desk, alert_id=alert.id, user="wang", expected_version=alert.version + 1, config=CONFIG
        )
    assert stale.value.code == "stale_alert"
    acknowledge_alert(desk, alert_id=alert.id, user="wang", config=CONFIG)


def test_actions_on_alerts_are_audited_and_go_to_the_outbox(desk: Store, clock: FixedClock) -> None:
    no = order(desk)
    pass_(desk)
    clock.advance(hours=48)
    pass_(desk)
    [alert] = live(desk, no)
    acknowledge_alert(desk, alert_id=alert.id, user="wang", note="on it", config=CONFIG)
    with desk.read() as session:
        audit = session.execute(
            text("SELECT user_name, command, detail FROM audit_record WHERE order_no = :n ORDER BY id"),
            {"n": no},
        ).all()
        outbox = (
            session.execute(text("SELECT command FROM outbox WHERE order_no = :n"), {"n": no}).scalars().all()
        )
    assert ("wang", "acknowledge_alert") in [(u, c) for u, c, _d in audit]
    assert json.loads(audit[-1][2])["note"] == "on it"
    assert "acknowledge_alert" in outbox
    assert "alert_pass" not in outbox  # the engine's own passes are derived on whichever node runs it
    assert (
        alert_passes(desk) == 1
    )  # one per pass that changed an alert (the first one only set the engine's bookmark)


# -- promised dates and rush orders ----------------------------------------------------------------------
def test_promised_date_turns_amber_then_red_and_a_new_date_clears_it(desk: Store, clock: FixedClock) -> None:
    # The business day is China's: 2026-11-20 02:00 UTC is 10:00 on the 20th in Shanghai.
    no = order(desk, promised=date(2026, 11, 25))
    move_order(desk, order_no=no, to="contract_signed", user="wang")  # keep it clear of draft's timeout
    pass_(desk)
    assert live(desk, no) == []
    clock.advance(days=1, hours=14)  # 2026-11-22 00:00 Shanghai: 3 days left
    pass_(desk)
    [alert] = [a for a in live(desk, no) if a.kind == "promised"]
    assert alert.severity == "amber"
    assert "3 d left" in str(alert.message)
    clock.advance(days=4)  # the 26th: the promise is broken
    assert pass_(desk).reopened >= 1  # (its overdue alert turns red too: 4 days in contract_signed)
    [alert] = [a for a in live(desk, no) if a.kind == "promised"]
    assert alert.severity == "red"
    with pytest.raises(Refused):
        set_promised_date(
            desk, order_no=no, promised=date(2026, 12, 20), reason="", user="zhao", config=CONFIG
        )
    set_promised_date(
        desk,
        order_no=no,
        promised=date(2026, 12, 20),
        reason="customer agreed by phone",
        user="zhao",
        config=CONFIG,
    )
    assert [a for a in live(desk, no) if a.kind == "promised"] == []


def test_a_stalled_rush_order_is_flagged_before_it_is_overdue(desk: Store, clock: FixedClock) -> None:
    rush = order(desk, rush=True)
    calm = order(desk)
    pass_(desk)
    clock.advance(hours=24)  # half of draft's 48 h
    pass_(desk)
    assert [a.kind for a in live(desk, rush)] == ["rush"]
    assert live(desk, calm) == []
    clock.advance(hours=24)  # now overdue: the overdue alert replaces the rush one
    pass_(desk)
    assert [a.kind for a in live(desk, rush)] == ["overdue"]


def test_assigning_an_owner_readdresses_the_alert(desk: Store, clock: FixedClock) -> None:
    no = order(desk)
    pass_(desk)
    clock.advance(hours=48)
    pass_(desk)
    assign_alert_owner(desk, order_no=no, owner="wang", user="sun", config=CONFIG)
    [alert] = live(desk, no)
    assert alert.target_user == "wang"


# -- broadcast with acknowledgement ----------------------------------------------------------------------
def _to_tech_review(store: Store) -> str:
    no = order(store)
    move_order(store, order_no=no, to="contract_signed", user="wang")
    move_order(store, order_no=no, to="tech_review", user="zhao")
    return no


def test_a_move_that_requires_acknowledgement_asks_and_need_info_goes_back_to_the_mover(
    desk: Store, clock: FixedClock
) -> None:
    pass_(desk)  # the engine starts watching the audit trail here
    no = _to_tech_review(desk)
    move_order(desk, order_no=no, to="reject_tech", user="zhao", reason="drawing rev B missing")
    report = pass_(desk)
    assert report.ack_requests == 1
    [ask] = [a for a in live(desk, no) if a.kind == "ack"]
    assert (ask.topic, ask.target_role, ask.mover) == ("sales", "sales", "zhao")
    assert any("Please acknowledge" in t for t in inbox_texts(desk, "wang"))
    assert pass_(desk).ack_requests == 0  # asked once
    with pytest.raises(Refused):
        answer_ack_request(desk, alert_id=ask.id, user="wang", answer="need_info", reason="", config=CONFIG)
    answer_ack_request(
        desk,
        alert_id=ask.id,
        user="wang",
        answer="need_info",
        reason="which drawing revision?",
        config=CONFIG,
    )
    [info] = live(desk, no)
    assert (info.kind, info.target_user) == ("info", "zhao")
    assert any("which drawing revision?" in t for t in inbox_texts(desk, "zhao"))
    acknowledge_alert(desk, alert_id=info.id, user="zhao", config=CONFIG)
    assert live(desk, no) == []


def test_an_unanswered_request_escalates_and_an_answer_reaches_the_mover(
    desk: Store, clock: FixedClock
) -> None:
    pass_(desk)
    no = order(desk)
    move_order(desk, order_no=no, to="contract_signed", user="wang")
    move_order(desk, order_no=no, to="hold", user="zhao", reason="customer credit check")
    pass_(desk)
    asks = {a.topic: a for a in live(desk, no) if a.kind == "ack"}
    assert set(asks) == {"sales", "supervisor"}  # hold notifies sales and the supervisor, both must answer
    clock.advance(minutes=15)
    pass_(desk)
    assert {a.topic: a.target_role for a in live(desk, no) if a.kind == "ack"} == {
        "sales": "admin",  # on hold escalates to admin
        "supervisor": "admin",
    }
    acknowledge_alert(desk, alert_id=asks["sales"].id, user="wang", config=CONFIG)
    assert any("wang (sales) acknowledged" in t for t in inbox_texts(desk, "zhao"))


def test_a_plain_move_notifies_the_roles_without_asking(desk: Store, clock: FixedClock) -> None:
    pass_(desk)
    no = order(desk)
    move_order(desk, order_no=no, to="contract_signed", user="wang")  # notifies planner and finance
    pass_(desk)
    assert any(no in t and "moved" in t for t in inbox_texts(desk, "zhao"))
    assert any(no in t for t in inbox_texts(desk, "chen"))
    assert inbox(desk, "wang") == []  # the mover is not told about their own move
    assert [a for a in live(desk, no) if a.kind == "ack"] == []


# -- the inbox -------------------------------------------------------------------------------------------
def test_inbox_counts_unread_and_marks_read(desk: Store, clock: FixedClock) -> None:
    order(desk)
    order(desk)
    pass_(desk)
    clock.advance(hours=48)
    pass_(desk)
    summary = inbox_summary(desk, "wang")
    assert summary.unread == 2 and summary.newest_id > 0
    mark_read(desk, "wang")
    assert inbox_summary(desk, "wang").unread == 0
    assert all(i.read for i in inbox(desk, "wang"))


def test_a_flood_becomes_one_digest_per_recipient(desk: Store, clock: FixedClock) -> None:
    for _ in range(8):
        order(desk)
    pass_(desk)
    clock.advance(hours=48)
    assert pass_(desk).raised == 8
    [digest] = inbox_texts(desk, "wang")
    assert "8 orders need attention" in digest


def test_messages_are_rendered_in_the_readers_language(desk: Store, clock: FixedClock) -> None:
    order(desk)
    pass_(desk)
    clock.advance(hours=48)
    pass_(desk)
    [item] = inbox(desk, "wang", lang="zh")
    assert "超时" in item.text and "草稿" in item.text


# -- racing engines --------------------------------------------------------------------------------------
def test_two_engines_racing_on_one_file_raise_and_notify_once(desk: Store, clock: FixedClock) -> None:
    numbers = [order(desk) for _ in range(3)]
    pass_(desk)
    clock.advance(hours=48)
    other = Store.open(desk.path, clock=clock)  # a second process: its own engine and connections
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(store: Store) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                run_alert_pass(store, CONFIG)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in (desk, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with desk.read() as session:
        per_order = session.execute(
            text("SELECT order_no, count(*) FROM alert WHERE kind = 'overdue' GROUP BY order_no")
        ).all()
        raised = session.execute(text("SELECT count(*) FROM alert_event WHERE event = 'raised'")).scalar()
    assert sorted(per_order) == sorted((n, 1) for n in numbers)
    assert raised == 3
    assert len(inbox(desk, "wang")) == 3
    other.close()


def test_a_quiet_pass_writes_nothing(desk: Store, clock: FixedClock) -> None:
    order(desk)
    pass_(desk)  # the first pass records where the engine starts
    clock.advance(minutes=4)
    report = pass_(desk)
    assert not report.wrote and report.examined == 1  # created just before the last pass: looked at again
    clock.advance(minutes=6)
    pass_(desk)
    clock.advance(minutes=6)  # now past the 5-minute overlap the engine keeps for late-stamped changes
    report = pass_(desk)
    assert not report.wrote and report.examined == 0
    assert alert_passes(desk) == 0


def test_an_edited_order_is_re_examined_without_a_full_pass(desk: Store, clock: FixedClock) -> None:
    no = order(desk, promised=date(2026, 12, 31))
    move_order(desk, order_no=no, to="contract_signed", user="wang")
    pass_(desk)
    clock.advance(minutes=1)
    edit_order(desk, order_no=no, changes={"promised_date": "2026-11-21"}, user="zhao", reason="short")
    report = pass_(desk)
    assert not report.full and report.examined == 1 and report.raised == 1
