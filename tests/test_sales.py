"""The sales rules through the domain commands: each allowed and refused, nothing written on a refusal.

``desk``: C001 (limit ¥500,000, 苏州), C002 (limit ¥1,000, 宁波), C003 (limit ¥200,000, 深圳); products HX-M8
(¥1.50, 5000 in stock), FL-DN50 (¥88), PT-RED (¥120), BR-6204 (¥12.50). The clock stands at 2026-11-20 02:00 UTC.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import text

from orderdesk.catalog import add_customer
from orderdesk.clock import FixedClock
from orderdesk.errors import Refused
from orderdesk.finance import create_invoice, decide_approval, record_payment
from orderdesk.guards import credit_exposure
from orderdesk.models import Customer
from orderdesk.orders import edit_order, move_order, show_order
from orderdesk.sales import (
    change_requests,
    check_entry,
    compare_revisions,
    customer_defaults,
    decide_change,
    enter_order,
    find_customer_by_phone,
    find_customers,
    find_products,
    order_revisions,
    preview_change,
    request_change,
    sales_worklist,
)
from orderdesk.store import Store
from tests.desks_support import count_orders, ship_from_stock, to_qc_pending, to_tech_review

LATER = date(2026, 12, 30)  # far enough for no short-lead flag


def enter(desk: Store, customer: str = "C001", lines: list[tuple[str, int]] | None = None, **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("promised", LATER)
    return enter_order(
        desk, customer=customer, lines=lines or [("HX-M8", 10)], user=kw.pop("user", "wang"), **kw
    )  # type: ignore[arg-type]


def refused(fn, **kw):  # type: ignore[no-untyped-def]
    with pytest.raises(Refused) as caught:
        fn(**kw)
    return caught.value


def trail(desk: Store, order_no: str) -> list[tuple[str, dict[str, object]]]:
    with desk.read() as s:
        rows = s.execute(
            text("SELECT command, detail FROM audit_record WHERE order_no = :n ORDER BY id"), {"n": order_no}
        ).all()
    return [(c, json.loads(d)) for c, d in rows]


def outbox_commands(desk: Store) -> list[str]:
    with desk.read() as s:
        return [r[0] for r in s.execute(text("SELECT command FROM outbox ORDER BY seq")).all()]


# -- duplicates ------------------------------------------------------------------------------------------
def test_a_suspected_duplicate_is_refused_and_nothing_is_written(desk: Store, clock: FixedClock) -> None:
    first = enter(desk, lines=[("HX-M8", 10), ("FL-DN50", 2)]).detail.order_no
    clock.advance(hours=3)
    before = (count_orders(desk), outbox_commands(desk))
    err = refused(
        enter_order, store=desk, customer="C001", lines=[("FL-DN50", 2), ("HX-M8", 10)], user="wang"
    )
    assert err.code == "duplicate_suspected"
    assert first in str(err) and "3 h ago" in str(err) and "Sample test / Urgent restock" in str(err)
    assert "样品测试" in err.message.render("zh")
    assert (count_orders(desk), outbox_commands(desk)) == before


def test_a_duplicate_with_a_reason_is_entered_and_the_reason_kept(desk: Store) -> None:
    first = enter(desk).detail.order_no
    second = enter(desk, duplicate_reason="urgent_restock")
    assert second.duplicate_of == first and second.detail.order_no != first
    create = trail(desk, second.detail.order_no)[0]
    assert create[0] == "create_order" and create[1]["duplicate_of"] == first
    assert create[1]["sales"] == {"duplicate_reason": "urgent_restock"}


def test_other_needs_text_and_unknown_reasons_are_refused(desk: Store) -> None:
    enter(desk)
    assert refused(enter, desk=desk, duplicate_reason="other").code == "reason_text_needed"
    assert refused(enter, desk=desk, duplicate_reason="because").code == "bad_duplicate_reason"
    assert enter(desk, duplicate_reason="other", duplicate_note="展会样品").duplicate_of


@pytest.mark.parametrize(
    ("change", "lines"),
    [
        ("other quantity", [("HX-M8", 11)]),
        ("other customer", None),
        ("after the window", None),
        ("first was cancelled", None),
    ],
)
def test_not_a_duplicate(
    desk: Store, clock: FixedClock, change: str, lines: list[tuple[str, int]] | None
) -> None:
    first = enter(desk).detail.order_no
    customer = "C003" if change == "other customer" else "C001"
    if change == "after the window":
        clock.advance(hours=24, seconds=1)
    if change == "first was cancelled":
        move_order(desk, order_no=first, to="cancel", user="wang")
    assert enter(desk, customer=customer, lines=lines).duplicate_of == ""


# -- credit --------------------------------------------------------------------------------------------
def test_over_the_credit_limit_goes_on_hold_for_finance(desk: Store) -> None:
    result = enter(desk, customer="C002", lines=[("FL-DN50", 20)])  # ¥1,760 against ¥1,000
    detail = result.detail
    assert result.on_credit_hold and detail.state == "on_hold"
    create = trail(desk, detail.order_no)[0][1]
    assert create["credit_hold"] is True and create["notify"] == ["finance"] and create["require_ack"] is True
    with desk.read() as s:
        held_from = s.execute(
            text("SELECT held_from_state FROM sales_order WHERE order_no = :n"), {"n": detail.order_no}
        ).scalar()
    assert held_from == "draft"


def test_within_the_credit_limit_stays_in_draft(desk: Store) -> None:
    result = enter(desk, customer="C002", lines=[("FL-DN50", 11)])  # ¥968 against ¥1,000
    assert not result.on_credit_hold and result.detail.state == "draft"


def test_exposure_is_open_receivables_plus_uninvoiced_open_orders(desk: Store) -> None:
    add_customer(
        desk,
        code="C009",
        name="杭州测试",
        address="浙江省杭州市",
        credit_limit=1_000_000,
        settlement_terms="月结30天",
    )
    a = enter(desk, customer="C009", lines=[("FL-DN50", 50)], route="from_stock").detail.order_no  # ¥4,400
    with desk.read() as s:
        cid = s.execute(text("SELECT id FROM customer WHERE code='C009'")).scalar()
        assert credit_exposure(s, cid) == 0  # a draft is not owed yet
    ship_from_stock(desk, a)
    with desk.read() as s:
        assert credit_exposure(s, cid) == 440_000  # shipped, not invoiced
    create_invoice(desk, order_nos=[a], user="chen")
    record_payment(desk, customer="C009", amount=100_000, user="chen")
    with desk.read() as s:
        assert credit_exposure(s, cid) == 340_000  # invoiced 4,400 − paid 1,000
    # The next order is checked against that: ¥6,160 + 3,400 > ¥10,000 is not, ¥7,040 + 3,400 is.
    assert not enter(desk, customer="C009", lines=[("FL-DN50", 70)]).on_credit_hold
    move_order(
        desk,
        order_no=enter(desk, customer="C009", lines=[("BR-6204", 1)]).detail.order_no,
        to="sign_contract",
        user="wang",
    )
    assert enter(desk, customer="C009", lines=[("FL-DN50", 80)]).on_credit_hold


# -- approval ------------------------------------------------------------------------------------------
def test_a_large_order_needs_approval_before_signing(desk: Store) -> None:
    result = enter(desk, lines=[("FL-DN50", 600)])  # ¥52,800 > ¥50,000
    assert result.needs_approval and result.approval_roles == ("finance",)
    no = result.detail.order_no
    err = refused(move_order, store=desk, order_no=no, to="sign_contract", user="wang")
    assert err.code == "guard:approval_given" and err.who == ("finance",) and "waits for approval" in str(err)
    assert decide_approval(desk, order_no=no, approve=True, user="chen") == "approved"
    assert move_order(desk, order_no=no, to="sign_contract", user="wang").state == "contract_signed"


def test_a_rejected_large_order_cannot_be_signed(desk: Store) -> None:
    no = enter(desk, lines=[("FL-DN50", 600)]).detail.order_no
    decide_approval(desk, order_no=no, approve=False, user="chen", reason="客户资信不足")
    err = refused(move_order, store=desk, order_no=no, to="sign_contract", user="wang")
    assert err.code == "guard:approval_given" and "not approved" in str(err)


def test_an_order_at_the_threshold_needs_no_approval(desk: Store) -> None:
    # 2,000 × ¥25 = ¥50,000 exactly: "over the threshold" means more than it.
    from orderdesk.catalog import add_product

    add_product(desk, sku="AT-25", name="整额件", unit_price=2_500, stock_on_hand=10_000)
    result = enter(desk, lines=[("AT-25", 2_000)])
    assert not result.needs_approval
    assert (
        move_order(desk, order_no=result.detail.order_no, to="sign_contract", user="wang").state
        == "contract_signed"
    )


# -- promised date and short lead time -----------------------------------------------------------------
def test_the_promised_date_is_proposed_from_lead_time_and_transit(desk: Store, clock: FixedClock) -> None:
    # HX-M8 has 7 production days; 苏州 (江苏) is 1 transit day: 2026-11-20 + 8.
    result = enter_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang")
    assert result.detail.promised_date == date(2026, 11, 28) == result.proposed
    # 深圳 is 3 days away; from stock it is one handling day instead of production.
    check = check_entry(desk, customer="C003", lines=[("HX-M8", 1)], route="from_stock")
    assert check.proposal.promised == date(2026, 11, 24)
    assert (check.proposal.production_days, check.proposal.transit_days) == (1, 3)


def test_promising_earlier_than_proposed_needs_a_reason(desk: Store) -> None:
    early = date(2026, 11, 26)
    err = refused(
        enter_order, store=desk, customer="C001", lines=[("HX-M8", 10)], user="wang", promised=early
    )
    assert err.code == "promised_reason_needed" and "2026-11-28" in str(err)
    ok = enter_order(
        desk, customer="C001", lines=[("HX-M8", 10)], user="wang", promised=early, promised_reason="客户自提"
    )
    assert ok.detail.promised_date == early
    assert trail(desk, ok.detail.order_no)[0][1]["sales"] == {"promised_reason": "客户自提"}


def test_promising_later_needs_no_reason(desk: Store) -> None:
    assert enter(desk, promised=date(2026, 12, 20)).detail.promised_date == date(2026, 12, 20)


@pytest.mark.parametrize(("days", "short"), [(3, True), (6, True), (7, False), (30, False)])
def test_short_lead_time_is_flagged(desk: Store, clock: FixedClock, days: int, short: bool) -> None:
    result = enter(desk, promised=clock().date() + timedelta(days=days), promised_reason="客户要求")
    assert result.short_lead is short
    flagged = [w.order_no for w in sales_worklist(desk, viewer="wang") if w.short_lead]
    assert (result.detail.order_no in flagged) is short


# -- rush orders ---------------------------------------------------------------------------------------
def test_a_rush_order_is_not_scheduled_before_materials_are_kitted(desk: Store) -> None:
    no = enter(desk, rush=True).detail.order_no
    to_tech_review(desk, no)
    err = refused(move_order, store=desk, order_no=no, to="approve_tech", user="zhao")
    assert err.code == "guard:tech_approved"  # nothing signed off yet
    edit_order(desk, order_no=no, changes={"tech_approved": True}, user="zhao")
    err = refused(move_order, store=desk, order_no=no, to="approve_tech", user="zhao")
    assert err.code == "guard:rush_ready" and err.who == ("warehouse", "planner")
    assert "materials are confirmed kitted" in str(err) and "加急" in err.message.render("zh")
    edit_order(desk, order_no=no, changes={"materials_kitted": True}, user="liu")
    assert move_order(desk, order_no=no, to="approve_tech", user="zhao").state == "scheduled"


def test_an_ordinary_order_is_scheduled_on_tech_sign_off_alone(desk: Store) -> None:
    no = enter(desk).detail.order_no
    to_tech_review(desk, no)
    edit_order(desk, order_no=no, changes={"tech_approved": True}, user="zhao")
    assert move_order(desk, order_no=no, to="approve_tech", user="zhao").state == "scheduled"


def test_blocked_rush_orders_show_on_the_worklist_with_their_blockers(desk: Store) -> None:
    no = enter(desk, rush=True).detail.order_no
    item = next(w for w in sales_worklist(desk, viewer="wang") if w.order_no == no)
    assert item.rush_blockers == ("tech", "materials") and "rush_blocked" in item.flags


# -- returning customers -------------------------------------------------------------------------------
def test_a_returning_customer_gets_the_usual_address_packaging_and_standing_notes(desk: Store) -> None:
    with desk.write() as s:
        s.execute(text("UPDATE customer SET notes = '送货前电话联系王强' WHERE code = 'C001'"))
    fresh = customer_defaults(desk, "C001")
    assert not fresh.returning and fresh.ship_address.startswith("江苏省苏州市工业园区")
    site = "江苏省苏州市吴中区木渎镇 2 号仓"
    for _ in range(2):
        enter(desk, ship_address=site, packing_preset="3", duplicate_reason="sample_test")
    enter(desk, lines=[("FL-DN50", 1)])  # once to the registered address
    d = customer_defaults(desk, "C001")
    assert d.returning and d.orders == 3
    assert d.ship_address == site and d.packing_preset == "3" and d.standing_notes == "送货前电话联系王强"
    # Entered without an address, packaging or notes, the order gets them.
    detail = enter(desk, lines=[("PT-RED", 1)]).detail
    assert (
        detail.ship_address == site and detail.packing_preset == "3" and detail.notes == "送货前电话联系王强"
    )


def test_lookups_by_code_name_phone_and_product(desk: Store) -> None:
    assert [c.code for c in find_customers(desk, "C002")] == ["C002"]
    assert [c.code for c in find_customers(desk, "海拓")] == ["C002"]
    assert [c.code for c in find_customers(desk, "138 0000")] == ["C001"]
    assert [c.code for c in find_customer_by_phone(desk, "0755")] == ["C003"]
    assert find_customer_by_phone(desk, "999") == []
    add_customer(desk, code="C020", name="杭州座机客户", phone="0571-88886666")
    for typed in ("0571-8888", "05718888", "+86 0571 8888"):
        assert [c.code for c in find_customer_by_phone(desk, typed)] == ["C020"], typed
        assert [c.code for c in find_customers(desk, typed)] == ["C020"], typed
    assert [p.sku for p in find_products(desk, "6909876543212")] == ["FL-DN50"]  # a barcode scan
    assert [p.sku for p in find_products(desk, "法兰")] == ["FL-DN50"]
    assert find_products(desk, "BR")[0].stock_on_hand == 3


def test_phone_prefix_lookup_uses_the_phone_index(desk: Store) -> None:
    """The benchmark's premise, pinned without timing: the query plan searches the index."""
    from sqlmodel import col, select

    from orderdesk.sales import _prefix_range

    query = select(Customer).where(_prefix_range(col(Customer.phone), "1380"))
    with desk.read() as s:
        sql = str(query.compile(compile_kwargs={"literal_binds": True}))
        plan = " ".join(str(r[-1]) for r in s.execute(text("EXPLAIN QUERY PLAN " + sql)).all())
    assert "USING INDEX ix_customer_phone" in plan and "SCAN customer" not in plan


