"""The workflow file: the default make-to-order workflow, the query API, and every validation rule.

Validation tests break a small valid workflow (``MINI``) one thing at a time and assert the file name, the
exact line and the words of the problem, because a business person fixing the file relies on all three.
"""

from __future__ import annotations

import ast
import itertools
import re
import string
import tomllib
from collections import deque
from pathlib import Path

import pytest

from orderdesk import i18n
from orderdesk import workflow as workflow_module
from orderdesk.workflow import (
    FIELDS,
    PREVIOUS,
    ROLES,
    Problem,
    Workflow,
    WorkflowError,
    default_workflow_path,
    load_workflow,
    parse_workflow,
)

GUARDS = frozenset(
    {
        "credit_ok",
        "tech_approved",
        "materials_kitted",
        "inspector_assigned",
        "qc_passed",
        "all_lines_scanned",
        "stock_available",
        "waybill_recorded",
        "has_lines",
    }
)
FIXTURES = Path(__file__).parent / "data" / "workflows"


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    # Messages render in the current language; pin it so assertions do not depend on the machine's locale.
    monkeypatch.setitem(i18n._current, "lang", "en")


@pytest.fixture(scope="module")
def wf() -> Workflow:
    return load_workflow(default_workflow_path(), known_guards=GUARDS)


def _role_block(role: str) -> str:
    return (
        f"[roles.{role}]\n"
        f'label_en = "{role.title()}"\n'
        'label_zh = "角色"\n'
        f'home = "{role}"\n'
        "see = [\n"
        '    "order_no",\n'
        '    "customer",\n'
        "]\n"
        'edit = ["customer"]\n\n'
    )


# A small valid workflow: new -> making -> done, with a hold (paused) and a cancel (dropped).
MINI = """\
[workflow]
id = "mini"
initial = "new"
ack_minutes = 10

[states.new]
label_en = "New"
label_zh = "新建"
owner = "sales"
timeout_hours = 24
escalation = ["supervisor"]
kind = "active"

[states.making]
label_en = "Making"
label_zh = "生产中"
owner = "planner"
timeout_hours = 48
escalation_minutes = 30
kind = "active"

[states.paused]
label_en = "Paused"
label_zh = "暂停"
owner = "supervisor"
timeout_hours = 0
kind = "hold"

[states.done]
label_en = "Done"
label_zh = "完成"
owner = "sales"
timeout_hours = 0
kind = "terminal"

[states.dropped]
label_en = "Dropped"
label_zh = "已取消"
owner = "sales"
timeout_hours = 0
kind = "terminal"

[[transitions]]
id = "start"
from = ["new"]
to = "making"
roles = ["planner"]
guards = ["has_lines"]
notify = ["supervisor"]
label_en = "Start"
label_zh = "开始"

[[transitions]]
id = "finish"
from = ["making"]
to = "done"
roles = ["planner", "admin"]
require_ack = true
label_en = "Finish"
label_zh = "完成"
route = "make_to_order"

[[transitions]]
id = "pause"
from = ["*"]
to = "paused"
roles = ["supervisor"]
label_en = "Pause"
label_zh = "暂停"

[[transitions]]
id = "unpause"
from = ["paused"]
to = "@previous"
roles = ["supervisor"]
label_en = "Resume"
label_zh = "恢复"

[[transitions]]
id = "drop"
from = ["*", "paused"]
to = "dropped"
roles = ["sales"]
label_en = "Drop"
label_zh = "取消"

""" + "".join(_role_block(role) for role in ROLES)


def parse(text: str, **kwargs: object) -> Workflow:
    return parse_workflow(text, source="bad.toml", known_guards=kwargs.pop("known_guards", GUARDS), **kwargs)


def errors(text: str, **kwargs: object) -> WorkflowError:
    with pytest.raises(WorkflowError) as info:
        parse(text, **kwargs)
    return info.value


