# ruff: noqa: F811 - pytest fixtures are imported from tests/sync_fixtures.py
"""Actions on alerts through sync: acknowledge, answer, snooze and escalate on one desk reach the central API
by the alert's key (ids are local), are applied there to its own alert when it runs the engine and recorded
when it does not — never rejected, never stuck in the outbox — show in the order's timeline on every desk,
and the other desk's engine applies them to its own alert. Where two desks act on one alert, the first to
reach the central API wins."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from orderdesk import replication as rep
from orderdesk.alerts import (
    AlertView,
    acknowledge_alert,
    alert_trail,
    answer_ack_request,
    escalate_alert,
    list_alerts,
    run_alert_pass,
    snooze_alert,
)
from orderdesk.audit import AuditEntry
from orderdesk.commands import command
from orderdesk.models import Desk
from orderdesk.notify import NotifyConfig, inbox
from orderdesk.orders import move_order, show_order
from orderdesk.store import Store
from tests.sync_fixtures import any_world, pg_cluster, pg_template, sqlite_template, world  # noqa: F401
from tests.sync_harness import READY_ORDER, World, table_count

CONFIG = NotifyConfig()  # inbox only: no e-mail, no webhooks


# -- helpers ---------------------------------------------------------------------------------------------
def pass_(store: Store) -> Any:
    return run_alert_pass(store, CONFIG)


def late(w: World, *, engines: tuple[str, ...]) -> None:
    """Two days on everywhere: READY_ORDER (ready to ship since 02:00 on the 20th, 48 h timeout) is overdue
    on every node whose engine runs ("server", "a", "b")."""
    for name in engines:  # each engine has been watching since before (its audit watermark is set)
        pass_(node(w, name))
    for clock in (w.store.clock, *w.clocks.values()):
        clock.advance(hours=48)  # type: ignore[attr-defined]
    for name in engines:
        pass_(node(w, name))


def node(w: World, name: str) -> Store:
    return w.store if name == "server" else w.desks[name]


def overdue(store: Store) -> AlertView:
    [alert] = [a for a in list_alerts(store, order_no=READY_ORDER, config=CONFIG) if a.kind == "overdue"]
    return alert


def overdue_any(store: Store) -> AlertView | None:
    found = list_alerts(store, order_no=READY_ORDER, include_closed=True, config=CONFIG)
    return next((a for a in found if a.kind == "overdue"), None)


def desk_code(store: Store) -> str:
    with store.read() as session:
        desk = session.get(Desk, 1)
        assert desk is not None
        return desk.desk_code


def timeline(store: Store, command_name: str) -> list[AuditEntry]:
    return [e for e in show_order(store, READY_ORDER).timeline if e.command == command_name]


def push(w: World, name: str, *, applied: int) -> None:
    """Sync a desk: every op applied, none rejected, nothing left waiting."""
    report = w.sync(name)
    assert (report.applied, report.rejected) == (applied, 0)
    assert rep.outbox_count(w.desks[name]) == 0
    assert rep.rejections(w.desks[name]) == []


def server_record(w: World, command_name: str) -> dict[str, Any]:
    """The detail of the central API's newest audit record of ``command_name`` on READY_ORDER."""
    [*_, entry] = timeline(w.store, command_name)
    return entry.detail


# -- acknowledge -----------------------------------------------------------------------------------------
def test_an_alert_raised_after_its_acknowledgement_arrived_starts_acknowledged(world: World) -> None:
    """Desk b's clock runs an hour behind: it reads desk a's acknowledgement of the overdue alert before its
    own engine finds the order overdue. When b raises the alert it applies the acknowledgement at once, and
    tells nobody the alert was raised: it is already dealt with."""
    w = world
    a, b = w.desks["a"], w.desks["b"]
    for store in (a, b):
        pass_(store)
    for clock in (w.store.clock, w.clocks["a"]):
        clock.advance(hours=48)  # type: ignore[attr-defined]
    w.clocks["b"].advance(hours=41)  # READY_ORDER is overdue from 42 h on
    pass_(a)
    acknowledge_alert(a, alert_id=overdue(a).id, user="zhao", note="carrier booked", config=CONFIG)
    push(w, "a", applied=1)
    w.sync("b")
    assert pass_(b).followed == 0 and overdue_any(b) is None  # nothing to apply it to yet
    w.clocks["b"].advance(hours=7)
    told = table_count(b, "notification")
    report = pass_(b)
    assert (report.raised, report.followed) == (1, 1)
    alert = overdue(b)
    assert (alert.status, alert.acked_by) == ("acked", "zhao")
    assert [e.event for e in alert_trail(b, alert.id)] == ["raised", "acknowledged"]
    assert table_count(b, "notification") == told
    w.clocks["b"].advance(hours=2)
    assert pass_(b).escalated == 0