# -- linked orders ---------------------------------------------------------------------------------------
def test_a_second_order_within_30_minutes_is_offered_and_linked(desk: Store, clock: FixedClock) -> None:
    parent = enter(desk).detail.order_no
    clock.advance(minutes=20)
    assert check_entry(desk, customer="C001", lines=[("FL-DN50", 1)]).link.order_no == parent  # type: ignore[union-attr]
    offered = enter(desk, lines=[("FL-DN50", 1)])
    assert offered.link_offer == parent and offered.parent == ""
    child = enter(desk, lines=[("PT-RED", 1)], parent=parent)
    assert child.parent == parent
    assert trail(desk, child.detail.order_no)[0][1]["sales"] == {"parent": parent}


@pytest.mark.parametrize("problem", ["other address", "too late", "other customer", "child of a child"])
def test_linking_is_refused_when_it_does_not_fit(desk: Store, clock: FixedClock, problem: str) -> None:
    parent = enter(desk).detail.order_no
    kw: dict[str, object] = {"lines": [("FL-DN50", 1)], "parent": parent}
    if problem == "other address":
        kw["ship_address"] = "上海市浦东新区 1 号"
    elif problem == "too late":
        clock.advance(minutes=31)
    elif problem == "other customer":
        kw["customer"] = "C003"
    else:
        middle = enter(desk, lines=[("PT-RED", 1)], parent=parent).detail.order_no
        kw["parent"] = middle
    err = refused(enter, desk=desk, **kw)
    assert err.code == "bad_link"


