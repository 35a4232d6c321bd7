"""Domain commands on orders: each writes effect + audit + outbox in one transaction, or refuses cleanly."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import text

from orderdesk.clock import FixedClock
from orderdesk.errors import Refused
from orderdesk.orders import (
    add_note,
    assign_order,
    create_order,
    edit_order,
    list_orders,
    move_order,
    search_orders,
    show_order,
)
from orderdesk.store import Store


def counts(store: Store) -> dict[str, int]:
    with store.read() as session:
        return {
            t: session.exec(text(f"SELECT count(*) FROM {t}")).scalar()
            for t in ("sales_order", "order_line", "audit_record", "outbox", "order_note")
        }


def refused(fn, **kwargs) -> Refused:
    with pytest.raises(Refused) as err:
        fn(**kwargs)
    return err.value


def test_create_writes_order_audit_and_outbox_together(desk: Store) -> None:
    before = counts(desk)
    o = create_order(
        desk, customer="C001", lines=[("HX-M8", 10), ("6909876543212", 2)], user="wang", channel="jd"
    )
    after = counts(desk)
    assert after["sales_order"] == before["sales_order"] + 1
    assert after["order_line"] == before["order_line"] + 2
    assert after["audit_record"] == before["audit_record"] + 1
    assert after["outbox"] == before["outbox"] + 1
    assert o.order_no == "SO-D1-0000001" and o.state == "draft" and o.version == 1
    assert o.summary.amount == 10 * 150 + 2 * 8_800
    assert [(ln.sku, ln.quantity) for ln in o.lines] == [("HX-M8", 10), ("FL-DN50", 2)]
    with desk.read() as session:
        row = session.exec(
            text("SELECT command, order_no, base_version, args FROM outbox ORDER BY seq DESC")
        ).first()
    assert row[0] == "create_order" and row[1] == o.order_no and row[2] == 0 and '"HX-M8"' in row[3]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"customer": "NOPE", "lines": [("HX-M8", 1)]}, "unknown_customer"),
        ({"customer": "C001", "lines": [("NOPE", 1)]}, "unknown_product"),
        ({"customer": "C001", "lines": [("HX-M8", 0)]}, "bad_quantity"),
        ({"customer": "C001", "lines": [("HX-M8", 10**7)]}, "bad_quantity"),
        ({"customer": "C001", "lines": []}, "no_lines"),
        ({"customer": "C001", "lines": [("HX-M8", 1)], "channel": "wechat"}, "bad_channel"),
        ({"customer": "C001", "lines": [("HX-M8", 1)], "ship_address": "a\x00b"}, "bad_text"),
        ({"customer": "C001", "lines": [("HX-M8", 1)], "ship_address": "长" * 301}, "text_too_long"),
        ({"customer": "C001", "lines": [("HX-M8", 1)], "promised": date(2020, 1, 1)}, "date_in_past"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(desk: Store, kwargs: dict, code: str) -> None:
    before = counts(desk)
    err = refused(create_order, store=desk, user="wang", **kwargs)
    assert err.code == code and str(err)
    assert counts(desk) == before


def test_only_sales_may_create(desk: Store) -> None:
    err = refused(create_order, store=desk, customer="C001", lines=[("HX-M8", 1)], user="liu")
    assert err.code == "forbidden" and "sales" in str(err)
    assert (
        refused(create_order, store=desk, customer="C001", lines=[("HX-M8", 1)], user="ghost").code
        == "unknown_user"
    )


def test_move_follows_the_workflow_and_bumps_the_version(desk: Store, clock: FixedClock) -> None:
    o = create_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang")
    clock.advance(minutes=5)
    moved = move_order(desk, order_no=o.order_no, to="contract_signed", user="wang", reason="合同已回传")
    assert moved.state == "contract_signed" and moved.version == 2
    assert moved.summary.state_since == clock()
    assert moved.timeline[-1].command == "move_order" and moved.timeline[-1].detail["reason"] == "合同已回传"
    with desk.read() as session:
        base = session.exec(text("SELECT base_version FROM outbox ORDER BY seq DESC")).scalar()
    assert base == 1


def test_illegal_transition_lists_what_is_possible(desk: Store) -> None:
    o = create_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang")
    before = counts(desk)
    err = refused(move_order, store=desk, order_no=o.order_no, to="shipped", user="wang")
    assert err.code == "illegal_transition" and "contract_signed" in str(err)
    assert counts(desk) == before
    assert show_order(desk, o.order_no).version == 1


def test_role_without_the_transition_is_refused(desk: Store) -> None:
    o = create_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang")
    err = refused(move_order, store=desk, order_no=o.order_no, to="contract_signed", user="liu")
    assert err.code == "forbidden" and "sales" in err.who


def test_credit_guard_names_finance(desk: Store) -> None:
    # C002 has a ¥1,000 limit; twenty flanges are ¥1,760.
    o = create_order(desk, customer="C002", lines=[("FL-DN50", 20)], user="wang")
    err = refused(move_order, store=desk, order_no=o.order_no, to="contract_signed", user="wang")
    assert err.code == "guard:credit_ok" and err.who == ("finance",)
    assert "Finance must release" in str(err)
    assert "财务" in err.message.render("zh")


def _advance_to(desk: Store, order_no: str, *steps: tuple[str, str]) -> None:
    for target, user in steps:
        move_order(desk, order_no=order_no, to=target, user=user)


def test_qc_guard_blocks_ready_to_ship_until_passed(desk: Store) -> None:
    o = create_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang")
    _advance_to(desk, o.order_no, ("contract_signed", "wang"), ("tech_review", "zhao"))
    err = refused(move_order, store=desk, order_no=o.order_no, to="scheduled", user="zhao")
    assert err.code == "guard:tech_approved"
    edit_order(desk, order_no=o.order_no, changes={"tech_approved": True}, user="zhao")
    _advance_to(desk, o.order_no, ("scheduled", "zhao"))
    edit_order(desk, order_no=o.order_no, changes={"materials_kitted": True}, user="zhao")
    _advance_to(
        desk,
        o.order_no,
        ("materials_kitted", "zhao"),
        ("in_production", "zhao"),
        ("surface_treatment", "zhao"),
    )
    err = refused(move_order, store=desk, order_no=o.order_no, to="qc_pending", user="zhao")
    assert err.code == "guard:inspector_assigned"
    edit_order(desk, order_no=o.order_no, changes={"inspector": "zhou"}, user="zhou")
    _advance_to(desk, o.order_no, ("qc_pending", "zhao"))
    err = refused(move_order, store=desk, order_no=o.order_no, to="ready_to_ship", user="zhou")
    assert err.code == "guard:qc_passed"
    label = desk.workflow.states["qc_pending"]
    assert str(err) == f"QC has not passed: order {o.order_no} is in {label.label_en}."
    assert err.message.render("zh") == f"质检未通过：订单 {o.order_no} 当前为「{label.label_zh}」。"
    edit_order(desk, order_no=o.order_no, changes={"qc_result": "passed"}, user="zhou")
    assert move_order(desk, order_no=o.order_no, to="ready_to_ship", user="zhou").state == "ready_to_ship"


def test_stale_version_is_refused(desk: Store) -> None:
    o = create_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang")
    add_note(desk, order_no=o.order_no, text="first look", user="wang")  # notes do not change the version
    move_order(desk, order_no=o.order_no, to="contract_signed", user="wang", expected_version=1)
    before = counts(desk)
    err = refused(
        edit_order,
        store=desk,
        order_no=o.order_no,
        changes={"ship_address": "新地址"},
        user="wang",
        expected_version=1,
    )
    assert err.code == "stale_version" and "wang" in str(err)
    assert counts(desk) == before


def test_hold_and_resume_return_to_the_previous_state(desk: Store) -> None:
    o = create_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang")
    _advance_to(desk, o.order_no, ("contract_signed", "wang"), ("tech_review", "zhao"))
    held = move_order(desk, order_no=o.order_no, to="on_hold", user="zhao", reason="客户暂停")
    assert held.state == "on_hold"
    resumed = move_order(desk, order_no=o.order_no, to="resume", user="zhao")
    assert resumed.state == "tech_review"


def test_field_permissions_are_enforced_in_the_command(desk: Store) -> None:
    o = create_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang")
    assert (
        refused(edit_order, store=desk, order_no=o.order_no, changes={"waybill": "SF1"}, user="wang").code
        == "forbidden_field"
    )
    assert (
        refused(edit_order, store=desk, order_no=o.order_no, changes={"ship_address": "x"}, user="liu").code
        == "forbidden_field"
    )
    assert (
        refused(
            edit_order, store=desk, order_no=o.order_no, changes={"qc_result": "passed"}, user="wang"
        ).code
        == "forbidden_field"
    )
    assert (
        refused(edit_order, store=desk, order_no=o.order_no, changes={"amount": 1}, user="admin").code
        == "not_editable"
    )
    assert (
        refused(edit_order, store=desk, order_no=o.order_no, changes={"rush": "maybe"}, user="wang").code
        == "bad_value"
    )
    assert edit_order(desk, order_no=o.order_no, changes={"rush": "yes"}, user="wang").rush is True


def test_role_view_hides_prices_from_the_warehouse(desk: Store) -> None:
    from orderdesk.commands import load_actor
    from orderdesk.orders import visible_fields

    o = create_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang")
    with desk.read() as session:
        see = visible_fields(desk.workflow, load_actor(session, "liu"))
    data = show_order(desk, o.order_no).to_json(see)
    assert "amount" not in data and "unit_price" not in data["lines"][0]
    assert data["lines"][0]["sku"] == "HX-M8" and "quantity" in data["lines"][0]
    full = show_order(desk, o.order_no).to_json()
    assert full["amount"] == 1500 and full["lines"][0]["unit_price"] == 150


def test_assign_and_notes(desk: Store) -> None:
    o = create_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang")
    assert assign_order(desk, order_no=o.order_no, owner="zhao", user="zhao").owner == "zhao"
    assert refused(assign_order, store=desk, order_no=o.order_no, owner="nobody", user="zhao").code == "error"
    assert refused(add_note, store=desk, order_no=o.order_no, text="   ", user="wang").code == "empty_text"
    assert (
        refused(add_note, store=desk, order_no="SO-D1-9999999", text="hi", user="wang").code
        == "unknown_order"
    )
    shown = add_note(desk, order_no=o.order_no.lower(), text="客户来电确认", user="chen")
    assert shown.timeline[-1].detail["text"] == "客户来电确认"


def test_outbox_sequence_is_contiguous(desk: Store) -> None:
    o = create_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang")
    refused(move_order, store=desk, order_no=o.order_no, to="shipped", user="wang")  # refused: no seq used
    move_order(desk, order_no=o.order_no, to="contract_signed", user="wang")
    with desk.read() as session:
        seqs = [r[0] for r in session.exec(text("SELECT seq FROM outbox ORDER BY seq"))]
        hashes = {r[0] for r in session.exec(text("SELECT payload_hash FROM outbox"))}
    assert seqs == list(range(1, len(seqs) + 1)) and len(hashes) == len(seqs)


def test_list_and_search(desk: Store, clock: FixedClock) -> None:
    a = create_order(
        desk,
        customer="C001",
        lines=[("HX-M8", 10)],
        user="wang",
        promised=clock().date() + timedelta(days=10),
    )
    b = create_order(desk, customer="C003", lines=[("HX-M8", 10)], user="wang")
    move_order(desk, order_no=b.order_no, to="contract_signed", user="wang")
    total, rows = list_orders(desk, state="draft")
    assert total == 1 and rows[0].order_no == a.order_no
    assert refused(list_orders, store=desk, state="nowhere").code == "unknown_state"
    assert [r.order_no for r in search_orders(desk, "精工")] == [a.order_no]
    assert [r.order_no for r in search_orders(desk, "0755")] == [b.order_no]
    assert [r.order_no for r in search_orders(desk, "2")] == [b.order_no]
    assert [r.order_no for r in search_orders(desk, a.order_no.lower())] == [a.order_no]
    assert search_orders(desk, "   ") == []


def test_notes_added_together_are_each_a_note_with_its_own_audit_and_outbox_record(desk: Store) -> None:
    """``add_notes_effect`` writes what ``add_note`` writes for each note, in order, set-based; a note that
    would be refused is refused alone (empty, unknown order, unknown user) and the others are added."""
    from orderdesk import audit
    from orderdesk.commands import payload_hash
    from orderdesk.orders import NewNote, add_notes_effect

    a = create_order(desk, customer="C001", lines=[("HX-M8", 1)], user="wang")
    b = create_order(desk, customer="C002", lines=[("HX-M8", 1)], user="wang")
    add_note(desk, order_no=a.order_no, text="one at a time", user="liu")
    with desk.read() as session:
        [reference] = session.exec(
            text(
                "SELECT command, args, order_no, base_version, payload_hash, user_name FROM outbox ORDER BY seq DESC"
            )
        ).all()[:1]
    before = counts(desk)
    got = add_notes_effect(
        desk,
        [
            NewNote(a.order_no, " 第一条 ", "liu"),
            NewNote("SO-NOPE-1", "lost", "liu"),
            NewNote(b.order_no, "  ", "liu"),
            NewNote(b.order_no.lower(), "second", "wang"),
            NewNote(a.order_no, "third", "nobody"),
        ],
    )
    assert got[0] == (a.order_no, "liu") and got[3] == (b.order_no, "wang")
    assert [g.code for g in got if isinstance(g, Refused)] == ["unknown_order", "empty_text", "unknown_user"]
    assert [isinstance(g, Refused) for g in got] == [False, True, True, False, True]
    after = counts(desk)
    assert {t: after[t] - before[t] for t in after} == {
        "sales_order": 0,
        "order_line": 0,
        "audit_record": 2,
        "outbox": 2,
        "order_note": 2,
    }
    with desk.read() as session:
        notes = session.exec(
            text(
                "SELECT o.order_no, n.text, n.user_name FROM order_note n JOIN sales_order o ON o.id = n.order_id "
                "ORDER BY n.id"
            )
        ).all()
        rows = session.exec(
            text(
                "SELECT command, args, order_no, base_version, payload_hash, user_name, seq FROM outbox "
                "ORDER BY seq DESC LIMIT 3"
            )
        ).all()[::-1]
        checked, breaks = audit.verify(session)
        trail = session.exec(
            text("SELECT command, order_no, user_name, detail FROM audit_record ORDER BY id DESC LIMIT 2")
        ).all()[::-1]
    assert [tuple(n) for n in notes] == [
        (a.order_no, "one at a time", "liu"),
        (a.order_no, "第一条", "liu"),
        (b.order_no, "second", "wang"),
    ]
    assert breaks == [] and checked == after["audit_record"]
    assert rows[0][:6] == tuple(reference) and [r[6] for r in rows] == [rows[0][6] + i for i in range(3)]
    # add_note's own row (the reference) and the batch's rows are all of one shape
    for (command, args, order_no, version, hashed, user, _seq), (no, text_, who, ver) in zip(
        rows,
        [
            (a.order_no, "one at a time", "liu", a.version),
            (a.order_no, "第一条", "liu", a.version),  # a note does not move the version
            (b.order_no, "second", "wang", b.version),
        ],
        strict=True,
    ):
        assert (command, order_no, user, version) == ("add_note", no, who, ver)
        assert json.loads(args) == {"order_no": no, "text": text_}
        assert hashed == payload_hash("add_note", {"order_no": no, "text": text_}, ver, who)
    assert [(c, o, u, json.loads(d)) for c, o, u, d in trail] == [
        ("add_note", a.order_no, "liu", {"order_no": a.order_no, "text": "第一条"}),
        ("add_note", b.order_no, "wang", {"order_no": b.order_no, "text": "second"}),
    ]


def test_an_order_number_that_is_not_text_is_refused_with_a_reason(desk: Store) -> None:
    """A malformed op or import row (a number for an order number) is refused alone, not a crash."""
    from orderdesk.orders import NewNote, add_notes_effect

    a = create_order(desk, customer="C001", lines=[("HX-M8", 1)], user="wang")
    got = add_notes_effect(desk, [NewNote(5, "lost", "liu"), NewNote(a.order_no, "kept", "liu")])  # type: ignore[arg-type]
    assert isinstance(got[0], Refused) and got[0].code == "bad_text" and got[1] == (a.order_no, "liu")
    with pytest.raises(Refused, match="Order number must be text"):
        add_note(desk, order_no=5, text="lost", user="liu")  # type: ignore[arg-type]
