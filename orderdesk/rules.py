"""The business rules of the sales, QC and finance desks as data: load, validate and query ``rules.toml``.

Thresholds (approval amount, duplicate window, short lead time, linked-order window), the change-request
classes and the rules that pick them, region transit days, defect codes, the QC sampling plan and the
finance settings live in ``data/rules.toml`` (or the file ``ORDERDESK_RULES`` names), so the business can
change them without code. A broken file is refused with every problem at once, each as ``file:line:
problem`` in the reader's language, exactly like the workflow file.

Only the standard library; no Textual, no SQL.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from orderdesk.i18n import Label, Msg, msg
from orderdesk.workflow import (
    _MISSING,
    ROLES,
    Workflow,
    WorkflowError,
    _Checker,
    _known,
    _LineIndex,
    _show,
    _syntax_problem,
    read_config_text,
)

CHANGE_FIELDS: tuple[str, ...] = ("quantity", "sku", "address", "date")
# The order field (workflow ``see``/``edit``) a person must be allowed to edit to ask for each change.
CHANGE_FIELD_PERMISSION: dict[str, str] = {
    "quantity": "lines.quantity",
    "sku": "lines.sku",
    "address": "ship_address",
    "date": "promised_date",
}
PROMISE_REASON_MODES = ("always", "earlier", "never")
AGEING_BASES = ("invoice_date", "due_date")
CSV_ENCODINGS = ("utf-8-sig", "utf-8", "gbk")
_CODE = re.compile(r"[A-Za-z0-9_-]{1,20}")

_SECTIONS = (
    "approval",
    "duplicates",
    "lead_time",
    "transit",
    "linked_orders",
    "credit",
    "change_requests",
    "qc",
    "finance",
)


class RulesError(WorkflowError):
    """A rules file that cannot be used; ``problems`` lists everything wrong with it, in file order.

    A ``WorkflowError`` so every place that reports a broken workflow file (CLI, login screen) reports a
    broken rules file the same way.
    """


@dataclass(frozen=True)
class Choice:
    """A named option with labels in both languages (a duplicate reason, a change class, a defect code)."""

    id: str
    label_en: str
    label_zh: str

    @property
    def label(self) -> Label:
        return Label(self.label_en, self.label_zh)


@dataclass(frozen=True)
class DuplicateReason(Choice):
    needs_text: bool = False  # "other": the person must say what


@dataclass(frozen=True)
class ChangeClass(Choice):
    approve_roles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DefectCode(Choice):
    pass


@dataclass(frozen=True)
class ChangeFacts:
    """What a change request changes and what has already happened to the order (its impact)."""

    fields: frozenset[str]
    state: str
    production_started: bool
    materials_issued: bool
    quantity_change_pct: float  # the largest change of any line, in percent (a new or removed line = 100)
    date_earlier: bool  # the promised date is pulled in
    amount_increase: int  # fen (negative when the order gets smaller)


@dataclass(frozen=True)
class ChangeRule:
    """``class`` applies when every condition given matches (conditions left out match anything)."""

    change_class: str
    line: int | None
    fields: frozenset[str] | None = None
    states: frozenset[str] | None = None
    production_started: bool | None = None
    materials_issued: bool | None = None
    quantity_change_over_pct: float | None = None
    date_earlier: bool | None = None
    amount_increase_over: int | None = None  # fen

    def matches(self, facts: ChangeFacts) -> bool:
        if self.fields is not None and not (self.fields & facts.fields):
            return False
        if self.states is not None and facts.state not in self.states:
            return False
        if self.production_started is not None and facts.production_started != self.production_started:
            return False
        if self.materials_issued is not None and facts.materials_issued != self.materials_issued:
            return False
        if self.quantity_change_over_pct is not None and not (
            facts.quantity_change_pct > self.quantity_change_over_pct
        ):
            return False
        if self.date_earlier is not None and facts.date_earlier != self.date_earlier:
            return False
        return self.amount_increase_over is None or facts.amount_increase > self.amount_increase_over


@dataclass(frozen=True)
class SamplingStep:
    up_to: int | None  # lot size up to and including this; None = any larger lot
    sample: int


@dataclass(frozen=True)
class Rules:
    """The validated rules. Money in fen, durations as ``timedelta``."""

    source: str
    approval_threshold: int
    approval_roles: frozenset[str]
    duplicate_window: timedelta
    duplicate_reasons: tuple[DuplicateReason, ...]
    short_lead_days: int
    stock_handling_days: int
    promised_change_reason: str  # always | earlier | never
    transit_default_days: int
    transit_regions: dict[str, int]
    linked_window: timedelta
    credit_release_roles: frozenset[str]
    change_default_class: str
    change_classes: dict[str, ChangeClass]
    change_rules: tuple[ChangeRule, ...]
    self_approval: bool
    production_started_states: frozenset[str]
    materials_issued_states: frozenset[str]
    qc_pass_transition: str
    qc_fail_transition: str
    qc_enforce_sample_size: bool
    defect_codes: dict[str, DefectCode]
    sampling: tuple[SamplingStep, ...]
    tax_rate: Decimal
    prices_include_tax: bool
    invoice_states: frozenset[str]
    default_terms_days: int
    terms_days: dict[str, int]
    ageing_basis: str
    export_accounts: dict[str, str] = field(default_factory=dict)
    csv_encoding: str = "utf-8-sig"

    # -- queries -----------------------------------------------------------------------------------------
    def duplicate_reason(self, reason_id: str) -> DuplicateReason | None:
        return next((r for r in self.duplicate_reasons if r.id == reason_id), None)

    def transit_days(self, region: str, address: str = "") -> int:
        """Days to the customer's region; an empty region is looked up in the address (its province)."""
        region = region.strip()
        if region in self.transit_regions:
            return self.transit_regions[region]
        for name, days in self.transit_regions.items():
            if (region and region.startswith(name)) or (address and address.strip().startswith(name)):
                return days
        return self.transit_default_days

    def classify(self, facts: ChangeFacts) -> ChangeClass:
        """The class of a change: the first rule that matches, else the default class."""
        for rule in self.change_rules:
            if rule.matches(facts):
                return self.change_classes[rule.change_class]
        return self.change_classes[self.change_default_class]

    def sample_size(self, lot: int) -> int:
        """How many units of a line of ``lot`` units to inspect (never more than the lot)."""
        for step in self.sampling:
            if step.up_to is None or lot <= step.up_to:
                return max(1, min(step.sample, lot))
        return max(1, lot)

    def payment_days(self, terms: str) -> int:
        """Days to pay under settlement ``terms`` text: a named term, else a number in it, else default."""
        text = terms.strip()
        if text in self.terms_days:
            return self.terms_days[text]
        for name, days in self.terms_days.items():
            if name and name in text:
                return days
        digits = re.search(r"\d+", text)
        return int(digits.group()) if digits else self.default_terms_days