def test_linked_orders_ship_together(desk: Store) -> None:
    parent = enter(desk, route="from_stock").detail.order_no
    child = enter(desk, lines=[("FL-DN50", 1)], route="from_stock", parent=parent).detail.order_no
    move_order(desk, order_no=parent, to="sign_contract", user="wang")
    move_order(desk, order_no=parent, to="pick_from_stock", user="liu")
    from tests.desks_support import scan_everything

    scan_everything(desk, parent)
    edit_order(desk, order_no=parent, changes={"waybill": "SF1"}, user="liu")
    err = refused(move_order, store=desk, order_no=parent, to="ship", user="liu")
    assert err.code == "guard:linked_orders_ready" and child in str(err)
    move_order(desk, order_no=child, to="sign_contract", user="wang")
    move_order(desk, order_no=child, to="pick_from_stock", user="liu")
    assert move_order(desk, order_no=parent, to="ship", user="liu").state == "shipped"


# -- change requests ---------------------------------------------------------------------------------------
def signed(desk: Store, **kw: object) -> str:
    no = enter(desk, lines=[("HX-M8", 100), ("FL-DN50", 10)], **kw).detail.order_no
    move_order(desk, order_no=no, to="sign_contract", user="wang")
    return no


def test_a_small_change_is_minor_and_another_sales_person_approves_it(desk: Store) -> None:
    from orderdesk.users import add_user

    add_user(desk, name="li", roles=["sales"], pin="1234")
    no = signed(desk)
    cr = request_change(desk, order_no=no, user="wang", reason="客户加 10 个", quantities={"HX-M8": 110})
    assert (cr.change_class, cr.fields, cr.approve_roles, cr.status) == (
        "minor",
        ("quantity",),
        ("sales", "supervisor"),
        "pending",
    )
    assert cr.impact["production_started"] is False and cr.impact["materials_issued"] is False
    err = refused(decide_change, store=desk, request_id=cr.id, approve=True, user="wang")
    assert err.code == "self_approval"
    done = decide_change(desk, request_id=cr.id, approve=True, user="li")
    assert done.status == "approved" and done.new_revision == 2
    detail = show_order(desk, no)
    assert [ln.quantity for ln in detail.lines] == [
        110,
        10,
    ] and detail.summary.amount == 110 * 150 + 10 * 8_800