def swap(text: str, old: str, new: str, count: int = 1) -> str:
    """Replace ``old`` (which must occur exactly ``count`` times) so a typo in the test cannot go unnoticed."""
    assert text.count(old) == count, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the ``nth`` occurrence of ``needle``."""
    pos = -1
    for _ in range(nth):
        pos = text.index(needle, pos + 1)
    return text.count("\n", 0, pos) + 1


def expect(err: WorkflowError, line: int | None, *fragments: str, file: str = "bad.toml") -> Problem:
    """The problem at ``line`` whose message contains every fragment; also checks the rendered prefix."""
    found = [p for p in err.problems if p.line == line and all(f in str(p.message) for f in fragments)]
    assert found, f"no problem at line {line} with {fragments} in:\n{err}"
    prefix = file if line is None else f"{file}:{line}"
    assert f"{prefix}: {found[0].message}" in str(err).splitlines()
    return found[0]


def only(err: WorkflowError) -> Problem:
    assert len(err.problems) == 1, str(err)
    return err.problems[0]


def shortest_path(wf: Workflow, start: str, goal: str, routes: set[str]) -> list[str]:
    """States on the shortest path using only transitions tagged with one of ``routes``."""
    queue: deque[list[str]] = deque([[start]])
    seen = {start}
    while queue:
        path = queue.popleft()
        if path[-1] == goal:
            return path
        for t in wf.transitions_from(path[-1]):
            if t.route in routes and t.to != PREVIOUS and t.to not in seen:
                seen.add(t.to)
                queue.append([*path, t.to])
    return []


# --------------------------------------------------------------------------------------------------------
# The default workflow
# --------------------------------------------------------------------------------------------------------


def test_mini_fixture_is_valid() -> None:
    wf = parse(MINI)
    assert list(wf.states) == ["new", "making", "paused", "done", "dropped"]
    assert wf.id == "mini" and wf.initial == "new" and wf.ack_minutes == 10
    assert wf.source == "bad.toml"


def test_default_workflow_loads_with_the_required_states(wf: Workflow) -> None:
    assert len(wf.states) >= 14
    expected = {
        "draft": "草稿",
        "contract_signed": "合同已签",
        "tech_review": "技术评审",
        "scheduled": "已排产",
        "materials_kitted": "物料齐套",
        "in_production": "生产中",
        "surface_treatment": "表面处理",
        "qc_pending": "待质检",
        "qc_failed": "质检不合格/返工",
        "ready_to_ship": "待发货",
        "shipped": "已发货",
        "in_transit": "运输中",
        "delivered": "已签收",
        "closed": "已关闭",
        "on_hold": "暂停",
        "cancelled": "已取消",
    }
    assert {sid: wf.states[sid].label_zh for sid in expected} == expected
    assert wf.initial == "draft"
    assert next(iter(wf.states)) == "draft"  # file order is kept


def test_every_state_role_and_transition_has_both_labels(wf: Workflow) -> None:
    for item in [*wf.states.values(), *wf.roles.values(), *wf.transitions]:
        assert item.label_en.strip() and item.label_zh.strip(), item
        assert item.label_en.isascii(), item
        assert not item.label_zh.isascii(), f"{item.id}: Chinese label {item.label_zh!r} has no Chinese"
        assert item.label("en") == item.label_en and item.label("zh") == item.label_zh


def test_default_kinds(wf: Workflow) -> None:
    assert {s.id for s in wf.states.values() if s.is_terminal} == {"closed", "cancelled"}
    assert {s.id for s in wf.states.values() if s.is_hold} == {"on_hold"}
    active = [s for s in wf.states.values() if s.kind == "active"]
    # Every active state can go overdue, or a stuck order would never alert anyone.
    assert all(s.timeout_hours > 0 for s in active)
    assert all(s.timeout_hours == 0 for s in wf.states.values() if s.is_terminal)


def test_main_make_to_order_route_in_order(wf: Workflow) -> None:
    route = [
        "draft",
        "contract_signed",
        "tech_review",
        "scheduled",
        "materials_kitted",
        "in_production",
        "surface_treatment",
        "qc_pending",
        "ready_to_ship",
        "shipped",
        "in_transit",
        "delivered",
        "closed",
    ]
    for here, there in itertools.pairwise(route):
        assert wf.find(here, there) is not None, f"no way from {here} to {there}"
    assert wf.find("qc_pending", "qc_failed") is not None
    assert wf.find("qc_failed", "in_production") is not None  # rework
    assert shortest_path(wf, "draft", "closed", {"make_to_order", "common"}) == route


def test_guards_on_the_main_route(wf: Workflow) -> None:
    def guards(state: str, target: str) -> set[str]:
        found = wf.find(state, target)
        assert found is not None
        return set(found.guards)

    assert guards("draft", "contract_signed") == {"credit_ok", "has_lines"}
    assert guards("tech_review", "scheduled") == {"tech_approved"}
    assert guards("scheduled", "materials_kitted") == {"materials_kitted"}
    assert guards("surface_treatment", "qc_pending") == {"inspector_assigned"}
    assert guards("qc_pending", "ready_to_ship") == {"qc_passed"}
    # QC is enforced on entering ready_to_ship, so stock orders can use the same ship step.
    assert guards("ready_to_ship", "shipped") == {"all_lines_scanned", "credit_ok", "waybill_recorded"}
    close = wf.find("delivered", "closed")
    assert close is not None and "finance" in close.roles


def test_from_stock_route_exists_and_is_shorter(wf: Workflow) -> None:
    pick = wf.find("contract_signed", "pick_from_stock")
    assert pick is not None
    assert pick.to == "ready_to_ship" and pick.route == "from_stock"
    assert set(pick.guards) == {"stock_available", "credit_ok"}
    stock = shortest_path(wf, "draft", "closed", {"from_stock", "common"})
    made = shortest_path(wf, "draft", "closed", {"make_to_order", "common"})
    assert stock and made
    assert len(stock) < len(made)
    assert "qc_pending" not in stock and "in_production" not in stock
    assert stock == [
        "draft",
        "contract_signed",
        "ready_to_ship",
        "shipped",
        "in_transit",
        "delivered",
        "closed",
    ]


def test_every_transition_has_a_known_route(wf: Workflow) -> None:
    assert {t.route for t in wf.transitions} == {"make_to_order", "from_stock", "common"}
    for tid in ("hold", "resume", "cancel"):
        assert next(t for t in wf.transitions if t.id == tid).route == "common"


def test_allowed_by_role(wf: Workflow) -> None:
    def ids(state: str, *roles: str) -> set[str]:
        return {t.id for t in wf.allowed(state, roles)}

    assert "ship" in ids("ready_to_ship", "warehouse")
    assert "cancel" not in ids("ready_to_ship", "warehouse")
    assert "hold" not in ids("ready_to_ship", "warehouse")
    assert ids("ready_to_ship", "sales") == {"cancel"}
    assert ids("qc_pending", "qc") == {"pass_qc", "fail_qc"}
    assert ids("delivered", "finance") == {"close", "hold"}
    assert ids("on_hold", "finance") == {"resume"}
    assert "cancel" in ids("on_hold", "supervisor")
    assert ids("closed", "admin") == set()  # nothing leaves a terminal state
    assert ids("draft", "qc") == set()
    # Several roles: the union of what each may do.
    assert ids("ready_to_ship", "warehouse", "sales") == {"ship", "cancel"}
    # A bare string is one role, not a set of letters.
    assert [t.id for t in wf.allowed("ready_to_ship", "warehouse")] == ["ship"]


def test_transitions_from_keeps_file_order(wf: Workflow) -> None:
    assert [t.id for t in wf.transitions_from("qc_pending")] == ["pass_qc", "fail_qc", "hold", "cancel"]
    assert wf.transitions_from("nowhere") == []


def test_field_permissions(wf: Workflow) -> None:
    warehouse = wf.roles["warehouse"]
    for name in (
        "lines.sku",
        "lines.name",
        "lines.quantity",
        "lines.scanned",
        "lines.shipped",
        "lines.batch",
        "ship_address",
        "waybill",
    ):
        assert name in warehouse.see, name
    assert not {"lines.unit_price", "amount", "credit_terms"} & warehouse.see
    finance = wf.roles["finance"]
    assert {"lines.unit_price", "amount", "credit_terms"} <= finance.see
    assert not {f for f in finance.edit if f.startswith("lines.")}
    assert wf.roles["admin"].see == FIELDS and wf.roles["supervisor"].see == FIELDS
    assert wf.roles["admin"].edit == FIELDS
    for role in wf.roles.values():
        assert role.edit <= role.see <= FIELDS, role.id
        assert role.home


def test_all_seven_roles(wf: Workflow) -> None:
    assert tuple(wf.roles) == ROLES
    assert len(ROLES) == 7
    assert wf.roles["planner"].label("zh") == "生产计划"


def test_states_and_escalation(wf: Workflow) -> None:
    for state in wf.states.values():
        assert state.owner in ROLES
        assert state.owner not in state.escalation, state.id
        assert all(r in ROLES for r in state.escalation)
    # escalation_minutes falls back to [workflow].ack_minutes unless the state overrides it.
    assert wf.ack_minutes == 15
    assert wf.states["draft"].escalation_minutes == 15
    assert wf.states["in_production"].escalation_minutes == 60
    mini = parse(MINI)
    assert mini.states["new"].escalation_minutes == 10
    assert mini.states["making"].escalation_minutes == 30
    assert mini.states["new"].escalation == ("supervisor",)
    assert mini.states["making"].escalation == ()
    assert isinstance(mini.states["new"].timeout_hours, float)


def test_wildcard_expands_to_active_states_only(wf: Workflow) -> None:
    active = frozenset(s.id for s in wf.states.values() if s.kind == "active")
    hold = next(t for t in wf.transitions if t.id == "hold")
    assert hold.sources == active
    assert "on_hold" not in hold.sources and "closed" not in hold.sources
    cancel = next(t for t in wf.transitions if t.id == "cancel")
    assert cancel.sources == active | {"on_hold"}  # "*" mixed with an explicit state
    mini = parse(MINI)
    pause = next(t for t in mini.transitions if t.id == "pause")
    assert pause.sources == frozenset({"new", "making"})


def test_previous(wf: Workflow) -> None:
    resume = wf.find("on_hold", "resume")
    assert resume is not None
    assert resume.to == PREVIOUS and resume.returns_to_previous
    assert resume.destination("in_production") == "in_production"
    with pytest.raises(ValueError):
        resume.destination(None)
    assert wf.find("on_hold", PREVIOUS) is resume
    assert wf.find("on_hold", "in_production") is None  # without knowing where the order was
    assert wf.find("on_hold", "in_production", previous="in_production") is resume
    ship = wf.find("ready_to_ship", "ship")
    assert ship is not None and ship.destination(None) == "shipped"


def test_find_by_transition_or_state_id(wf: Workflow) -> None:
    by_id = wf.find("ready_to_ship", "ship")
    by_state = wf.find("ready_to_ship", "shipped")
    assert by_id is not None and by_id is by_state
    assert wf.find("ready_to_ship", "closed") is None
    assert wf.find("draft", "ship") is None  # ship does not leave draft
    fail = wf.find("qc_pending", "qc_failed")
    assert fail is not None and fail.id == "fail_qc"


def test_state_label(wf: Workflow) -> None:
    assert wf.state_label("qc_failed", "zh") == "质检不合格/返工"
    assert wf.state_label("qc_failed", "en") == "QC failed / rework"
    assert wf.state_label("gone_state", "zh") == "gone_state"


def test_transition_fields_loaded() -> None:
    mini = parse(MINI)
    start, finish = mini.transitions[0], mini.transitions[1]
    assert start.guards == ("has_lines",) and start.notify == ("supervisor",)
    assert start.require_ack is False and start.route is None
    assert finish.require_ack is True and finish.route == "make_to_order"
    assert finish.roles == frozenset({"planner", "admin"})


def test_default_workflow_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = default_workflow_path()
    assert path.is_file() and path.name == "workflow.toml"
    # Installed: package data at orderdesk/_data wins over the repo's data/ folder.
    package = tmp_path / "site" / "orderdesk"
    (package / "_data").mkdir(parents=True)
    (package / "_data" / "workflow.toml").write_text("x", encoding="utf-8")
    (tmp_path / "site" / "data").mkdir()
    monkeypatch.setattr(workflow_module, "__file__", str(package / "workflow.py"))
    assert default_workflow_path() == package / "_data" / "workflow.toml"
    (package / "_data" / "workflow.toml").unlink()
    assert default_workflow_path() == tmp_path / "site" / "data" / "workflow.toml"


def test_default_workflow_needs_its_guards() -> None:
    text = default_workflow_path().read_text(encoding="utf-8")
    err = errors(text, known_guards=GUARDS - {"waybill_recorded"})
    problem = only(err)
    assert problem.line == line_of(text, '"waybill_recorded"]')
    assert 'transition "ship": unknown check "waybill_recorded"' in str(problem.message)


# --------------------------------------------------------------------------------------------------------
# Validation: reading and TOML syntax
# --------------------------------------------------------------------------------------------------------


def test_syntax_error_names_the_line() -> None:
    text = swap(MINI, 'to = "done"', 'to = "done')
    problem = only(errors(text))
    assert problem.line == line_of(text, 'to = "done')
    assert "not valid TOML" in str(problem.message)


def test_duplicate_key() -> None:
    text = swap(MINI, 'owner = "planner"\n', 'owner = "planner"\nowner = "qc"\n')
    err = errors(text)
    problem = only(err)
    assert problem.line == line_of(text, 'owner = "qc"')
    assert str(problem.message) == 'the setting "owner" is written twice in the same section; keep only one'


def test_duplicate_section() -> None:
    text = MINI + '[states.new]\nlabel_en = "Again"\n'
    problem = only(errors(text))
    assert problem.line == line_of(text, "[states.new]", nth=2)
    assert "[states.new] appears twice" in str(problem.message)


def test_unclosed_array_at_end_of_document() -> None:
    text = MINI + 'extra = ["a",\n'
    problem = only(errors(text))
    assert problem.line == text.count("\n")


def test_load_workflow_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(WorkflowError) as info:
        load_workflow(path, known_guards=GUARDS)
    problem = only(info.value)
    assert problem.file == str(path) and problem.line is None
    assert str(info.value).startswith(f"{path}: cannot read the workflow file")


def test_load_workflow_reports_the_path_and_accepts_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "company.toml"
    path.write_bytes(b"\xef\xbb\xbf" + MINI.encode("utf-8"))  # as Windows Notepad saves it
    assert load_workflow(path, known_guards=GUARDS).source == str(path)
    path.write_text(swap(MINI, "ack_minutes = 10", 'ack_minutes = "ten"'), encoding="utf-8")
    with pytest.raises(WorkflowError) as info:
        load_workflow(path, known_guards=GUARDS)
    assert str(info.value) == (
        f'{path}:4: the [workflow] section: "ack_minutes" must be a whole number, not "ten"'
    )


def test_load_workflow_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "gbk.toml"
    path.write_bytes(MINI.replace('"新建"', '"XX"').encode("utf-8").replace(b'"XX"', "新建".encode("gbk")))
    with pytest.raises(WorkflowError) as info:
        load_workflow(path, known_guards=GUARDS)
    problem = only(info.value)
    assert problem.line == line_of(MINI, '"新建"')
    assert "UTF-8" in str(problem.message)


# --------------------------------------------------------------------------------------------------------
# Validation: structure and types
# --------------------------------------------------------------------------------------------------------


def test_missing_required_key_points_at_the_section() -> None:
    text = swap(MINI, 'owner = "planner"\n', "")
    problem = only(errors(text))
    assert problem.line == line_of(text, "[states.making]")
    assert str(problem.message) == 'state "making": required setting "owner" is missing'


def test_missing_key_in_a_transition_block() -> None:
    text = swap(MINI, 'label_en = "Finish"\n', "")
    problem = only(errors(text))
    assert problem.line == line_of(text, "[[transitions]]", nth=2)
    assert str(problem.message) == 'transition "finish": required setting "label_en" is missing'


def test_missing_workflow_section() -> None:
    text = swap(MINI, '[workflow]\nid = "mini"\ninitial = "new"\nack_minutes = 10\n', "")
    err = errors(text)
    expect(err, None, "the [workflow] section is missing")
    assert str(err).splitlines()[0] == "bad.toml: the [workflow] section is missing"


def test_wrong_type() -> None:
    text = swap(MINI, "timeout_hours = 48", 'timeout_hours = "x"')
    problem = only(errors(text))
    assert problem.line == line_of(text, 'timeout_hours = "x"')
    assert str(problem.message) == 'state "making": "timeout_hours" must be a number, not "x"'


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("require_ack = true", 'require_ack = "yes"', '"require_ack" must be true or false, not "yes"'),
        ('roles = ["planner", "admin"]', 'roles = "planner"', '"roles" must be a list in square brackets'),
        ('label_zh = "完成"\nroute', "label_zh = 3\nroute", '"label_zh" must be text in quotes, not 3'),
        ('roles = ["planner", "admin"]', 'roles = ["planner", 7]', 'every entry of "roles" must be a name'),
        ('roles = ["planner", "admin"]', "roles = []", '"roles" must not be empty'),
        ('label_en = "Finish"', 'label_en = "  "', '"label_en" must not be empty'),
        ('roles = ["planner", "admin"]', 'roles = ["planner", "planner"]', '"planner" is listed twice'),
    ],
)
def test_wrong_types_in_a_transition(old: str, new: str, words: str) -> None:
    text = swap(MINI, old, new)
    problem = only(errors(text))
    assert problem.line == line_of(text, new.split("\n")[0])
    assert str(problem.message).startswith('transition "finish": ')
    assert words in str(problem.message)


def test_whole_number_required_for_minutes() -> None:
    text = swap(MINI, "escalation_minutes = 30", "escalation_minutes = 1.5")
    problem = only(errors(text))
    assert problem.line == line_of(text, "escalation_minutes = 1.5")
    assert "must be a whole number, not 1.5" in str(problem.message)


def test_negative_timeout() -> None:
    text = swap(MINI, "timeout_hours = 24", "timeout_hours = -1")
    problem = only(errors(text))
    assert problem.line == line_of(text, "timeout_hours = -1")
    assert str(problem.message) == (
        'state "new": "timeout_hours" cannot be negative (got -1); use 0 for no timeout'
    )


def test_zero_minutes() -> None:
    text = swap(MINI, "ack_minutes = 10", "ack_minutes = 0")
    problem = only(errors(text))
    assert problem.line == 4
    assert "at least 1 minute" in str(problem.message)


def test_unknown_kind_with_suggestion() -> None:
    text = swap(MINI, 'kind = "hold"', 'kind = "hodl"')
    err = errors(text)
    problem = expect(err, line_of(text, 'kind = "hodl"'), 'state "paused": "kind" cannot be "hodl"')
    assert str(problem.message).endswith('use one of: active, hold, terminal; did you mean "hold"?')


def test_unknown_setting_typo() -> None:
    text = swap(MINI, "timeout_hours = 48", "timout_hours = 48")
    err = errors(text)
    expect(
        err, line_of(text, "timout_hours"), 'unknown setting "timout_hours"', 'did you mean "timeout_hours"?'
    )
    expect(err, line_of(text, "[states.making]"), 'required setting "timeout_hours" is missing')
    assert len(err.problems) == 2


def test_unknown_section() -> None:
    text = MINI + '[state.extra]\nlabel_en = "x"\n'
    problem = only(errors(text))
    assert problem.line == line_of(text, "[state.extra]")
    assert 'unknown section "state"' in str(problem.message)
    assert 'did you mean "states"?' in str(problem.message)


def test_unknown_route() -> None:
    text = swap(MINI, 'route = "make_to_order"', 'route = "express"')
    problem = only(errors(text))
    assert problem.line == line_of(text, 'route = "express"')
    assert 'transition "finish": "route" cannot be "express"' in str(problem.message)


def test_reserved_state_id() -> None:
    text = (
        MINI
        + '[states."@later"]\nlabel_en = "L"\nlabel_zh = "稍后"\nowner = "sales"\ntimeout_hours = 0\nkind = "terminal"\n'
    )
    err = errors(text)
    expect(err, line_of(text, '[states."@later"]'), 'state id "@later" is reserved')


# --------------------------------------------------------------------------------------------------------
# Validation: names that must exist
# --------------------------------------------------------------------------------------------------------


def test_unknown_initial_state() -> None:
    text = swap(MINI, 'initial = "new"', 'initial = "nwe"')
    err = errors(text)
    expect(err, 3, 'initial state "nwe" is not defined (known states: new, making, paused, done, dropped)')
    assert 'did you mean "new"?' in str(err)


def test_initial_state_must_be_active() -> None:
    text = swap(MINI, 'initial = "new"', 'initial = "done"')
    err = errors(text)
    expect(err, 3, 'initial state "done" must have kind = "active", not "terminal"')


def test_unknown_to_state_in_the_default_file() -> None:
    text = swap(default_workflow_path().read_text(encoding="utf-8"), 'to = "shipped"', 'to = "shiped"')
    with pytest.raises(WorkflowError) as info:
        parse_workflow(text, source="workflow.toml", known_guards=GUARDS)
    line = line_of(text, 'to = "shiped"')
    first = str(info.value).splitlines()[0]
    assert first.startswith(
        f'workflow.toml:{line}: transition "ship" goes to unknown state "shiped" (known states: draft, '
    )
    assert first.endswith('did you mean "shipped"?')
    # The typo is the one problem reported: not also its consequence, that "shipped" can no longer be reached.
    assert len(info.value.problems) == 1


def test_unknown_from_state_points_at_the_element() -> None:
    text = swap(MINI, 'from = ["making"]', 'from = [\n    "making",\n    "makng",\n]')
    err = errors(text)
    expect(err, line_of(text, '"makng"'), 'transition "finish" starts from unknown state "makng"')


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        (
            'roles = ["planner"]',
            'roles = ["planer"]',
            'transition "start": "roles" names unknown role "planer"',
        ),
        (
            'notify = ["supervisor"]',
            'notify = ["boss"]',
            'transition "start": "notify" names unknown role "boss"',
        ),
        ('owner = "planner"', 'owner = "foreman"', 'state "making": "owner" names unknown role "foreman"'),
        (
            'escalation = ["supervisor"]',
            'escalation = ["supervisor", "ceo"]',
            'state "new": "escalation" names unknown role "ceo"',
        ),
    ],
)
def test_unknown_roles(old: str, new: str, words: str) -> None:
    text = swap(MINI, old, new)
    problem = only(errors(text))
    assert problem.line == line_of(text, new)
    assert str(problem.message).startswith(words)
    assert "(known roles: sales, qc, warehouse, finance, planner, supervisor, admin)" in str(problem.message)


def test_unknown_role_section() -> None:
    text = MINI + _role_block("driver")
    problem = only(errors(text))
    assert problem.line == line_of(text, "[roles.driver]")
    assert str(problem.message).startswith("[roles.driver] is not a known role")


def test_missing_role_section() -> None:
    text = swap(MINI, _role_block("finance"), "")
    problem = only(errors(text))
    assert problem.line == line_of(text, "[roles.sales]")
    assert str(problem.message).startswith('role "finance" has no [roles.finance] section')


def test_unknown_guard() -> None:
    text = swap(MINI, 'guards = ["has_lines"]', 'guards = ["has_lines", "paid_in_full"]')
    problem = only(errors(text))
    assert problem.line == line_of(text, '"paid_in_full"')
    assert str(problem.message).startswith('transition "start": unknown check "paid_in_full" in "guards"')


def test_known_guards_come_from_the_caller() -> None:
    text = swap(MINI, 'guards = ["has_lines"]', 'guards = ["paid_in_full"]')
    assert parse(text, known_guards={"paid_in_full"}).transitions[0].guards == ("paid_in_full",)


def test_unknown_field_in_a_multiline_list() -> None:
    block = _role_block("qc")
    text = swap(MINI, block, block.replace('    "customer",\n', '    "customer",\n    "custmer_phone",\n'))
    problem = only(errors(text))
    assert problem.line == line_of(text, '"custmer_phone"')
    assert str(problem.message).startswith('role "qc": "see" names unknown order field "custmer_phone"')
    assert 'did you mean "customer_phone"?' in str(problem.message)


def test_known_fields_come_from_the_caller() -> None:
    err = errors(MINI, known_fields={"order_no"})
    # Seven roles each list "customer" in see and in edit.
    assert len(err.problems) == 14
    assert all('unknown order field "customer"' in str(p.message) for p in err.problems)


def test_edit_must_be_a_subset_of_see() -> None:
    block = _role_block("warehouse")
    text = swap(
        MINI, block, block.replace('edit = ["customer"]', 'edit = ["customer", "order_no", "waybill"]')
    )
    problem = only(errors(text))
    assert problem.line == line_of(text, 'edit = ["customer", "order_no", "waybill"]')
    assert str(problem.message) == (
        'role "warehouse" may edit "waybill" but cannot see it; add "waybill" to "see" too'
    )


def test_star_means_every_field() -> None:
    block = _role_block("admin")
    text = swap(
        MINI,
        block,
        block.replace('edit = ["customer"]', 'see = ["*"]\nedit = ["*"]').replace(
            'see = [\n    "order_no",\n    "customer",\n]\n', ""
        ),
    )
    wf = parse(text)
    assert wf.roles["admin"].see == FIELDS == wf.roles["admin"].edit


def test_duplicate_transition_id() -> None:
    text = swap(MINI, 'id = "drop"', 'id = "pause"')
    problem = only(errors(text))
    assert problem.line == line_of(text, 'id = "pause"', nth=2)
    first = line_of(text, 'id = "pause"')
    assert str(problem.message) == (
        f'transition id "pause" is used twice (first at line {first}); give each transition its own id'
    )


# --------------------------------------------------------------------------------------------------------
# Validation: the shape of the graph
# --------------------------------------------------------------------------------------------------------


def test_unreachable_state() -> None:
    text = MINI + (
        '[states.limbo]\nlabel_en = "Limbo"\nlabel_zh = "悬置"\nowner = "sales"\ntimeout_hours = 1\nkind = "active"\n'
        '\n[[transitions]]\nid = "leave_limbo"\nfrom = ["limbo"]\nto = "done"\nroles = ["sales"]\n'
        'label_en = "Leave"\nlabel_zh = "离开"\n'
    )
    # "limbo" is active, so "*" lets it be paused and dropped, but nothing leads into it.
    problem = only(errors(text))
    assert problem.line == line_of(text, "[states.limbo]")
    assert str(problem.message) == (
        'state "limbo" can never be reached from the initial state "new"; add a transition into it or delete it'
    )


def test_previous_reaches_nothing_new() -> None:
    # "making" is only entered by resuming a hold; @previous cannot lead anywhere the order has not been.
    text = swap(MINI, 'from = ["new"]\nto = "making"', 'from = ["paused"]\nto = "@previous"')
    err = errors(text)
    expect(err, line_of(text, "[states.making]"), 'state "making" can never be reached')


def test_hold_counts_as_returning_to_where_it_was_entered_from() -> None:
    # Nothing but "unpause" leaves "paused": it still has a way out and can finish (via the states it returns to).
    text = swap(MINI, 'from = ["*", "paused"]', 'from = ["*"]')
    wf = parse(text)
    assert wf.transitions_from("paused")[0].id == "unpause"


def test_state_with_no_way_out() -> None:
    text = swap(MINI, 'from = ["making"]', 'from = ["new"]')
    text = swap(text, 'from = ["*"]', 'from = ["new"]')
    text = swap(text, 'from = ["*", "paused"]', 'from = ["new", "paused"]')
    problem = only(errors(text))
    assert problem.line == line_of(text, "[states.making]")
    assert str(problem.message) == (
        'state "making" has no way out; add a transition from it or set kind = "terminal"'
    )


def test_state_that_can_never_finish() -> None:
    # making <-> review loop forever: each has a way out, but neither leads to a final state.
    text = swap(MINI, 'from = ["making"]\nto = "done"', 'from = ["new"]\nto = "done"')
    text = swap(text, 'from = ["*"]', 'from = ["new"]')
    text = swap(text, 'from = ["*", "paused"]', 'from = ["new", "paused"]')
    text += (
        '[states.review]\nlabel_en = "Review"\nlabel_zh = "评审"\nowner = "qc"\ntimeout_hours = 1\nkind = "active"\n'
        '\n[[transitions]]\nid = "review"\nfrom = ["making"]\nto = "review"\nroles = ["qc"]\n'
        'label_en = "Review"\nlabel_zh = "评审"\n'
        '\n[[transitions]]\nid = "redo"\nfrom = ["review"]\nto = "making"\nroles = ["qc"]\n'
        'label_en = "Redo"\nlabel_zh = "重做"\n'
    )
    err = errors(text)
    assert len(err.problems) == 2, str(err)
    expect(err, line_of(text, "[states.making]"), 'orders in state "making" can never finish')
    expect(err, line_of(text, "[states.review]"), 'orders in state "review" can never finish')


def test_no_terminal_state() -> None:
    text = swap(MINI, 'kind = "terminal"', 'kind = "active"', count=2)
    problem = only(errors(text))
    assert problem.line == line_of(text, "[states.new]")  # the first state: where [states] begins
    assert 'no state has kind = "terminal"' in str(problem.message)


def test_previous_only_from_hold_states() -> None:
    text = swap(MINI, 'from = ["paused"]\nto = "@previous"', 'from = ["paused", "making"]\nto = "@previous"')
    problem = only(errors(text))
    assert problem.line == line_of(text, 'to = "@previous"')
    assert str(problem.message) == (
        'transition "unpause" goes to "@previous", which only works from hold states, but it also starts from: making'
    )


def test_nothing_leaves_a_terminal_state() -> None:
    text = swap(MINI, 'from = ["making"]', 'from = ["making", "dropped"]')
    problem = only(errors(text))
    assert problem.line == line_of(text, 'from = ["making", "dropped"]')
    assert 'starts from final state "dropped"' in str(problem.message)


def test_terminal_state_has_no_timeout() -> None:
    text = swap(
        MINI,
        'label_zh = "完成"\nowner = "sales"\ntimeout_hours = 0',
        'label_zh = "完成"\nowner = "sales"\ntimeout_hours = 5',
    )
    problem = only(errors(text))
    assert problem.line == line_of(text, "timeout_hours = 5")
    assert '"timeout_hours" must be 0' in str(problem.message)


# --------------------------------------------------------------------------------------------------------
# Many problems at once, line index details, Chinese
# --------------------------------------------------------------------------------------------------------


def test_fixture_file_reports_every_problem_in_file_order() -> None:
    path = FIXTURES / "many_problems.toml"
    text = path.read_text(encoding="utf-8")
    with pytest.raises(WorkflowError) as info:
        load_workflow(path, known_guards=GUARDS)
    err = info.value
    file = str(path)
    expect(err, line_of(text, "ack_minutes"), '"ack_minutes" must be a whole number', file=file)
    expect(err, line_of(text, 'owner = "boss"'), 'unknown role "boss"', file=file)
    expect(err, line_of(text, "timeout_hours = -3"), "cannot be negative", file=file)
    expect(err, line_of(text, 'kind = "final"'), '"kind" cannot be "final"', file=file)
    expect(
        err, line_of(text, '"lines.unit_price"'), 'may edit "lines.unit_price" but cannot see it', file=file
    )
    expect(err, line_of(text, '"credit_check"'), 'unknown check "credit_check"', file=file)
    expect(err, line_of(text, 'to = "shiped"'), 'goes to unknown state "shiped"', file=file)
    expect(err, line_of(text, 'id = "ship"', nth=2), 'transition id "ship" is used twice', file=file)
    expect(err, line_of(text, "[roles.sales]"), 'role "admin" has no [roles.admin] section', file=file)
    lines = [p.line for p in err.problems]
    assert lines == sorted(lines)
    assert len(str(err).splitlines()) == len(err.problems) >= 9
    assert all(row.startswith(f"{file}:") for row in str(err).splitlines())


def test_inline_transitions_and_dotted_keys() -> None:
    # The same workflow written in another legal TOML style still gets exact lines.
    text = swap(
        MINI, '[states.making]\nlabel_en = "Making"\n', '[states]\nmaking.label_en = "Making"\nmaking.'
    )
    text = text.replace('making.label_zh = "生产中"\nowner', 'making.label_zh = "生产中"\nmaking.owner')
    text = text.replace(
        'making.owner = "planner"\ntimeout_hours = 48\nescalation_minutes = 30\nkind = "active"',
        'making.owner = "planner"\nmaking.timeout_hours = 48\nmaking.escalation_minutes = 30\nmaking.kind = "actv"',
    )
    start, end = text.index("[[transitions]]"), text.index("[roles.sales]")
    inline = (
        "transitions = [\n"
        '  { id = "start", from = ["new"], to = "making", roles = ["planner"], label_en = "S", label_zh = "开" },\n'
        '  { id = "finish", from = ["making"], to = "dne", roles = ["planner"], label_en = "F", label_zh = "完" },\n'
        '  { id = "pause", from = ["*"], to = "paused", roles = ["qc"], label_en = "P", label_zh = "停" },\n'
        '  { id = "go", from = ["paused"], to = "@previous", roles = ["qc"], label_en = "G", label_zh = "走" },\n'
        '  { id = "drop", from = ["*", "paused"], to = "dropped", roles = ["qc"], label_en = "D", label_zh = "删" },\n'
        "]\n\n"
    )
    # Top-level keys must come before any table, so move the inline list to the top of the file.
    text = inline + text[:start] + text[end:]
    err = errors(text)
    expect(err, line_of(text, 'making.kind = "actv"'), 'state "making": "kind" cannot be "actv"')
    expect(err, line_of(text, 'to = "dne"'), 'transition "finish" goes to unknown state "dne"')


def test_line_index_skips_strings_and_comments() -> None:
    text = swap(
        MINI,
        'label_en = "Start"\n',
        'label_en = """Start\n[states.fake]\nto = "x" # not a key\n"""  # ] } [\n',
    )
    text = swap(text, 'to = "making"', "to = 'mking' # typo [")
    problem = only(errors(text))
    assert problem.line == line_of(text, "to = 'mking'")