def test_acknowledgement_is_recorded_where_the_server_runs_no_engine(world: World) -> None:
    w = world
    late(w, engines=("a", "b"))
    a, b = w.desks["a"], w.desks["b"]
    acknowledge_alert(a, alert_id=overdue(a).id, user="zhao", note="carrier booked for 14:00", config=CONFIG)
    push(w, "a", applied=1)

    assert list_alerts(w.store, include_closed=True, config=CONFIG) == []  # the server raised nothing
    recorded = server_record(w, "acknowledge_alert")
    assert recorded["unchanged"] == "no_live_alert" and recorded["note"] == "carrier booked for 14:00"

    w.sync("b")
    [seen] = timeline(b, "acknowledge_alert")
    assert seen.user_name == "zhao"
    assert seen.detail["via"] == desk_code(a) and seen.detail["note"] == "carrier booked for 14:00"
    assert "alert_id" not in seen.detail  # desk a's local id means nothing on b
    assert overdue(b).status == "open"  # until b's engine has read it
    report = pass_(b)
    assert report.followed == 1
    alert = overdue(b)
    assert (alert.status, alert.acked_by) == ("acked", "zhao")
    [event] = [e for e in alert_trail(b, alert.id) if e.event == "acknowledged"]
    assert (event.user_name, event.detail["via"]) == ("zhao", desk_code(a))
    assert pass_(b).followed == 0  # followed once
    # The acknowledgement also stops b's escalation: the deadline passes and nothing climbs.
    w.clocks["b"].advance(minutes=30)
    assert pass_(b).escalated == 0


def test_acknowledgement_applies_to_the_servers_own_alert(any_world: World) -> None:
    w = any_world
    late(w, engines=("server", "a"))
    a = w.desks["a"]
    assert overdue(w.store).status == "open"
    acknowledge_alert(a, alert_id=overdue(a).id, user="zhao", note="on it", config=CONFIG)
    push(w, "a", applied=1)

    alert = overdue(w.store)
    assert (alert.status, alert.acked_by) == ("acked", "zhao")
    assert [e.user_name for e in alert_trail(w.store, alert.id) if e.event == "acknowledged"] == ["zhao"]
    recorded = server_record(w, "acknowledge_alert")
    assert recorded["alert_id"] == alert.id and "unchanged" not in recorded
    w.store.clock.advance(minutes=30)  # type: ignore[attr-defined]
    assert pass_(w.store).escalated == 0  # the server's chain stopped too

    w.sync("b")
    assert [e.user_name for e in timeline(w.desks["b"], "acknowledge_alert")] == ["zhao"]


def test_an_alert_closed_on_the_server_records_the_late_acknowledgement(world: World) -> None:
    w = world
    late(w, engines=("server", "a"))
    a = w.desks["a"]
    acknowledge_alert(a, alert_id=overdue(a).id, user="zhao", config=CONFIG)
    # Meanwhile the order moved on at the central API (someone there put it on hold): its alert closed.
    move_order(w.store, order_no=READY_ORDER, to="hold", user="sun", reason="客户要求暂停")
    pass_(w.store)
    closed = overdue_any(w.store)
    assert closed is not None and closed.status == "closed"
    push(w, "a", applied=1)
    assert server_record(w, "acknowledge_alert")["unchanged"] == "no_live_alert"
    after = overdue_any(w.store)
    assert after is not None and (after.status, after.version, after.acked_by) == (
        "closed",
        closed.version,
        "",
    )