def test_a_change_after_production_started_is_major_and_needs_the_supervisor(desk: Store) -> None:
    no = enter(desk, lines=[("HX-M8", 100)]).detail.order_no
    to_qc_pending(desk, no, inspector=None)  # in surface treatment: production has started
    preview = preview_change(desk, order_no=no, ship_address="上海市浦东新区张江路 1 号")
    assert (
        preview.change_class == "major"
        and preview.facts.production_started
        and preview.facts.materials_issued
    )
    cr = request_change(
        desk, order_no=no, user="wang", reason="客户改地址", ship_address="上海市浦东新区张江路 1 号"
    )
    err = refused(decide_change, store=desk, request_id=cr.id, approve=True, user="chen")
    assert err.code == "forbidden" and err.who == ("supervisor",)
    decide_change(desk, request_id=cr.id, approve=True, user="sun", reason="已与物流确认")
    assert show_order(desk, no).ship_address == "上海市浦东新区张江路 1 号"


def test_replacing_a_sku_is_major_and_makes_a_new_version_viewable_side_by_side(desk: Store) -> None:
    no = signed(desk)
    cr = request_change(
        desk,
        order_no=no,
        user="wang",
        reason="客户改用轴承",
        replace={"FL-DN50": "BR-6204"},
        promised=date(2027, 1, 5),
    )
    assert cr.change_class == "major" and set(cr.fields) == {"sku", "date"}
    decide_change(desk, request_id=cr.id, approve=True, user="sun")
    revisions = order_revisions(desk, no)
    assert [r.revision for r in revisions] == [1, 2] and revisions[1].change_request_id == cr.id
    diff = compare_revisions(revisions[0], revisions[1])
    changed = {(d.sku, d.before, d.after) for d in diff.lines if d.changed}
    assert changed == {("FL-DN50", 10, None), ("BR-6204", None, 10)}
    assert diff.date_changed and not diff.address_changed and diff.amount_changed
    assert revisions[0].promised_date == LATER and revisions[1].promised_date == date(2027, 1, 5)


