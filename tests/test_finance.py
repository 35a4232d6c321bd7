"""Finance through the domain commands and the CLI: credit holds released or kept, approvals, invoices from
shipped orders (linked orders together), payments matched to invoices, ageing, exposure and the exports."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from orderdesk.catalog import add_customer
from orderdesk.cli import main
from orderdesk.clock import FixedClock
from orderdesk.errors import Refused
from orderdesk.finance import (
    INVOICE_COLUMNS,
    RECEIVABLE_COLUMNS,
    approval_queue,
    bucket_of,
    create_invoice,
    credit_hold_queue,
    customer_exposure,
    decide_approval,
    decide_credit,
    export_invoices,
    export_receivables,
    list_invoices,
    orders_to_invoice,
    receivables_ageing,
    record_payment,
    split_tax,
)
from orderdesk.orders import move_order, show_order
from orderdesk.rules import load_rules
from orderdesk.sales import enter_order, sales_worklist
from orderdesk.store import Store
from tests.desks_support import ship_from_stock, ship_ready


def enter(
    desk: Store, customer: str = "C003", lines: list[tuple[str, int]] | None = None, **kw: object
) -> str:
    kw.setdefault("promised", date(2026, 12, 30))
    kw.setdefault("route", "from_stock")
    return enter_order(
        desk, customer=customer, lines=lines or [("FL-DN50", 10)], user="wang", **kw
    ).detail.order_no  # type: ignore[arg-type]


def shipped(
    desk: Store, customer: str = "C003", lines: list[tuple[str, int]] | None = None, **kw: object
) -> str:
    no = enter(desk, customer, lines, **kw)
    ship_from_stock(desk, no)
    return no


def refused(fn, **kw):  # type: ignore[no-untyped-def]
    with pytest.raises(Refused) as caught:
        fn(**kw)
    return caught.value


# -- credit holds --------------------------------------------------------------------------------------
def held(desk: Store) -> str:
    return enter(desk, customer="C002", lines=[("FL-DN50", 20)], route="make_to_order")  # ¥1,760 > ¥1,000


def test_a_held_order_is_in_the_queue_and_release_resumes_it(desk: Store) -> None:
    no = held(desk)
    [item] = credit_hold_queue(desk, viewer="chen")
    assert (item.order_no, item.amount, item.credit_limit, item.over_by, item.status) == (
        no,
        176_000,
        100_000,
        76_000,
        "pending",
    )
    assert decide_credit(desk, order_no=no, release=True, user="chen", reason="客户已预付 50%") == "draft"
    detail = show_order(desk, no)
    assert detail.state == "draft" and detail.credit_released
    assert credit_hold_queue(desk, viewer="chen") == []
    # Released: credit_ok lets it through at signing although it is still over the limit.
    assert move_order(desk, order_no=no, to="sign_contract", user="wang").state == "contract_signed"
    last = show_order(desk, no).timeline[-2]
    assert (
        last.command == "decide_credit"
        and last.detail["reason"] == "客户已预付 50%"
        and last.detail["notify"] == ["sales"]
    )


def test_keep_leaves_it_on_hold_with_the_reason_shown(desk: Store) -> None:
    no = held(desk)
    decide_credit(desk, order_no=no, release=False, user="chen", reason="前款未结清")
    assert show_order(desk, no).state == "on_hold"
    [item] = credit_hold_queue(desk, viewer="chen")
    assert item.status == "kept" and item.last_reason == "前款未结清"
    assert any(w.order_no == no and w.credit_hold == "kept" for w in sales_worklist(desk, viewer="wang"))
    decide_credit(desk, order_no=no, release=True, user="chen", reason="已结清")
    assert show_order(desk, no).state == "draft"


@pytest.mark.parametrize(
    ("user", "reason", "code"),
    [("wang", "我想放行", "forbidden"), ("sun", "主管放行", "forbidden"), ("chen", "", "empty_text")],
)
def test_release_needs_finance_and_a_reason(desk: Store, user: str, reason: str, code: str) -> None:
    no = held(desk)
    assert (
        refused(decide_credit, store=desk, order_no=no, release=True, user=user, reason=reason).code == code
    )
    assert show_order(desk, no).state == "on_hold"


def test_keep_is_refused_for_an_order_not_on_hold(desk: Store) -> None:
    no = enter(desk)
    assert (
        refused(decide_credit, store=desk, order_no=no, release=False, user="chen", reason="x").code
        == "not_on_hold"
    )


# -- approvals -----------------------------------------------------------------------------------------
def test_the_approval_queue_and_its_decisions(desk: Store) -> None:
    big = enter(desk, customer="C001", lines=[("FL-DN50", 600)])
    [item] = approval_queue(desk, viewer="chen")
    assert item.order_no == big and item.roles == ("finance",)
    assert refused(decide_approval, store=desk, order_no=big, approve=True, user="wang").code == "forbidden"
    assert refused(decide_approval, store=desk, order_no=big, approve=False, user="chen").code == "empty_text"
    decide_approval(desk, order_no=big, approve=True, user="chen")
    assert approval_queue(desk, viewer="chen") == []
    assert refused(decide_approval, store=desk, order_no=big, approve=True, user="chen").code == "not_pending"


def test_the_warehouse_may_not_see_finance_queues(desk: Store) -> None:
    held(desk)
    for fn in (credit_hold_queue, approval_queue, orders_to_invoice, receivables_ageing, list_invoices):
        assert refused(fn, store=desk, viewer="liu").code == "forbidden_field"


# -- invoices ------------------------------------------------------------------------------------------
def test_only_shipped_orders_are_invoiced_with_the_vat_split_out(desk: Store) -> None:
    draft = enter(desk)
    assert refused(create_invoice, store=desk, order_nos=[draft], user="chen").code == "not_shipped"
    no = shipped(desk, lines=[("FL-DN50", 25)])  # ¥2,200 incl. 13 % VAT
    assert [i.order_no for i in orders_to_invoice(desk, viewer="chen")] == [no]
    inv = create_invoice(desk, order_nos=[no], user="chen")
    assert inv.invoice_no == "INV-D1-000001" and inv.orders == (no,)
    assert (inv.total, inv.net, inv.tax, inv.tax_rate_bp) == (220_000, 194_690, 25_310, 1300)
    assert inv.due_date == inv.invoice_date + timedelta(days=30)  # C003 has no terms: the default
    assert orders_to_invoice(desk, viewer="chen") == []
    assert refused(create_invoice, store=desk, order_nos=[no], user="chen").code == "already_invoiced"
    assert (
        refused(create_invoice, store=desk, order_nos=[shipped(desk, lines=[("HX-M8", 1)])], user="wang").code
        == "forbidden"
    )


def test_tax_split_when_prices_exclude_vat() -> None:
    rules = load_rules()
    assert split_tax(rules, 113_00) == (100_00, 13_00, 113_00)
    from dataclasses import replace

    assert split_tax(replace(rules, prices_include_tax=False), 100_00) == (100_00, 13_00, 113_00)


def test_linked_orders_are_invoiced_together(desk: Store) -> None:
    parent = enter(desk)
    child = enter(desk, lines=[("HX-M8", 10)], parent=parent)
    move_order(desk, order_no=child, to="sign_contract", user="wang")
    move_order(desk, order_no=child, to="pick_from_stock", user="liu")
    ship_from_stock(desk, parent)
    ship_ready(desk, child)
    [item] = orders_to_invoice(desk, viewer="chen")
    assert item.order_no == parent and item.children == (child,) and item.ready
    inv = create_invoice(desk, order_nos=[child], user="chen")  # naming the child brings the parent along
    assert inv.orders == (parent, child) and inv.total == 88_000 + 1_500


def test_a_child_is_not_invoiced_before_its_parent_ships(desk: Store) -> None:
    parent = enter(desk)
    child = enter(desk, lines=[("HX-M8", 10)], parent=parent)
    move_order(desk, order_no=parent, to="sign_contract", user="wang")
    move_order(desk, order_no=parent, to="pick_from_stock", user="liu")
    move_order(desk, order_no=child, to="sign_contract", user="wang")
    move_order(desk, order_no=child, to="pick_from_stock", user="liu")
    ship_ready(desk, child)  # the parent is ready to ship, so the child may go
    [item] = orders_to_invoice(desk, viewer="chen")
    assert item.order_no == parent and not item.ready and item.waiting_for == (parent,)
    err = refused(create_invoice, store=desk, order_nos=[child], user="chen")
    assert err.code == "not_shipped" and parent in str(err)


def test_an_invoice_is_for_one_customer(desk: Store) -> None:
    a = shipped(desk)
    b = shipped(desk, customer="C001", lines=[("HX-M8", 3)])
    assert refused(create_invoice, store=desk, order_nos=[a, b], user="chen").code == "mixed_customers"


# -- payments ------------------------------------------------------------------------------------------
def test_payments_are_matched_oldest_invoice_first_and_the_rest_stays_on_account(
    desk: Store, clock: FixedClock
) -> None:
    first = create_invoice(desk, order_nos=[shipped(desk)], user="chen")  # ¥880
    clock.advance(days=1)
    second = create_invoice(desk, order_nos=[shipped(desk, lines=[("FL-DN50", 5)])], user="chen")  # ¥440
    pay = record_payment(desk, customer="C003", amount=100_000, user="chen", reference="B20261121-1")
    assert pay.matched == ((first.invoice_no, 88_000), (second.invoice_no, 12_000)) and pay.unallocated == 0
    pay2 = record_payment(desk, customer="C003", amount=50_000, user="chen", invoices=[second.invoice_no])
    assert pay2.matched == ((second.invoice_no, 32_000),) and pay2.unallocated == 18_000
    assert [i.open for i in list_invoices(desk, viewer="chen", customer="C003")] == [0, 0]
    assert (
        refused(
            record_payment, store=desk, customer="C003", amount=100_000, user="chen", reference="B20261121-1"
        ).code
        == "duplicate_payment"
    )
    # Money on account is matched to the next invoice.
    third = create_invoice(desk, order_nos=[shipped(desk, lines=[("HX-M8", 100)])], user="chen")  # ¥150
    assert third.paid == 15_000
    row = customer_exposure(desk, customer="C003", viewer="chen")
    assert (row.receivable, row.unallocated, row.uninvoiced, row.exposure) == (0, 3_000, 0, -3_000)


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"amount": 0}, "bad_amount"),
        ({"amount": 100, "method": "barter"}, "bad_method"),
        ({"amount": 100, "received_on": date(2026, 12, 25)}, "date_in_future"),
        ({"amount": 100, "invoices": ["INV-D1-999999"]}, "unknown_invoice"),
        ({"amount": 100, "user": "wang"}, "forbidden"),
    ],
)
def test_bad_payments_are_refused(desk: Store, kw: dict[str, object], code: str) -> None:
    kw.setdefault("user", "chen")
    assert refused(record_payment, store=desk, customer="C003", **kw).code == code


def test_a_payment_cannot_be_matched_to_another_customers_invoice(desk: Store) -> None:
    inv = create_invoice(desk, order_nos=[shipped(desk)], user="chen")
    err = refused(
        record_payment, store=desk, customer="C001", amount=100, user="chen", invoices=[inv.invoice_no]
    )
    assert err.code == "wrong_customer"


# -- ageing and exposure -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("days", "bucket"), [(-3, 0), (0, 0), (30, 0), (31, 1), (60, 1), (61, 2), (90, 2), (91, 3), (400, 3)]
)
def test_ageing_buckets(days: int, bucket: int) -> None:
    assert bucket_of(days) == bucket


def test_receivables_age_by_invoice_date(desk: Store, clock: FixedClock) -> None:
    old = create_invoice(desk, order_nos=[shipped(desk)], user="chen")  # ¥880 on 2026-11-20
    clock.advance(days=45)
    later = date(2027, 2, 28)
    create_invoice(
        desk, order_nos=[shipped(desk, lines=[("FL-DN50", 5)], promised=later)], user="chen"
    )  # ¥440 on 2027-01-04
    open_order = enter(desk, lines=[("HX-M8", 10)], promised=later)
    move_order(desk, order_no=open_order, to="sign_contract", user="wang")  # ¥15, not invoiced
    [row] = receivables_ageing(desk, viewer="chen", as_of=date(2027, 1, 4))
    assert row.buckets == (44_000, 88_000, 0, 0) and row.uninvoiced == 1_500
    assert row.exposure == 133_500 and row.available == 20_000_000 - 133_500
    [march] = receivables_ageing(desk, viewer="chen", as_of=date(2027, 3, 1))
    assert march.buckets == (0, 44_000, 0, 88_000)
    record_payment(desk, customer="C003", amount=88_000, user="chen", invoices=[old.invoice_no])
    [paid] = receivables_ageing(desk, viewer="chen", as_of=date(2027, 3, 1))
    assert paid.buckets == (0, 44_000, 0, 0)


# -- exports -------------------------------------------------------------------------------------------
def two_invoices(desk: Store) -> None:
    add_customer(
        desk,
        code="C010",
        name="无锡华光机电有限公司",
        address="江苏省无锡市",
        credit_limit=10_000_000,
        settlement_terms="月结60天",
    )
    create_invoice(desk, order_nos=[shipped(desk)], user="chen")
    create_invoice(
        desk, order_nos=[shipped(desk, customer="C010", lines=[("PT-RED", 3)])], user="chen", note="含危险品"
    )
    record_payment(desk, customer="C010", amount=10_000, user="chen")


def test_invoice_export_csv_has_the_accounting_columns(desk: Store, tmp_path: Path) -> None:
    two_invoices(desk)
    path = tmp_path / "out" / "invoices.csv"
    assert export_invoices(desk, path, viewer="chen") == 2
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Excel and 用友/金蝶 read the Chinese right
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert tuple(rows[0]) == INVOICE_COLUMNS
    assert rows[0][:3] == ["凭证日期", "凭证字", "摘要"] and "价税合计" in rows[0]
    data = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    wuxi = next(d for d in data if d["客户编码"] == "C010")
    assert wuxi["客户名称"] == "无锡华光机电有限公司" and wuxi["发票号"] == "INV-D1-000002"
    assert (wuxi["金额"], wuxi["税额"], wuxi["价税合计"], wuxi["已收金额"], wuxi["未收金额"]) == (
        "318.58",
        "41.42",
        "360.00",
        "100.00",
        "260.00",
    )
    assert wuxi["凭证日期"] == "2026-11-20" and wuxi["到期日"] == "2027-01-19" and wuxi["税率"] == "0.13"
    assert (wuxi["应收科目"], wuxi["收入科目"], wuxi["销项税科目"], wuxi["凭证字"]) == (
        "1122",
        "6001",
        "22210102",
        "记",
    )


def test_invoice_export_xlsx_has_typed_cells(desk: Store, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    two_invoices(desk)
    path = tmp_path / "invoices.xlsx"
    assert export_invoices(desk, path, viewer="chen") == 2
    sheet = load_workbook(path).active
    assert sheet is not None
    header = [c.value for c in sheet[1]]
    assert tuple(header) == INVOICE_COLUMNS
    second = {h: c for h, c in zip(header, sheet[3], strict=True)}
    assert second["价税合计"].value == 360.0 and second["价税合计"].number_format == "0.00"
    assert (
        second["凭证日期"].value.date() == date(2026, 11, 20)
        and second["凭证日期"].number_format == "yyyy-mm-dd"
    )


def test_receivables_export_and_a_gbk_encoding_for_older_packages(
    desk: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orderdesk.rules import default_rules_path

    two_invoices(desk)
    own = tmp_path / "rules.toml"
    own.write_text(
        default_rules_path()
        .read_text(encoding="utf-8")
        .replace('csv_encoding = "utf-8-sig"', 'csv_encoding = "gbk"'),
        encoding="utf-8",
    )
    monkeypatch.setenv("ORDERDESK_RULES", str(own))
    path = tmp_path / "receivables.csv"
    assert export_receivables(desk, path, viewer="chen") == 2
    rows = list(csv.reader(path.read_bytes().decode("gbk").splitlines()))
    assert tuple(rows[0]) == RECEIVABLE_COLUMNS
    wuxi = dict(zip(rows[0], next(r for r in rows if r[1] == "C010"), strict=True))
    assert (wuxi["0-30天"], wuxi["应收余额"], wuxi["未核销收款"], wuxi["信用占用"]) == (
        "260.00",
        "260.00",
        "0.00",
        "260.00",
    )


def test_an_export_is_refused_to_the_warehouse_and_for_an_unknown_format(desk: Store, tmp_path: Path) -> None:
    assert (
        refused(export_invoices, store=desk, path=tmp_path / "x.csv", viewer="liu").code == "forbidden_field"
    )
    assert refused(export_invoices, store=desk, path=tmp_path / "x.pdf", viewer="chen").code == "bad_format"
    assert not (tmp_path / "x.csv").exists()


# -- the command line ------------------------------------------------------------------------------------
def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_finance_through_the_cli(desk: Store, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = desk.path
    no = held(desk)
    code, out, _ = cli(capsys, "credit", "holds", "--user", "chen", "--db", db, "--json")
    assert code == 0 and json.loads(out)[0]["order_no"] == no
    code, _, err = cli(capsys, "credit", "release", no, "--user", "wang", "--reason", "x", "--db", db)
    assert code == 1 and "may not release credit holds" in err
    code, out, _ = cli(capsys, "credit", "release", no, "--user", "chen", "--reason", "已预付", "--db", db)
    assert code == 0 and "now Draft" in out
    ship = shipped(desk)
    code, out, err = cli(capsys, "invoice", "create", ship, "--user", "chen", "--db", db, "--json")
    assert code == 0, err
    inv = json.loads(out)
    assert inv["orders"] == [ship] and inv["total"] == 88_000
    code, out, _ = cli(
        capsys,
        "payment",
        "record",
        "--customer",
        "C003",
        "--amount",
        "500.00",
        "--user",
        "chen",
        "--db",
        db,
        "--json",
    )
    assert code == 0 and json.loads(out)["matched"] == [{"invoice_no": inv["invoice_no"], "amount": 50_000}]
    code, _, err = cli(
        capsys, "payment", "record", "--customer", "C003", "--amount", "5.001", "--user", "chen", "--db", db
    )
    assert code == 2 and "--amount" in err
    code, out, _ = cli(
        capsys, "receivables", "--user", "chen", "--db", db, "--json", "--export", tmp_path / "r.xlsx"
    )
    assert code == 0 and (tmp_path / "r.xlsx").exists()
    c003 = next(c for c in json.loads(out)["customers"] if c["customer"]["code"] == "C003")
    assert c003["receivable"] == 38_000
    code, out, _ = cli(capsys, "invoice", "export", tmp_path / "i.csv", "--user", "chen", "--db", db)
    assert code == 0 and "1 rows written" in out
    code, _, err = cli(capsys, "invoice", "list", "--user", "liu", "--db", db)
    assert code == 1 and "may not see amounts" in err


def test_approvals_through_the_cli(desk: Store, capsys: pytest.CaptureFixture[str]) -> None:
    big = enter(desk, customer="C001", lines=[("FL-DN50", 600)])
    code, out, _ = cli(capsys, "approval", "list", "--user", "chen", "--db", desk.path, "--json")
    assert [i["order_no"] for i in json.loads(out)] == [big]
    code, _, err = cli(capsys, "approval", "reject", big, "--user", "chen", "--reason", "", "--db", desk.path)
    assert code == 1 and "must not be empty" in err
    code, out, _ = cli(capsys, "approval", "approve", big, "--user", "chen", "--db", desk.path)
    assert code == 0 and "approved" in out


def test_each_finance_command_is_audited_and_queued_for_sync(desk: Store) -> None:
    no = held(desk)
    decide_credit(desk, order_no=no, release=True, user="chen", reason="ok")
    create_invoice(desk, order_nos=[shipped(desk)], user="chen")
    record_payment(desk, customer="C003", amount=100, user="chen")
    with desk.read() as s:
        audit = [r[0] for r in s.execute(text("SELECT command FROM audit_record ORDER BY id")).all()]
        outbox = [r[0] for r in s.execute(text("SELECT command FROM outbox ORDER BY seq")).all()]
    for command in ("decide_credit", "create_invoice", "record_payment"):
        assert audit.count(command) == outbox.count(command) == 1