# -- first to arrive wins --------------------------------------------------------------------------------
def test_a_snooze_after_an_acknowledgement_loses_everywhere(world: World) -> None:
    w = world
    late(w, engines=("server", "a", "b"))
    a, b = w.desks["a"], w.desks["b"]
    acknowledge_alert(a, alert_id=overdue(a).id, user="zhao", note="on it", config=CONFIG)
    until = w.clocks["b"].now + timedelta(hours=4)
    snooze_alert(b, alert_id=overdue(b).id, user="sun", until=until, reason="waiting for the truck")
    push(w, "a", applied=1)
    push(w, "b", applied=1)  # not a rejection: the supervisor has nothing to decide

    alert = overdue(w.store)
    assert (alert.status, alert.acked_by, alert.snoozed_until) == ("acked", "zhao", None)
    assert server_record(w, "snooze_alert")["unchanged"] == "already_acknowledged"
    # b snoozed its own alert first; a's acknowledgement (which reached the server first) wins there too.
    assert overdue(b).status == "snoozed"
    assert pass_(b).followed == 1
    assert (overdue(b).status, overdue(b).acked_by) == ("acked", "zhao")
    # a hears of b's snooze, which changes nothing on a's acknowledged alert; both show it in the timeline.
    w.sync("a")
    assert pass_(a).followed == 0
    assert overdue(a).status == "acked"
    assert [e.user_name for e in timeline(a, "snooze_alert")] == ["sun"]
    assert [e.user_name for e in timeline(b, "acknowledge_alert")] == ["zhao"]


def test_two_desks_escalating_the_same_alert_climb_once(world: World) -> None:
    w = world
    late(w, engines=("server", "a", "b"))
    a, b = w.desks["a"], w.desks["b"]
    escalate_alert(a, alert_id=overdue(a).id, user="zhao", reason="truck cancelled", config=CONFIG)
    escalate_alert(b, alert_id=overdue(b).id, user="sun", reason="customer called", config=CONFIG)
    assert overdue(a).level == overdue(b).level == 1
    push(w, "a", applied=1)
    push(w, "b", applied=1)

    alert = overdue(w.store)
    assert (alert.level, alert.target_role) == (1, "planner")  # not 2: both meant "to the planner"
    assert server_record(w, "escalate_alert")["unchanged"] == "already_escalated"
    assert any("Escalated to you (level 1)" in i.text for i in inbox(w.store, "zhao"))
    w.sync("a")
    assert pass_(a).followed == 0 and overdue(a).level == 1


# -- snooze and escalate ---------------------------------------------------------------------------------
@pytest.mark.parametrize("server_engine", [True, False])
def test_snooze_reaches_the_server_and_the_other_desk(world: World, server_engine: bool) -> None:
    w = world
    late(w, engines=("server", "a", "b") if server_engine else ("a", "b"))
    a, b = w.desks["a"], w.desks["b"]
    until = w.clocks["a"].now + timedelta(hours=3)
    snooze_alert(a, alert_id=overdue(a).id, user="zhao", until=until, reason="等客户回电")
    push(w, "a", applied=1)
    if server_engine:
        alert = overdue(w.store)
        assert (alert.status, alert.snoozed_until) == ("snoozed", until)
    else:
        assert server_record(w, "snooze_alert")["unchanged"] == "no_live_alert"

    w.sync("b")
    [seen] = timeline(b, "snooze_alert")
    assert (seen.user_name, seen.detail["reason"], seen.detail["via"]) == ("zhao", "等客户回电", desk_code(a))
    pass_(b)
    assert (overdue(b).status, overdue(b).snoozed_until) == ("snoozed", until)
    w.clocks["b"].advance(hours=3)  # the snooze ends on b as it does on a
    pass_(b)
    assert overdue(b).status == "open"