def test_a_rejected_change_leaves_the_order_as_it_was(desk: Store) -> None:
    no = signed(desk)
    before = show_order(desk, no)
    cr = request_change(desk, order_no=no, user="wang", reason="加量", quantities={"HX-M8": 200})
    assert (
        refused(decide_change, store=desk, request_id=cr.id, approve=False, user="sun").code == "empty_text"
    )
    done = decide_change(desk, request_id=cr.id, approve=False, user="sun", reason="产能已满")
    assert done.status == "rejected" and done.decision_reason == "产能已满"
    after = show_order(desk, no)
    assert [ln.quantity for ln in after.lines] == [ln.quantity for ln in before.lines]
    assert [r.revision for r in order_revisions(desk, no)] == [1]


def test_one_change_at_a_time_and_no_change_of_nothing(desk: Store) -> None:
    no = signed(desk)
    assert refused(request_change, store=desk, order_no=no, user="wang", reason="x").code == "no_changes"
    request_change(desk, order_no=no, user="wang", reason="加量", quantities={"HX-M8": 101})
    err = refused(
        request_change, store=desk, order_no=no, user="wang", reason="再加", quantities={"HX-M8": 102}
    )
    assert err.code == "change_pending"
    assert (
        refused(request_change, store=desk, order_no=no, user="wang", reason="", quantities={"HX-M8": 1}).code
        == "empty_text"
    )