def test_windows_line_endings(tmp_path: Path) -> None:
    text = swap(MINI, 'to = "making"', 'to = "mking"')
    path = tmp_path / "crlf.toml"
    path.write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    with pytest.raises(WorkflowError) as info:
        load_workflow(path, known_guards=GUARDS)
    assert only(info.value).line == line_of(text, 'to = "mking"')


def test_chinese_messages() -> None:
    text = swap(MINI, 'to = "making"', 'to = "mking"')
    err = errors(text)
    line = line_of(text, 'to = "mking"')
    zh = err.render("zh").splitlines()
    assert f'bad.toml:{line}: 流转 "start" 的目标状态 "mking" 不存在' in zh[0]
    assert '是否应为 "making"？' in zh[0]
    # str() follows the current language.
    i18n.set_language("zh")
    assert str(err).splitlines()[0] == zh[0]
    assert err.render("en").splitlines()[0].startswith(f'bad.toml:{line}: transition "start" goes to')


def _message_ids() -> list[str]:
    tree = ast.parse(Path(workflow_module.__file__).read_text(encoding="utf-8"))
    ids = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "msg":
            first = node.args[0]
            assert isinstance(first, ast.Constant), "message ids must be literal strings"
            ids.append(first.value)
    return ids


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_message_has_a_chinese_translation() -> None:
    path = Path(workflow_module.__file__).parent / "locales" / "zh" / "workflow.toml"
    catalog = tomllib.loads(path.read_text(encoding="utf-8"))
    ids = _message_ids()
    assert len(ids) > 30
    missing = [i for i in ids if i not in catalog]
    assert not missing
    for msgid in ids:
        assert _placeholders(catalog[msgid]) == _placeholders(msgid), msgid
        assert re.search(r"[\u4e00-\u9fff]", catalog[msgid]) or msgid in {"true or false"}, msgid
    assert not set(catalog) - set(ids), "stale translations"