# --------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------


def default_rules_path() -> Path:
    """``ORDERDESK_RULES``, else the rules shipped with orderdesk (package data when installed, else data/)."""
    env = os.environ.get("ORDERDESK_RULES")
    if env:
        return Path(env).expanduser()
    here = Path(__file__).parent
    installed = here / "_data" / "rules.toml"
    return installed if installed.is_file() else here.parent / "data" / "rules.toml"


def load_rules(path: str | Path | None = None, *, workflow: Workflow | None = None) -> Rules:
    """Read and validate the rules file; with ``workflow``, state and transition names are checked too."""
    file = Path(path) if path else default_rules_path()
    text = read_config_text(
        file,
        error=RulesError,
        unreadable=lambda reason: msg("cannot read the rules file: {reason}", reason=reason),
        not_utf8=msg("the rules file must be saved as UTF-8 text (this line is not)"),
    )
    return parse_rules(text, source=str(file), workflow=workflow)


def parse_rules(text: str, *, source: str, workflow: Workflow | None = None) -> Rules:
    """Validate the rules TOML ``text`` (``source`` names it in messages)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError([_syntax_problem(exc, text, source)]) from None
    return _RulesChecker(data, _LineIndex(text), source, workflow).run()


# Keyed by the workflow's id; the workflow is kept in the value so that id is never reused meanwhile.
_loaded: dict[tuple[str, int, int], tuple[Workflow, Rules]] = {}


def rules_for(store: Any) -> Rules:
    """The rules a desk runs under (checked against its workflow); re-read when the file changes."""
    path = default_rules_path()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = -1
    workflow = store.workflow
    key = (str(path), mtime, id(workflow))
    if key not in _loaded:
        _loaded[key] = (workflow, load_rules(path, workflow=workflow))
    return _loaded[key][1]


# --------------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------------


def _where(section: str) -> Msg:
    return msg("[{section}]", section=section)


class _RulesChecker(_Checker):
    """Walks the parsed rules once, collecting every problem (the workflow checker's reporting and getters)."""

    def __init__(
        self, data: dict[str, Any], index: _LineIndex, source: str, workflow: Workflow | None
    ) -> None:
        super().__init__(data, index, source, frozenset(), frozenset())
        self.workflow = workflow

    # -- small typed helpers on top of the workflow checker's --------------------------------------------
    def section(self, key: str) -> dict[str, Any]:
        if key not in self.data:
            self.add((), msg("the {section} section is missing", section=f"[{key}]"))
            return {}
        return self.table(self.data, key, (), msg("the rules file")) or {}

    def sub(self, body: dict[str, Any], path: tuple[Any, ...], key: str, where: Msg) -> dict[str, Any]:
        if key not in body:
            return {}
        return self.table(body, key, path, where) or {}

    def count(
        self, body: dict[str, Any], path: tuple[Any, ...], key: str, where: Msg, *, low: int, default: Any
    ) -> int:
        value = self.get(body, path, key, where, "int", default=default)
        if value is None:
            return low
        if value < low:
            self.add(
                (*path, key),
                msg(
                    '{where}: "{key}" must be at least {low} (got {value})',
                    where=where,
                    key=key,
                    low=low,
                    value=value,
                ),
            )
            return low
        return int(value)

    def yuan(self, body: dict[str, Any], path: tuple[Any, ...], key: str, where: Msg, *, default: Any) -> int:
        value = self.get(body, path, key, where, "number", default=default)
        if value is None:
            return 0
        if value < 0:
            self.add(
                (*path, key),
                msg(
                    '{where}: "{key}" must be at least {low} (got {value})',
                    where=where,
                    key=key,
                    low=0,
                    value=value,
                ),
            )
            return 0
        return int((Decimal(str(value)) * 100).to_integral_value())

    def roles(self, body: dict[str, Any], path: tuple[Any, ...], key: str, where: Msg) -> frozenset[str]:
        return frozenset(self.role_names(body, path, key, where, required=True))

    def choose(
        self,
        body: dict[str, Any],
        path: tuple[Any, ...],
        key: str,
        where: Msg,
        options: tuple[str, ...],
        default: str,
    ) -> str:
        value = self.get(body, path, key, where, "text", default=default)
        if value is None:
            return default
        if value not in options:
            problem = msg(
                '{where}: "{key}" cannot be "{value}"; use one of: {known}',
                where=where,
                key=key,
                value=value,
                known=_known(options),
            )
            self.unknown((*path, key), problem, value, options)
            return default
        return str(value)

    def states(self, body: dict[str, Any], path: tuple[Any, ...], key: str, where: Msg) -> frozenset[str]:
        out = set()
        for i, name in self.names(body, path, key, where, required=False):
            if self.workflow is not None and name not in self.workflow.states:
                known = list(self.workflow.states)
                problem = msg(
                    '{where}: "{key}" names unknown state "{state}" (known states: {known})',
                    where=where,
                    key=key,
                    state=name,
                    known=_known(known),
                )
                self.unknown((*path, key, i), problem, name, known)
            else:
                out.add(name)
        return frozenset(out)

    def transition(
        self, body: dict[str, Any], path: tuple[Any, ...], key: str, where: Msg, default: str
    ) -> str:
        value = self.get(body, path, key, where, "text", default=default)
        if value is None:
            return default
        known = [t.id for t in self.workflow.transitions] if self.workflow is not None else None
        if known is not None and value not in known:
            problem = msg(
                '{where}: "{key}" names unknown transition "{value}" (known transitions: {known})',
                where=where,
                key=key,
                value=value,
                known=_known(known),
            )
            self.unknown((*path, key), problem, value, known)
        return str(value)

    def labelled(
        self, body: dict[str, Any], path: tuple[Any, ...], where: Msg, id_key: str = "id"
    ) -> tuple[str, str, str] | None:
        ident = self.get(body, path, id_key, where, "text")
        en = self.get(body, path, "label_en", where, "text")
        zh = self.get(body, path, "label_zh", where, "text")
        if ident is not None and not _CODE.fullmatch(ident):
            self.add(
                (*path, id_key),
                msg(
                    '{where}: "{key}" may hold only letters, digits, - and _ (got {value})',
                    where=where,
                    key=id_key,
                    value=_show(ident),
                ),
            )
            return None
        if ident is None or en is None or zh is None:
            return None
        return ident, en, zh

    def array(
        self, body: dict[str, Any], path: tuple[Any, ...], key: str, where: Msg
    ) -> list[dict[str, Any]]:
        value = body.get(key, _MISSING)
        if value is _MISSING:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.add(
                (*path, key),
                msg(
                    '{where}: "{key}" must be {expected}, not {got}',
                    where=where,
                    key=key,
                    expected=msg("a list of [[{name}]] sections", name=".".join((*path, key))),
                    got=_show(value),
                ),
            )
            return []
        return value

    def unique(self, seen: dict[str, int], ident: str, path: tuple[Any, ...], where: Msg) -> bool:
        line = self.index.line(*path)
        if ident in seen:
            self.add(
                path,
                msg(
                    '{where}: "{value}" is used twice (first at line {line})',
                    where=where,
                    value=ident,
                    line=seen[ident],
                ),
            )
            return False
        seen[ident] = line or 0
        return True

    # -- the file ------------------------------------------------------------------------------------------
    def run(self) -> Rules:  # type: ignore[override]
        for key in self.data:
            if key not in _SECTIONS:
                problem = msg(
                    'unknown section "{key}" (known sections: {known})', key=key, known=_known(_SECTIONS)
                )
                self.unknown((key,), problem, key, _SECTIONS)
        built: dict[str, Any] = {"source": self.source}
        self.check_sales(built)
        self.check_changes(built)
        self.check_qc(built)
        self.check_finance(built)
        if self.problems:
            self.problems.sort(key=lambda p: -1 if p.line is None else p.line)
            raise RulesError(self.problems)
        return Rules(**built)

    def check_sales(self, out: dict[str, Any]) -> None:
        body, path, where = self.section("approval"), ("approval",), _where("approval")
        self.check_keys(body, path, where, ("threshold_cny", "roles"))
        out["approval_threshold"] = self.yuan(body, path, "threshold_cny", where, default=50_000)
        out["approval_roles"] = self.roles(body, path, "roles", where)

        body, path, where = self.section("duplicates"), ("duplicates",), _where("duplicates")
        self.check_keys(body, path, where, ("window_hours", "reasons"))
        out["duplicate_window"] = timedelta(
            hours=self.count(body, path, "window_hours", where, low=1, default=24)
        )
        reasons: list[DuplicateReason] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(self.array(body, path, "reasons", where)):
            ipath, iwhere = (*path, "reasons", i), msg("[[duplicates.reasons]] #{n}", n=i + 1)
            self.check_keys(item, ipath, iwhere, ("id", "label_en", "label_zh", "needs_text"))
            got = self.labelled(item, ipath, iwhere)
            needs_text = self.get(item, ipath, "needs_text", iwhere, "bool", default=False)
            if got and self.unique(seen, got[0], (*ipath, "id"), iwhere):
                reasons.append(DuplicateReason(*got, needs_text=bool(needs_text)))
        if not reasons:
            self.add(path, msg("{where}: list at least one [[duplicates.reasons]]", where=where))
        out["duplicate_reasons"] = tuple(reasons)

        body, path, where = self.section("lead_time"), ("lead_time",), _where("lead_time")
        self.check_keys(body, path, where, ("short_days", "stock_handling_days", "promised_change_reason"))
        out["short_lead_days"] = self.count(body, path, "short_days", where, low=0, default=7)
        out["stock_handling_days"] = self.count(body, path, "stock_handling_days", where, low=0, default=1)
        out["promised_change_reason"] = self.choose(
            body, path, "promised_change_reason", where, PROMISE_REASON_MODES, "earlier"
        )

        body, path, where = self.section("transit"), ("transit",), _where("transit")
        self.check_keys(body, path, where, ("default_days", "regions"))
        out["transit_default_days"] = self.count(body, path, "default_days", where, low=0, default=3)
        regions: dict[str, int] = {}
        rbody = self.sub(body, path, "regions", where)
        for name in rbody:
            regions[name] = self.count(
                rbody, (*path, "regions"), name, _where("transit.regions"), low=0, default=0
            )
        out["transit_regions"] = regions

        body, path, where = self.section("linked_orders"), ("linked_orders",), _where("linked_orders")
        self.check_keys(body, path, where, ("window_minutes",))
        out["linked_window"] = timedelta(
            minutes=self.count(body, path, "window_minutes", where, low=0, default=30)
        )

        body, path, where = self.section("credit"), ("credit",), _where("credit")
        self.check_keys(body, path, where, ("release_roles",))
        out["credit_release_roles"] = self.roles(body, path, "release_roles", where)

    def check_changes(self, out: dict[str, Any]) -> None:
        body, path, where = self.section("change_requests"), ("change_requests",), _where("change_requests")
        self.check_keys(
            body,
            path,
            where,
            (
                "default_class",
                "self_approval",
                "production_started_states",
                "materials_issued_states",
                "classes",
                "rules",
            ),
        )
        out["self_approval"] = bool(self.get(body, path, "self_approval", where, "bool", default=False))
        out["production_started_states"] = self.states(body, path, "production_started_states", where)
        out["materials_issued_states"] = self.states(body, path, "materials_issued_states", where)
        classes: dict[str, ChangeClass] = {}
        cbody = self.sub(body, path, "classes", where)
        for cid, item in cbody.items():
            cpath, cwhere = (*path, "classes", cid), _where(f"change_requests.classes.{cid}")
            if not isinstance(item, dict):
                self.table(cbody, cid, (*path, "classes"), cwhere)
                continue
            self.check_keys(item, cpath, cwhere, ("label_en", "label_zh", "approve_roles"))
            en = self.get(item, cpath, "label_en", cwhere, "text")
            zh = self.get(item, cpath, "label_zh", cwhere, "text")
            roles = self.roles(item, cpath, "approve_roles", cwhere)
            if en is not None and zh is not None:
                classes[cid] = ChangeClass(cid, en, zh, approve_roles=roles)
        if not classes:
            self.add(
                path, msg("{where}: define at least one class in [change_requests.classes]", where=where)
            )
        default = self.get(body, path, "default_class", where, "text")
        if default is not None and classes and default not in classes:
            self.unknown(
                (*path, "default_class"),
                msg(
                    '{where}: "{key}" names unknown class "{value}" (known classes: {known})',
                    where=where,
                    key="default_class",
                    value=default,
                    known=_known(classes),
                ),
                default,
                classes,
            )
        out["change_default_class"] = default or next(iter(classes), "")
        out["change_classes"] = classes

        rules: list[ChangeRule] = []
        rule_keys = (
            "class",
            "fields",
            "states",
            "production_started",
            "materials_issued",
            "quantity_change_over_pct",
            "date_earlier",
            "amount_increase_over_cny",
        )
        for i, item in enumerate(self.array(body, path, "rules", where)):
            rpath, rwhere = (*path, "rules", i), msg("[[change_requests.rules]] #{n}", n=i + 1)
            self.check_keys(item, rpath, rwhere, rule_keys)
            cls = self.get(item, rpath, "class", rwhere, "text")
            if cls is not None and classes and cls not in classes:
                self.unknown(
                    (*rpath, "class"),
                    msg(
                        '{where}: "{key}" names unknown class "{value}" (known classes: {known})',
                        where=rwhere,
                        key="class",
                        value=cls,
                        known=_known(classes),
                    ),
                    cls,
                    classes,
                )
                cls = None
            fields = None
            if "fields" in item:
                fields = set()
                for j, name in self.names(item, rpath, "fields", rwhere, required=False, non_empty=True):
                    if name not in CHANGE_FIELDS:
                        problem = msg(
                            '{where}: "{key}" cannot be "{value}"; use one of: {known}',
                            where=rwhere,
                            key="fields",
                            value=name,
                            known=_known(CHANGE_FIELDS),
                        )
                        self.unknown((*rpath, "fields", j), problem, name, CHANGE_FIELDS)
                    else:
                        fields.add(name)
            pct = self.get(item, rpath, "quantity_change_over_pct", rwhere, "number", default=None)
            amount = (
                self.yuan(item, rpath, "amount_increase_over_cny", rwhere, default=None)
                if "amount_increase_over_cny" in item
                else None
            )
            if cls is not None:
                rules.append(
                    ChangeRule(
                        change_class=cls,
                        line=self.index.line(*rpath),
                        fields=frozenset(fields) if fields is not None else None,
                        states=self.states(item, rpath, "states", rwhere) if "states" in item else None,
                        production_started=self.get(
                            item, rpath, "production_started", rwhere, "bool", default=None
                        ),
                        materials_issued=self.get(
                            item, rpath, "materials_issued", rwhere, "bool", default=None
                        ),
                        quantity_change_over_pct=float(pct) if pct is not None else None,
                        date_earlier=self.get(item, rpath, "date_earlier", rwhere, "bool", default=None),
                        amount_increase_over=amount,
                    )
                )
        out["change_rules"] = tuple(rules)

    def check_qc(self, out: dict[str, Any]) -> None:
        body, path, where = self.section("qc"), ("qc",), _where("qc")
        self.check_keys(
            body,
            path,
            where,
            ("pass_transition", "fail_transition", "enforce_sample_size", "defects", "sampling"),
        )
        out["qc_pass_transition"] = self.transition(body, path, "pass_transition", where, "pass_qc")
        out["qc_fail_transition"] = self.transition(body, path, "fail_transition", where, "fail_qc")
        out["qc_enforce_sample_size"] = bool(
            self.get(body, path, "enforce_sample_size", where, "bool", default=True)
        )
        defects: dict[str, DefectCode] = {}
        seen: dict[str, int] = {}
        for i, item in enumerate(self.array(body, path, "defects", where)):
            dpath, dwhere = (*path, "defects", i), msg("[[qc.defects]] #{n}", n=i + 1)
            self.check_keys(item, dpath, dwhere, ("code", "label_en", "label_zh"))
            got = self.labelled(item, dpath, dwhere, id_key="code")
            if got and self.unique(seen, got[0], (*dpath, "code"), dwhere):
                defects[got[0]] = DefectCode(*got)
        if not defects:
            self.add(path, msg("{where}: list at least one [[qc.defects]]", where=where))
        out["defect_codes"] = defects
        steps: list[SamplingStep] = []
        last = 0
        items = self.array(body, path, "sampling", where)
        for i, item in enumerate(items):
            spath, swhere = (*path, "sampling", i), msg("[[qc.sampling]] #{n}", n=i + 1)
            self.check_keys(item, spath, swhere, ("up_to", "sample"))
            up_to = self.get(item, spath, "up_to", swhere, "int", default=None)
            sample = self.count(item, spath, "sample", swhere, low=1, default=_MISSING)
            if up_to is None and i != len(items) - 1 and "up_to" not in item:
                self.add(spath, msg('{where}: only the last step may leave out "up_to"', where=swhere))
            if up_to is not None and up_to <= last:
                self.add(
                    (*spath, "up_to"),
                    msg(
                        '{where}: "up_to" must grow from step to step ({value} is not above {last})',
                        where=swhere,
                        value=up_to,
                        last=last,
                    ),
                )
            last = up_to if up_to is not None else last
            steps.append(SamplingStep(up_to, sample))
        out["sampling"] = tuple(steps) or (SamplingStep(None, 1_000_000_000),)

    def check_finance(self, out: dict[str, Any]) -> None:
        body, path, where = self.section("finance"), ("finance",), _where("finance")
        self.check_keys(
            body,
            path,
            where,
            (
                "tax_rate",
                "prices_include_tax",
                "invoice_states",
                "default_terms_days",
                "ageing_basis",
                "terms",
                "export",
            ),
        )
        rate = self.get(body, path, "tax_rate", where, "number", default=0.13)
        if rate is not None and not 0 <= rate < 1:
            self.add(
                (*path, "tax_rate"),
                msg(
                    '{where}: "{key}" must be a fraction from 0 to below 1, like 0.13 (got {value})',
                    where=where,
                    key="tax_rate",
                    value=rate,
                ),
            )
            rate = 0
        out["tax_rate"] = Decimal(str(rate if rate is not None else 0))
        out["prices_include_tax"] = bool(
            self.get(body, path, "prices_include_tax", where, "bool", default=True)
        )
        invoice_states = self.states(body, path, "invoice_states", where)
        if not invoice_states and "invoice_states" not in body:
            self.add(
                path, msg('{where}: required setting "{key}" is missing', where=where, key="invoice_states")
            )
        out["invoice_states"] = invoice_states
        out["default_terms_days"] = self.count(body, path, "default_terms_days", where, low=0, default=30)
        out["ageing_basis"] = self.choose(body, path, "ageing_basis", where, AGEING_BASES, "invoice_date")
        terms: dict[str, int] = {}
        tbody = self.sub(body, path, "terms", where)
        for name in tbody:
            terms[name] = self.count(tbody, (*path, "terms"), name, _where("finance.terms"), low=0, default=0)
        out["terms_days"] = terms
        ebody = self.sub(body, path, "export", where)
        epath, ewhere = (*path, "export"), _where("finance.export")
        keys = ("receivable_account", "revenue_account", "output_tax_account", "voucher_word")
        self.check_keys(ebody, epath, ewhere, (*keys, "csv_encoding"))
        defaults = {
            "receivable_account": "1122",
            "revenue_account": "6001",
            "output_tax_account": "22210102",
            "voucher_word": "记",
        }
        out["export_accounts"] = {
            k: str(self.get(ebody, epath, k, ewhere, "text", default=defaults[k]) or defaults[k])
            for k in keys
        }
        out["csv_encoding"] = self.choose(ebody, epath, "csv_encoding", ewhere, CSV_ENCODINGS, "utf-8-sig")


def role_list(roles: Iterable[str]) -> str:
    """Roles as stored on a row ("finance,supervisor"), in the workflow's role order."""
    held = set(roles)
    return ",".join(r for r in ROLES if r in held)


def split_roles(text: str) -> tuple[str, ...]:
    return tuple(r for r in text.split(",") if r)
