"""rules.toml: the shipped rules load and mean what they say; a broken file is refused with every problem,
each at its line, in both languages; and the rules really are data (a company's own file changes behaviour)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from orderdesk.errors import Refused
from orderdesk.guards import GUARD_NAMES
from orderdesk.rules import ChangeFacts, RulesError, default_rules_path, load_rules, parse_rules
from orderdesk.sales import enter_order
from orderdesk.store import Store
from orderdesk.workflow import default_workflow_path, load_workflow

WORKFLOW = load_workflow(default_workflow_path(), known_guards=GUARD_NAMES)
DEFAULT_TEXT = default_rules_path().read_text(encoding="utf-8")


def facts(**kw: object) -> ChangeFacts:
    base: dict[str, object] = {
        "fields": frozenset({"quantity"}),
        "state": "contract_signed",
        "production_started": False,
        "materials_issued": False,
        "quantity_change_pct": 10.0,
        "date_earlier": False,
        "amount_increase": 0,
    }
    base.update(kw)
    return ChangeFacts(**base)  # type: ignore[arg-type]


def test_the_shipped_rules_load_with_the_documented_defaults() -> None:
    r = load_rules(workflow=WORKFLOW)
    assert r.approval_threshold == 5_000_000 and r.approval_roles == {"finance"}
    assert r.duplicate_window == timedelta(hours=24)
    assert [x.id for x in r.duplicate_reasons] == [
        "sample_test",
        "urgent_restock",
        "promotion_stock",
        "other",
    ]
    assert [x.needs_text for x in r.duplicate_reasons] == [False, False, False, True]
    assert r.short_lead_days == 7 and r.linked_window == timedelta(minutes=30)
    assert r.credit_release_roles == {"finance"}
    assert set(r.change_classes) == {"minor", "major"} and r.change_default_class == "minor"
    assert r.change_classes["major"].approve_roles == {"supervisor"}
    assert "D03" in r.defect_codes and r.defect_codes["D03"].label_zh == "毛刺/锐边"
    assert r.qc_pass_transition == "pass_qc" and r.qc_fail_transition == "fail_qc"
    assert r.invoice_states == {"shipped", "in_transit", "delivered", "closed"}


@pytest.mark.parametrize(
    ("lot", "sample"), [(1, 1), (2, 2), (8, 2), (9, 3), (50, 8), (51, 13), (1200, 80), (200_000, 800)]
)
def test_sample_size_follows_the_sampling_plan(lot: int, sample: int) -> None:
    assert load_rules().sample_size(lot) == sample


def test_transit_days_by_region_then_by_the_address_province() -> None:
    r = load_rules()
    assert r.transit_days("江苏", "") == 1
    assert r.transit_days("", "新疆乌鲁木齐市天山区") == 7
    assert r.transit_days("", "深圳市南山区科技园") == 3
    assert r.transit_days("Atlantis", "Somewhere 1") == r.transit_default_days == 3


def test_payment_days_from_settlement_terms() -> None:
    r = load_rules()
    assert r.payment_days("月结60天") == 60
    assert r.payment_days("款到发货") == 0
    assert r.payment_days("Net 45") == 45
    assert r.payment_days("") == 30


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, "minor"),  # +10 % before production: minor
        ({"quantity_change_pct": 25.0}, "major"),  # over 20 %
        ({"production_started": True, "materials_issued": True}, "major"),
        ({"materials_issued": True}, "major"),  # quantities after materials were issued
        ({"fields": frozenset({"address"}), "materials_issued": True}, "minor"),  # an address change is fine
        ({"fields": frozenset({"sku"}), "quantity_change_pct": 100.0}, "major"),
        ({"fields": frozenset({"date"}), "date_earlier": True, "quantity_change_pct": 0.0}, "major"),
        ({"fields": frozenset({"date"}), "quantity_change_pct": 0.0}, "minor"),  # a later date
        ({"amount_increase": 5_000_001}, "major"),
    ],
)
def test_change_classification_rules(kw: dict[str, object], expected: str) -> None:
    assert load_rules().classify(facts(**kw)).id == expected


BROKEN = """
[approval]
threshold_cny = "lots"
roles = ["finanse"]

[duplicates]
window_hours = 0
[[duplicates.reasons]]
id = "sample_test"
label_en = "Sample"
label_zh = "样品"
[[duplicates.reasons]]
id = "sample_test"
label_en = "Again"
label_zh = "再来"

[lead_time]
short_days = 7

[transit]
default_days = 3

[linked_orders]
window_minutes = 30

[credit]
release_roles = ["finance"]