def test_a_quantity_cannot_drop_below_what_was_scanned(desk: Store) -> None:
    no = signed(desk)
    with desk.write() as s:
        s.execute(
            text(
                "UPDATE order_line SET scanned_qty = 60 WHERE line_no = 1 AND order_id = (SELECT id FROM sales_order WHERE order_no = :n)"
            ),
            {"n": no},
        )
    cr = request_change(desk, order_no=no, user="wang", reason="减量", quantities={"HX-M8": 50})
    assert (
        refused(decide_change, store=desk, request_id=cr.id, approve=True, user="sun").code == "below_scanned"
    )


def test_a_change_that_makes_the_order_large_needs_approval_again(desk: Store) -> None:
    no = signed(desk)
    cr = request_change(desk, order_no=no, user="wang", reason="大单", quantities={"FL-DN50": 700})
    decide_change(desk, request_id=cr.id, approve=True, user="sun")
    assert any(w.order_no == no and w.approval == "pending" for w in sales_worklist(desk, viewer="wang"))


# -- field permissions, tried through the commands themselves --------------------------------------------
@pytest.mark.parametrize(
    ("user", "change", "field"),
    [
        ("chen", {"quantities": {"HX-M8": 5}}, "lines.quantity"),  # finance sees prices, changes no lines
        ("chen", {"replace": {"HX-M8": "BR-6204"}}, "lines.sku"),
        ("zhou", {"ship_address": "上海市 1 号"}, "ship_address"),  # QC may not touch the deal
        ("liu", {"promised": date(2027, 2, 1)}, "promised_date"),  # nor may the warehouse
    ],
)
def test_a_forbidden_change_is_refused_by_the_command(
    desk: Store, user: str, change: dict[str, object], field: str
) -> None:
    no = signed(desk)
    err = refused(request_change, store=desk, order_no=no, user=user, reason="试试", **change)
    assert err.code == "forbidden_field" and field in str(err)
    assert change_requests(desk, order_no=no) == []


def test_finance_may_not_enter_an_order(desk: Store) -> None:
    err = refused(enter_order, store=desk, customer="C001", lines=[("HX-M8", 1)], user="chen")
    assert err.code == "forbidden"


def test_the_worklist_hides_amounts_from_roles_that_may_not_see_them(desk: Store) -> None:
    no = enter(desk, customer="C002", lines=[("FL-DN50", 20)]).detail.order_no
    assert next(w for w in sales_worklist(desk, viewer="wang") if w.order_no == no).amount == 176_000
    assert next(w for w in sales_worklist(desk, viewer="liu") if w.order_no == no).amount is None


def test_versions_and_change_requests_hide_prices_from_the_warehouse(desk: Store) -> None:
    no = signed(desk)
    request_change(desk, order_no=no, user="wang", reason="加量", quantities={"HX-M8": 101})
    [mine] = change_requests(desk, viewer="wang")
    [theirs] = change_requests(desk, viewer="liu")
    assert mine.proposed["amount"] == 101 * 150 + 10 * 8_800 and "unit_price" in mine.proposed["lines"][0]
    assert "amount" not in theirs.proposed and "unit_price" not in theirs.proposed["lines"][0]
    assert "amount_after" not in theirs.impact and theirs.impact["production_started"] is False
    assert order_revisions(desk, no, viewer="wang")[0].amount == 100 * 150 + 10 * 8_800
    hidden = order_revisions(desk, no, viewer="liu")[0]
    assert hidden.amount is None and {ln.unit_price for ln in hidden.lines} == {None}


def test_every_sales_command_writes_one_audit_and_one_outbox_record(desk: Store) -> None:
    no = signed(desk)
    cr = request_change(desk, order_no=no, user="wang", reason="加量", quantities={"HX-M8": 101})
    decide_change(desk, request_id=cr.id, approve=True, user="sun")
    assert [c for c, _d in trail(desk, no)] == [
        "create_order",
        "move_order",
        "request_change",
        "decide_change",
    ]
    assert outbox_commands(desk)[-3:] == ["move_order", "request_change", "decide_change"]
