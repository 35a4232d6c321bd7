"""QC through the domain commands and the CLI: inspections per line and per sample, defect codes, sampling,
fail → rework → re-inspection with the history kept, the queue, first-pass yield, and who may inspect."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import text

from orderdesk.cli import main
from orderdesk.clock import FixedClock
from orderdesk.errors import Refused
from orderdesk.orders import move_order, show_order
from orderdesk.qc import (
    UNASSIGNED,
    Verdict,
    first_pass_yield,
    inspection_history,
    inspection_plan,
    qc_queue,
    record_inspection,
)
from orderdesk.sales import enter_order
from orderdesk.store import Store
from tests.desks_support import to_qc_pending


def new_order(desk: Store, lines: list[tuple[str, int]] | None = None, **kw: object) -> str:
    return enter_order(
        desk,
        customer="C001",
        lines=lines or [("HX-M8", 100), ("FL-DN50", 10)],
        user="wang",
        promised=date(2026, 12, 30),
        **kw,  # type: ignore[arg-type]
    ).detail.order_no


@pytest.fixture
def awaiting(desk: Store) -> str:
    no = new_order(desk)
    to_qc_pending(desk, no)
    return no


def refused(fn, **kw):  # type: ignore[no-untyped-def]
    with pytest.raises(Refused) as caught:
        fn(**kw)
    return caught.value


def passes(*lines: int | str) -> list[Verdict]:
    return [Verdict(line=ln, passed=True) for ln in lines]


def test_passing_every_line_makes_the_order_ready_to_ship(desk: Store, awaiting: str) -> None:
    view = record_inspection(desk, order_no=awaiting, user="zhou", verdicts=passes(1, 2), notes="外观良好")
    assert (view.seq, view.result, view.inspector) == (1, "passed", "zhou")
    assert [(f.sku, f.samples, f.passed) for f in view.findings] == [
        ("HX-M8", 20, True),
        ("FL-DN50", 3, True),
    ]
    detail = show_order(desk, awaiting)
    assert detail.state == "ready_to_ship" and detail.qc_result == "passed"
    last = detail.timeline[-1]
    assert last.command == "record_inspection" and last.detail["to"] == "ready_to_ship"
    assert last.detail["transition"] == "pass_qc" and "warehouse" in last.detail["notify"]


def test_a_failed_line_sends_the_order_to_rework_with_the_reason(desk: Store, awaiting: str) -> None:
    view = record_inspection(
        desk,
        order_no=awaiting,
        user="zhou",
        verdicts=[
            Verdict(line="HX-M8", passed=True),
            Verdict(
                line="FL-DN50", passed=False, defects=("d03", "D02"), measurements="Ø50.4", note="三件有毛刺"
            ),
        ],
    )
    assert view.result == "failed" and view.reason == "FL-DN50: D03,D02"
    assert view.findings[1].defects == ("D03", "D02") and view.findings[1].measurements == "Ø50.4"
    detail = show_order(desk, awaiting)
    assert detail.state == "qc_failed" and detail.qc_result == "failed"
    assert detail.timeline[-1].detail["require_ack"] is True


def test_rework_and_re_inspection_keep_the_whole_history(desk: Store, awaiting: str) -> None:
    record_inspection(
        desk,
        order_no=awaiting,
        user="zhou",
        verdicts=[Verdict(1, True), Verdict(2, False, defects=("D04",))],
        reason="涂层起皮",
    )
    move_order(desk, order_no=awaiting, to="rework", user="zhao")
    move_order(desk, order_no=awaiting, to="to_surface_treatment", user="zhao")
    move_order(desk, order_no=awaiting, to="submit_qc", user="zhao")
    assert [i.inspections for i in qc_queue(desk) if i.order_no == awaiting] == [1]
    record_inspection(desk, order_no=awaiting, user="zhou", verdicts=passes(1, 2))
    history = inspection_history(desk, awaiting)
    assert [(v.seq, v.result, v.reason) for v in history] == [(1, "failed", "涂层起皮"), (2, "passed", "")]
    assert inspection_plan(desk, awaiting).history == tuple(history)
    assert show_order(desk, awaiting).state == "ready_to_ship"


def test_per_sample_verdicts(desk: Store) -> None:
    no = new_order(desk, lines=[("FL-DN50", 5)])  # a lot of 5: the plan asks for 2 samples
    to_qc_pending(desk, no)
    view = record_inspection(
        desk,
        order_no=no,
        user="zhou",
        verdicts=[Verdict("FL-DN50", True, sample_no=1), Verdict("FL-DN50", True, sample_no=2)],
    )
    assert [(f.sample_no, f.samples) for f in view.findings] == [(1, 1), (2, 1)] and view.result == "passed"


@pytest.mark.parametrize(
    ("verdicts", "code"),
    [
        ([Verdict(1, True)], "line_missing"),
        ([Verdict(1, True), Verdict(2, False)], "defect_needed"),
        ([Verdict(1, True), Verdict(2, False, defects=("X99",))], "unknown_defect"),
        ([Verdict(1, True), Verdict(9, True)], "unknown_line"),
        ([Verdict(1, True, samples=5), Verdict(2, True)], "sample_too_small"),  # the plan asks for 20 of 100
        ([Verdict(1, True), Verdict(2, True, samples=11)], "bad_value"),  # more samples than the line has
        ([Verdict(1, True), Verdict(2, True, sample_no=1), Verdict(2, True, sample_no=1)], "bad_value"),
    ],
)
def test_bad_inspections_are_refused_and_change_nothing(
    desk: Store, awaiting: str, verdicts: list[Verdict], code: str
) -> None:
    assert (
        refused(record_inspection, store=desk, order_no=awaiting, user="zhou", verdicts=verdicts).code == code
    )
    assert show_order(desk, awaiting).state == "qc_pending" and inspection_history(desk, awaiting) == []


def test_a_failure_does_not_need_the_full_sample(desk: Store, awaiting: str) -> None:
    # Two bad flanges are enough to fail the lot; the sampling plan only guards a pass.
    view = record_inspection(
        desk,
        order_no=awaiting,
        user="zhou",
        verdicts=[Verdict(1, True), Verdict(2, False, samples=2, defects=("D01",))],
    )
    assert view.result == "failed"


def test_an_order_not_awaiting_qc_cannot_be_inspected(desk: Store) -> None:
    no = new_order(desk)
    err = refused(record_inspection, store=desk, order_no=no, user="zhou", verdicts=passes(1, 2))
    assert err.code == "not_awaiting_qc" and "Draft" in str(err)


@pytest.mark.parametrize("user", ["wang", "chen", "liu"])
def test_only_qc_may_record_an_inspection(desk: Store, awaiting: str, user: str) -> None:
    # The qc_result field is QC's to edit (workflow [roles]); the command checks it, not just the screen.
    err = refused(record_inspection, store=desk, order_no=awaiting, user=user, verdicts=passes(1, 2))
    assert err.code == "forbidden_field" and "qc_result" in str(err)


def test_a_stale_version_is_refused(desk: Store, awaiting: str) -> None:
    version = show_order(desk, awaiting).version
    move_order(desk, order_no=awaiting, to="hold", user="sun")
    move_order(desk, order_no=awaiting, to="resume", user="sun")
    err = refused(
        record_inspection,
        store=desk,
        order_no=awaiting,
        user="zhou",
        verdicts=passes(1, 2),
        expected_version=version,
    )
    assert err.code == "stale_version"


def test_the_queue_is_longest_waiting_first_and_filters_by_inspector(desk: Store, clock: FixedClock) -> None:
    first = new_order(desk)
    to_qc_pending(desk, first)
    clock.advance(hours=5)
    second = new_order(desk, lines=[("PT-RED", 4)], rush=True)
    from orderdesk.orders import edit_order

    edit_order(desk, order_no=second, changes={"tech_approved": True, "materials_kitted": True}, user="zhao")
    to_qc_pending(desk, second, inspector=None)
    # Unassigned: an order can be submitted only with an inspector, so assign one and then clear it.
    edit_order(desk, order_no=second, changes={"inspector": "zhou"}, user="zhou")
    move_order(desk, order_no=second, to="submit_qc", user="zhao")
    edit_order(desk, order_no=second, changes={"inspector": ""}, user="zhou")
    clock.advance(hours=1)
    queue = qc_queue(desk)
    assert [i.order_no for i in queue] == [first, second]
    assert queue[0].waiting == timedelta(hours=6) and queue[0].inspector == "zhou" and queue[0].lines == 2
    assert queue[1].rush and queue[1].inspector == ""
    assert [i.order_no for i in qc_queue(desk, inspector="zhou")] == [first]
    assert [i.order_no for i in qc_queue(desk, inspector=UNASSIGNED)] == [second]


def test_first_pass_yield_by_product_and_period(desk: Store, clock: FixedClock) -> None:
    a = new_order(desk)  # HX-M8 + FL-DN50, inspected 2026-11-20: FL fails first time
    to_qc_pending(desk, a)
    record_inspection(
        desk, order_no=a, user="zhou", verdicts=[Verdict(1, True), Verdict(2, False, defects=("D01",))]
    )
    move_order(desk, order_no=a, to="rework", user="zhao")
    move_order(desk, order_no=a, to="to_surface_treatment", user="zhao")
    move_order(desk, order_no=a, to="submit_qc", user="zhao")
    record_inspection(desk, order_no=a, user="zhou", verdicts=passes(1, 2))  # a re-inspection: not first pass
    clock.advance(days=15)  # 2026-12-05
    b = new_order(desk, duplicate_reason="sample_test")
    to_qc_pending(desk, b)
    record_inspection(desk, order_no=b, user="zhou", verdicts=passes(1, 2))
    rows = {
        (r.period, r.sku): (r.inspected, r.passed_first)
        for r in first_pass_yield(desk, since=date(2026, 11, 1), until=date(2026, 12, 31))
    }
    assert rows == {
        ("2026-11", ""): (2, 1),
        ("2026-11", "HX-M8"): (1, 1),
        ("2026-11", "FL-DN50"): (1, 0),
        ("2026-12", ""): (2, 2),
        ("2026-12", "HX-M8"): (1, 1),
        ("2026-12", "FL-DN50"): (1, 1),
    }
    whole = {
        r.sku: r.yield_pct
        for r in first_pass_yield(desk, since=date(2026, 11, 1), until=date(2026, 12, 31), by="all")
    }
    assert whole == {"": 75.0, "HX-M8": 100.0, "FL-DN50": 50.0}
    assert first_pass_yield(desk, since=date(2026, 12, 6), until=date(2026, 12, 31)) == []


# -- the command line ------------------------------------------------------------------------------------
def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_qc_record_pass_through_the_cli(
    desk: Store, awaiting: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(
        capsys,
        "qc",
        "record",
        awaiting,
        "--pass",
        "--user",
        "zhou",
        "--measure",
        "HX-M8=Ø8.01",
        "--db",
        desk.path,
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["result"] == "passed" and data["findings"][0]["measurements"] == "Ø8.01"
    assert show_order(desk, awaiting).state == "ready_to_ship"


def test_qc_record_fail_through_the_cli(
    desk: Store, awaiting: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(
        capsys,
        "qc",
        "record",
        awaiting,
        "--fail",
        "--defect",
        "FL-DN50=D03",
        "--user",
        "zhou",
        "--db",
        desk.path,
    )
    assert code == 0, err
    assert "failed" in out and "FL-DN50: D03" in out
    code, out, _ = cli(capsys, "qc", "history", awaiting, "--db", desk.path, "--json")
    assert [v["result"] for v in json.loads(out)] == ["failed"]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--user", "zhou"], 2, "--pass or --fail"),
        (["--fail", "--user", "zhou"], 2, "--defect"),
        (["--pass", "--defect", "HX-M8=D01", "--user", "zhou"], 2, "--fail"),
        (["--fail", "--defect", "HX-M8=D99", "--user", "zhou"], 1, "Unknown defect code D99"),
        (["--pass", "--user", "wang"], 1, "may not change qc_result"),
        (["--pass", "--samples", "HX-M8=3", "--user", "zhou"], 1, "3 of 20 samples"),
    ],
)
def test_qc_record_errors_are_one_line(
    desk: Store, awaiting: str, capsys: pytest.CaptureFixture[str], args: list[str], code: int, needle: str
) -> None:
    got, out, err = cli(capsys, "qc", "record", awaiting, *args, "--db", desk.path)
    assert got == code and needle in err and err.count("\n") == 1, (out, err)
    assert show_order(desk, awaiting).state == "qc_pending"


def test_qc_queue_yield_and_defects_in_the_cli(
    desk: Store, awaiting: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "qc", "queue", "--db", desk.path, "--json")
    assert code == 0 and json.loads(out)[0]["order_no"] == awaiting
    cli(capsys, "qc", "record", awaiting, "--pass", "--user", "zhou", "--db", desk.path)
    with desk.read() as s:
        day = s.execute(text("SELECT at FROM qc_inspection")).scalar()
    assert day is not None
    code, out, _ = cli(
        capsys,
        "qc",
        "yield",
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-30",
        "--by",
        "all",
        "--db",
        desk.path,
        "--json",
    )
    assert code == 0 and json.loads(out)[0] == {
        "period": "all",
        "sku": None,
        "name": "",
        "inspected": 2,
        "passed_first": 2,
        "yield_pct": 100.0,
    }
    code, out, _ = cli(capsys, "--lang", "zh", "qc", "defects", "--db", desk.path)
    assert code == 0 and "D03  毛刺/锐边" in out