[change_requests]
default_class = "minor"
production_started_states = ["in_prodution"]
[change_requests.classes.minor]
label_en = "Minor"
label_zh = "一般"
approve_roles = ["sales"]
[[change_requests.rules]]
class = "huge"
fields = ["colour"]

[qc]
[[qc.defects]]
code = "D01"
label_en = "x"
label_zh = "x"
[[qc.sampling]]
up_to = 10
sample = 2
[[qc.sampling]]
up_to = 5
sample = 1

[finance]
tax_rate = 1.3
invoice_states = ["shipped"]

[extras]
x = 1
"""


def test_a_broken_rules_file_lists_every_problem_at_its_line() -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(BROKEN, source="rules.toml", workflow=WORKFLOW)
    problems = caught.value.problems
    text = caught.value.render("en")
    lines = BROKEN.splitlines()

    def line_of(snippet: str, start: int = 0) -> int:
        return next(i + 1 for i, ln in enumerate(lines) if i >= start and snippet in ln)

    expected = {
        line_of('threshold_cny = "lots"'): '"threshold_cny" must be a number',
        line_of('roles = ["finanse"]'): 'unknown role "finanse"',
        line_of("window_hours = 0"): '"window_hours" must be at least 1',
        line_of('id = "sample_test"', line_of('label_zh = "样品"')): '"sample_test" is used twice',
        line_of('"in_prodution"'): 'unknown state "in_prodution"',
        line_of('class = "huge"'): 'unknown class "huge"',
        line_of('fields = ["colour"]'): 'cannot be "colour"',
        line_of("up_to = 5"): '"up_to" must grow',
        line_of("tax_rate = 1.3"): "fraction",
        line_of("[extras]"): 'unknown section "extras"',
    }
    found = {p.line: str(p.message.render("en")) for p in problems}
    for line, needle in expected.items():
        assert line in found and needle in found[line], (line, needle, text)
    assert 'did you mean "finance"' in text and 'did you mean "in_production"' in text
    assert all(str(p).startswith(f"rules.toml:{p.line}:") for p in problems if p.line)
    # Every problem in Chinese too, with the same line numbers.
    zh = caught.value.render("zh")
    assert "未知" in zh and zh.count("\n") == text.count("\n")


def test_a_toml_syntax_error_names_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text(DEFAULT_TEXT.replace("short_days = 7", "short_days = = 7"), encoding="utf-8")
    with pytest.raises(RulesError) as caught:
        load_rules(bad)
    line = next(
        i + 1 for i, ln in enumerate(bad.read_text(encoding="utf-8").splitlines()) if "short_days" in ln
    )
    assert caught.value.problems[0].line == line and "not valid TOML" in str(caught.value)


def test_a_missing_rules_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path / "nope.toml")
    assert "cannot read the rules file" in str(caught.value)


def test_the_cli_reports_a_broken_rules_file_in_one_line(
    desk: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from orderdesk.cli import main

    bad = tmp_path / "rules.toml"
    bad.write_text(DEFAULT_TEXT.replace('roles = ["finance"]', 'roles = ["accounts"]', 1), encoding="utf-8")
    monkeypatch.setenv("ORDERDESK_RULES", str(bad))
    code = main(
        [
            "order",
            "create",
            "--customer",
            "C001",
            "--line",
            "HX-M8:1",
            "--user",
            "wang",
            "--db",
            str(desk.path),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and f"{bad}:" in err and 'unknown role "accounts"' in err and "Traceback" not in err


def test_rules_are_data_a_company_file_changes_the_threshold(
    desk: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 10 bolts are ¥15: under the shipped threshold, over a company's ¥10 one.
    assert not enter_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang").needs_approval
    own = tmp_path / "rules.toml"
    own.write_text(DEFAULT_TEXT.replace("threshold_cny = 50000", "threshold_cny = 10"), encoding="utf-8")
    monkeypatch.setenv("ORDERDESK_RULES", str(own))
    result = enter_order(desk, customer="C003", lines=[("HX-M8", 10)], user="wang")
    assert result.needs_approval and result.approval_roles == ("finance",)


def test_rules_are_data_a_company_file_changes_the_duplicate_window(
    desk: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: object
) -> None:
    own = tmp_path / "rules.toml"
    own.write_text(DEFAULT_TEXT.replace("window_hours = 24", "window_hours = 1"), encoding="utf-8")
    monkeypatch.setenv("ORDERDESK_RULES", str(own))
    enter_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang", promised=date(2026, 12, 30))
    clock.advance(hours=2)  # type: ignore[attr-defined]
    enter_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang", promised=date(2026, 12, 30))
    with pytest.raises(Refused):
        enter_order(desk, customer="C001", lines=[("HX-M8", 10)], user="wang", promised=date(2026, 12, 30))