def test_a_snooze_that_ended_before_it_arrived_is_only_recorded(world: World) -> None:
    w = world
    late(w, engines=("server", "a"))
    a = w.desks["a"]
    snooze_alert(
        a, alert_id=overdue(a).id, user="zhao", until=w.clocks["a"].now + timedelta(hours=1), reason="x"
    )
    w.store.clock.advance(hours=2)  # type: ignore[attr-defined]  # desk a was offline for two hours
    push(w, "a", applied=1)
    assert server_record(w, "snooze_alert")["unchanged"] == "snooze_over"
    assert overdue(w.store).status == "open"


@pytest.mark.parametrize("server_engine", [True, False])
def test_escalation_reaches_the_server_and_the_other_desk(world: World, server_engine: bool) -> None:
    w = world
    late(w, engines=("server", "a", "b") if server_engine else ("a", "b"))
    a, b = w.desks["a"], w.desks["b"]
    escalate_alert(a, alert_id=overdue(a).id, user="zhao", reason="truck cancelled", config=CONFIG)
    escalate_alert(a, alert_id=overdue(a).id, user="zhao", reason="still nothing", config=CONFIG)
    assert (overdue(a).level, overdue(a).target_role) == (2, "supervisor")
    push(w, "a", applied=2)
    if server_engine:
        alert = overdue(w.store)
        assert (alert.level, alert.target_role) == (2, "supervisor")
        assert any("Escalated to you (level 2)" in i.text for i in inbox(w.store, "sun"))
    else:
        assert server_record(w, "escalate_alert")["unchanged"] == "no_live_alert"

    w.sync("b")
    assert [e.detail["reason"] for e in timeline(b, "escalate_alert")] == ["truck cancelled", "still nothing"]
    assert pass_(b).followed == 2
    alert = overdue(b)
    assert (alert.level, alert.target_role) == (2, "supervisor")
    climbs = [e for e in alert_trail(b, alert.id) if e.event == "escalated"]
    assert [(e.user_name, e.detail["via"]) for e in climbs] == [("zhao", desk_code(a))] * 2


# -- answers to acknowledgement requests -----------------------------------------------------------------
@pytest.mark.parametrize("server_engine", [True, False])
def test_answers_to_a_request_reach_the_server(world: World, server_engine: bool) -> None:
    w = world
    a, b = w.desks["a"], w.desks["b"]
    engines = [w.store, a] if server_engine else [a]
    for store in engines:
        pass_(store)  # the engines are watching
    move_order(a, order_no=READY_ORDER, to="hold", user="zhao", reason="客户信用复核")
    push(w, "a", applied=1)
    for store in engines:
        assert pass_(store).ack_requests == 2  # hold asks sales and the supervisor
    asks = {x.topic: x for x in list_alerts(a, order_no=READY_ORDER, config=CONFIG) if x.kind == "ack"}
    answer_ack_request(a, alert_id=asks["sales"].id, user="wang", answer="acknowledged", config=CONFIG)
    answer_ack_request(
        a, alert_id=asks["supervisor"].id, user="sun", answer="need_info", reason="复核多久？", config=CONFIG
    )
    push(w, "a", applied=2)

    answers = [(e.user_name, e.detail["answer"]) for e in timeline(w.store, "answer_ack_request")]
    assert answers == [("wang", "acknowledged"), ("sun", "need_info")]
    live = list_alerts(w.store, order_no=READY_ORDER, config=CONFIG)
    if server_engine:
        assert [(x.kind, x.topic, x.target_user) for x in live] == [("info", "supervisor", "zhao")]
        texts = [i.text for i in inbox(w.store, "zhao")]
        assert any("wang (sales) acknowledged your move" in t for t in texts)
        assert any("复核多久？" in t for t in texts)
    else:
        assert live == []
        assert {e.detail["unchanged"] for e in timeline(w.store, "answer_ack_request")} == {"no_live_alert"}
    w.sync("b")
    assert [(e.user_name, e.detail["via"]) for e in timeline(b, "answer_ack_request")] == [
        ("wang", desk_code(a)),
        ("sun", desk_code(a)),
    ]


def test_a_move_made_at_another_desk_asks_for_acknowledgement_here(world: World) -> None:
    """Desk b runs the alert engine; a move to hold made at desk a reaches it by sync, and b's engine asks
    sales and the supervisor to acknowledge it, as the transition says (the pulled event carries only the
    move's arguments)."""
    w = world
    a, b = w.desks["a"], w.desks["b"]
    pass_(b)  # b's engine is watching
    move_order(a, order_no=READY_ORDER, to="hold", user="zhao", reason="客户信用复核")
    push(w, "a", applied=1)
    w.sync("b")
    assert pass_(b).ack_requests == 2
    asks = {x.topic: x for x in list_alerts(b, order_no=READY_ORDER, config=CONFIG) if x.kind == "ack"}
    assert set(asks) == {"sales", "supervisor"} and asks["sales"].mover == "zhao"


def test_the_mover_on_another_desk_hears_the_question(world: World) -> None:
    """The server asks (it runs the engine) and its supervisor answers there; the mover's desk, which asked
    too, closes its own request and raises the question for the mover."""
    w = world
    a = w.desks["a"]
    for store in (w.store, a):
        pass_(store)
    move_order(a, order_no=READY_ORDER, to="hold", user="zhao", reason="客户信用复核")
    push(w, "a", applied=1)
    pass_(w.store)
    pass_(a)
    [server_ask] = [
        x for x in list_alerts(w.store, order_no=READY_ORDER, config=CONFIG) if x.topic == "supervisor"
    ]
    answer_ack_request(
        w.store, alert_id=server_ask.id, user="sun", answer="need_info", reason="复核多久？", config=CONFIG
    )
    w.sync("a")  # the central API's own command reaches the desks like any other
    [seen] = timeline(a, "answer_ack_request")
    assert (seen.user_name, seen.detail["via"]) == ("sun", "HQ")
    assert pass_(a).followed == 1
    live = {(x.kind, x.topic): x for x in list_alerts(a, order_no=READY_ORDER, config=CONFIG)}
    assert ("ack", "supervisor") not in live and ("ack", "sales") in live
    assert live[("info", "supervisor")].target_user == "zhao"
    assert any("复核多久？" in i.text for i in inbox(a, "zhao"))


# -- ops queued before the key was carried, and bad ones -------------------------------------------------
def _queue_raw_op(store: Store, command_name: str, args: dict[str, Any]) -> None:
    """An op exactly as an older (or broken) desk queued it, through the real command machinery."""
    with command(store, command_name, user="zhao") as ctx:
        ctx.record(order_no=args["order_no"], args=args, base_version=1)


def test_an_op_queued_with_the_old_local_id_is_applied(world: World) -> None:
    w = world
    late(w, engines=("server", "a"))
    a = w.desks["a"]
    _queue_raw_op(
        a,
        "acknowledge_alert",
        {"alert_id": overdue(a).id + 1000, "order_no": READY_ORDER, "kind": "overdue", "note": "old desk"},
    )
    push(w, "a", applied=1)
    assert (overdue(w.store).status, overdue(w.store).acked_by) == ("acked", "zhao")


def test_an_op_naming_no_kind_of_alert_is_refused_readably(world: World) -> None:
    w = world
    _queue_raw_op(w.desks["a"], "acknowledge_alert", {"order_no": READY_ORDER, "kind": "late", "note": ""})
    report = w.sync("a")
    assert report.rejected == 1
    [rejection] = rep.rejections(w.desks["a"])
    assert rejection.code == "malformed_op"
    assert "kind must be one of overdue, promised, rush, ack, info, not 'late'" in str(rejection.reason)


def test_an_op_on_an_order_the_server_does_not_have_is_refused(world: World) -> None:
    w = world
    args = {
        "order_no": "SO-ZZ-9999999",
        "kind": "overdue",
        "until": "2026-11-21T00:00:00+00:00",
        "reason": "x",
    }
    _queue_raw_op(w.desks["a"], "snooze_alert", args)
    report = w.sync("a")
    assert report.rejected == 1
    assert rep.rejections(w.desks["a"])[0].code == "unknown_order"
