"""The order workflow as data: load, validate and query ``workflow.toml``.

The business configures its state machine in a TOML file (``data/workflow.toml`` by default). This module
turns that file into frozen objects and refuses a broken file with *every* problem at once, each naming the
file, the line and what to change, so a non-programmer can fix it without help.

Only the standard library is used (``tomllib``); no Textual, no SQL.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
import tomllib
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orderdesk.i18n import Msg, msg

ROLES: tuple[str, ...] = ("sales", "qc", "warehouse", "finance", "planner", "supervisor", "admin")

FIELDS: frozenset[str] = frozenset(
    {
        "order_no",
        "channel",
        "customer",
        "customer_phone",
        "ship_address",
        "lines.sku",
        "lines.name",
        "lines.quantity",
        "lines.scanned",
        "lines.shipped",
        "lines.batch",
        "lines.unit_price",
        "amount",
        "credit_terms",
        "signed_date",
        "promised_date",
        "rush",
        "state",
        "owner",
        "notes",
        "waybill",
        "qc_result",
        "inspector",
        "tech_approved",
        "materials_kitted",
    }
)

KINDS: tuple[str, ...] = ("active", "hold", "terminal")
ROUTES: tuple[str, ...] = ("make_to_order", "from_stock", "common")
WILDCARD = "*"  # in ``from``: every active state; in ``see``/``edit``: every order field
PREVIOUS = "@previous"  # in ``to``: back to the state the order was in before the hold

_SECTIONS = ("workflow", "roles", "states", "transitions")
_WORKFLOW_KEYS = ("id", "initial", "ack_minutes")
_ROLE_KEYS = ("label_en", "label_zh", "home", "see", "edit")
_STATE_KEYS = ("label_en", "label_zh", "owner", "timeout_hours", "escalation", "escalation_minutes", "kind")
_TRANSITION_KEYS = (
    "id",
    "from",
    "to",
    "roles",
    "guards",
    "notify",
    "require_ack",
    "label_en",
    "label_zh",
    "route",
)


def _pick(lang: str, en: str, zh: str) -> str:
    return zh if lang == "zh" else en


# --------------------------------------------------------------------------------------------------------
# Public objects
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a workflow file. ``line`` is None only when the problem has no single line."""

    file: str
    line: int | None
    message: Msg

    def render(self, lang: str | None = None) -> str:
        """``file:line: problem`` in ``lang`` (default: the current language)."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message.render(lang)}"

    def __str__(self) -> str:
        return self.render()


class WorkflowError(Exception):
    """A workflow file that cannot be used; ``problems`` lists everything wrong with it, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(self.problems)

    def render(self, lang: str | None = None) -> str:
        """One line per problem, ``file:line: problem``, in ``lang``."""
        return "\n".join(p.render(lang) for p in self.problems)

    def __str__(self) -> str:
        # Rendered lazily so the error shows in whatever language is current when it is printed.
        return self.render()


@dataclass(frozen=True)
class Role:
    """A role: its labels, home screen and the order fields it may see and edit."""

    id: str
    label_en: str
    label_zh: str
    home: str
    see: frozenset[str]
    edit: frozenset[str]

    def label(self, lang: str) -> str:
        """The role's name in ``lang`` ("zh" or "en")."""
        return _pick(lang, self.label_en, self.label_zh)


@dataclass(frozen=True)
class State:
    """A state an order can be in."""

    id: str
    label_en: str
    label_zh: str
    owner: str
    timeout_hours: float  # 0 = never overdue
    escalation: tuple[str, ...]  # roles alerted after the owner, in order
    escalation_minutes: int
    kind: str  # "active" | "hold" | "terminal"

    def label(self, lang: str) -> str:
        """The state's name in ``lang`` ("zh" or "en")."""
        return _pick(lang, self.label_en, self.label_zh)

    @property
    def is_terminal(self) -> bool:
        """Final state: the order is finished and nothing leaves it."""
        return self.kind == "terminal"

    @property
    def is_hold(self) -> bool:
        """Hold state: orders wait here and may return to where they were (``@previous``)."""
        return self.kind == "hold"


@dataclass(frozen=True)
class Transition:
    """A move between states. ``sources`` has ``"*"`` already expanded; ``to`` may be ``"@previous"``."""

    id: str
    sources: frozenset[str]
    to: str
    roles: frozenset[str]
    guards: tuple[str, ...]
    notify: tuple[str, ...]
    require_ack: bool
    label_en: str
    label_zh: str
    route: str | None = None

    def label(self, lang: str) -> str:
        """The transition's button text in ``lang`` ("zh" or "en")."""
        return _pick(lang, self.label_en, self.label_zh)

    @property
    def returns_to_previous(self) -> bool:
        """True when the move goes back to the state the order was in before its hold."""
        return self.to == PREVIOUS

    def destination(self, previous: str | None) -> str:
        """The state this move leads to; ``previous`` is the state before the hold (for ``@previous``)."""
        if self.to != PREVIOUS:
            return self.to
        if not previous:
            raise ValueError(f"transition {self.id!r} returns to the previous state, but none is recorded")
        return previous


@dataclass(frozen=True)
class Workflow:
    """A validated workflow. Build it with ``load_workflow`` or ``parse_workflow``."""

    id: str
    initial: str
    ack_minutes: int
    states: dict[str, State]  # in file order
    transitions: tuple[Transition, ...]  # in file order
    roles: dict[str, Role]
    source: str

    def transitions_from(self, state: str) -> list[Transition]:
        """Every transition that can leave ``state``, in file order."""
        return [t for t in self.transitions if state in t.sources]

    def allowed(self, state: str, roles: Iterable[str]) -> list[Transition]:
        """The transitions from ``state`` that someone holding ``roles`` may make (guards not checked)."""
        # A bare string is a common slip ("sales" would iterate as letters); treat it as one role.
        held = {roles} if isinstance(roles, str) else set(roles)
        return [t for t in self.transitions_from(state) if t.roles & held]

    def find(self, state: str, target: str, *, previous: str | None = None) -> Transition | None:
        """The transition from ``state`` named ``target`` (a transition id) or leading to ``target`` (a state).

        A transition id wins over a state id. ``@previous`` transitions match ``target == "@previous"``, or
        the state ``previous`` when the caller says where the order was before its hold.
        """
        candidates = self.transitions_from(state)
        for t in candidates:
            if t.id == target:
                return t
        for t in candidates:
            if t.to == target or (t.to == PREVIOUS and previous is not None and previous == target):
                return t
        return None

    def state_label(self, state: str, lang: str) -> str:
        """The state's name in ``lang``; an unknown id (e.g. from an older workflow) is shown as is."""
        found = self.states.get(state)
        return found.label(lang) if found else state


def default_workflow_path() -> Path:
    """The workflow shipped with orderdesk: package data when installed, else ``data/`` in the repo."""
    here = Path(__file__).parent
    installed = here / "_data" / "workflow.toml"
    if installed.is_file():
        return installed
    return here.parent / "data" / "workflow.toml"


def read_config_text(
    path: Path, *, error: type[WorkflowError], unreadable: Callable[[str], Msg], not_utf8: Msg
) -> str:
    """The text of a configuration file the business edits, or ``error`` naming the file (and the line
    that is not UTF-8). Shared by the workflow and the rules files."""
    try:
        # utf-8-sig: Windows Notepad (common in Chinese offices) may save a byte-order mark.
        return path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise error([Problem(str(path), None, unreadable(exc.strerror or str(exc)))]) from exc
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise error([Problem(str(path), line, not_utf8)]) from exc


def load_workflow(
    path: str | Path, *, known_guards: Collection[str], known_fields: Collection[str] = FIELDS
) -> Workflow:
    """Read, validate and return the workflow in ``path``; raise ``WorkflowError`` listing every problem."""
    source = str(path)
    text = read_config_text(
        Path(path),
        error=WorkflowError,
        unreadable=lambda reason: msg("cannot read the workflow file: {reason}", reason=reason),
        not_utf8=msg("the workflow file must be saved as UTF-8 text (this line is not)"),
    )
    return parse_workflow(text, source=source, known_guards=known_guards, known_fields=known_fields)


def parse_workflow(
    text: str, *, source: str, known_guards: Collection[str], known_fields: Collection[str] = FIELDS
) -> Workflow:
    """Validate the workflow TOML ``text`` (``source`` names it in messages) and return the ``Workflow``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkflowError([_syntax_problem(exc, text, source)]) from None
    checker = _Checker(data, _LineIndex(text), source, frozenset(known_guards), frozenset(known_fields))
    return checker.run()


# --------------------------------------------------------------------------------------------------------
# TOML syntax errors
# --------------------------------------------------------------------------------------------------------

_AT = re.compile(r"\s*\((?:at line (\d+), column \d+|at end of document)\)\s*$")
_KEY_AT_LINE = re.compile(r"""^\s*([A-Za-z0-9_\-."' ]+?)\s*=""")


def _syntax_problem(exc: tomllib.TOMLDecodeError, text: str, source: str) -> Problem:
    """Turn tomllib's message into a located problem, in plainer words for the common cases."""
    raw = str(exc)
    found = _AT.search(raw)
    detail = raw[: found.start()] if found else raw
    if found and found.group(1):
        line: int | None = int(found.group(1))
    else:
        # "at end of document": point at the last line, where the reader will look for the unclosed thing.
        line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    if detail.startswith("Cannot declare") and detail.endswith("twice"):
        try:
            parts = ast.literal_eval(detail[len("Cannot declare") : -len("twice")].strip())
            name = ".".join(str(p) for p in parts)
        except (ValueError, SyntaxError):
            name = "?"
        return Problem(
            source, line, msg("the section [{name}] appears twice; merge the two into one", name=name)
        )
    if detail.startswith("Cannot overwrite a value"):
        lines = text.splitlines()
        key = None
        if line is not None and 0 < line <= len(lines):
            match = _KEY_AT_LINE.match(lines[line - 1])
            key = match.group(1).strip() if match else None
        if key:
            return Problem(
                source,
                line,
                msg('the setting "{key}" is written twice in the same section; keep only one', key=key),
            )
        return Problem(
            source,
            line,
            msg("a setting is written twice, or a setting and a section share a name; keep only one"),
        )
    return Problem(
        source,
        line,
        msg("this line is not valid TOML ({detail}); check the quotes, brackets and commas", detail=detail),
    )


# --------------------------------------------------------------------------------------------------------
# Line index: tomllib gives no positions for values, so scan the (already valid) text for them.
# --------------------------------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class _LineIndex:
    """Maps key paths to the line they are written on.

    Paths look like ``("states", "draft", "owner")`` or ``("transitions", 6, "to")``; array elements get
    their index appended (``("roles", "qc", "see", 3)``). ``line()`` falls back to the nearest enclosing
    path, so a missing key is reported at its section's header.
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[tuple[Any, ...], int] = {}
        self._array_tables: dict[tuple[str, ...], int] = {}  # [[name]] -> how many seen so far
        self._scan(text)

    def line(self, *path: Any) -> int | None:
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return None

    def _record(self, path: tuple[Any, ...], line: int) -> None:
        self._lines.setdefault(path, line)

    def _scan(self, text: str) -> None:
        pos, n, line = 0, len(text), 1
        table: tuple[Any, ...] = ()
        while pos < n:
            while pos < n and text[pos] in " \t\r":
                pos += 1
            if pos >= n:
                break
            char = text[pos]
            if char == "\n":
                line += 1
                pos += 1
            elif char == "#":
                end = text.find("\n", pos)
                pos = n if end < 0 else end
            elif char == "[":
                is_array = text.startswith("[[", pos)
                parts, pos = self._key(text, pos + (2 if is_array else 1))
                table = self._table_path(parts, is_array)
                # ``[states.draft]`` also introduces ``states``, which may have no header of its own.
                for cut in range(1, len(table) + 1):
                    self._record(table[:cut], line)
                pos = text.index("]", pos) + (2 if is_array else 1)
            else:
                parts, pos = self._key(text, pos)
                path = table + tuple(parts)
                # A dotted key also introduces its parents (``draft.owner = ...`` mentions ``draft``).
                for cut in range(len(table) + 1, len(path) + 1):
                    self._record(path[:cut], line)
                pos = text.index("=", pos) + 1
                pos, line = self._value(text, pos, line, path)

    def _table_path(self, parts: list[str], is_array: bool) -> tuple[Any, ...]:
        path: list[Any] = []
        prefix: tuple[str, ...] = ()
        for i, part in enumerate(parts):
            prefix += (part,)
            path.append(part)
            if is_array and i == len(parts) - 1:
                count = self._array_tables.get(prefix, 0)
                self._array_tables[prefix] = count + 1
                # A new element starts fresh counts for arrays of tables nested inside it.
                for other in [
                    k for k in self._array_tables if len(k) > len(prefix) and k[: len(prefix)] == prefix
                ]:
                    del self._array_tables[other]
                path.append(count)
            elif prefix in self._array_tables:
                path.append(self._array_tables[prefix] - 1)
        return tuple(path)

    @staticmethod
    def _key(text: str, pos: int) -> tuple[list[str], int]:
        """Parse a (dotted, possibly quoted) key starting at ``pos``; return its parts and the end."""
        parts: list[str] = []
        while True:
            while text[pos] in " \t":
                pos += 1
            if text[pos] == '"':
                end = _LineIndex._basic_string_end(text, pos)
                parts.append(tomllib.loads("k = " + text[pos:end])["k"])
                pos = end
            elif text[pos] == "'":
                end = text.index("'", pos + 1)
                parts.append(text[pos + 1 : end])
                pos = end + 1
            else:
                match = _BARE_KEY.match(text, pos)
                if not match:  # pragma: no cover - the text already parsed as TOML
                    return parts, pos
                parts.append(match.group())
                pos = match.end()
            while pos < len(text) and text[pos] in " \t":
                pos += 1
            if pos < len(text) and text[pos] == ".":
                pos += 1
                continue
            return parts, pos

    @staticmethod
    def _basic_string_end(text: str, pos: int) -> int:
        """Index just past the single-line basic string that opens at ``pos``."""
        i = pos + 1
        while text[i] != '"':
            i += 2 if text[i] == "\\" else 1
        return i + 1

    def _value(self, text: str, pos: int, line: int, path: tuple[Any, ...]) -> tuple[int, int]:
        """Skip a value, recording the line of each array element; return the position and line after it."""
        n = len(text)
        # One entry per open bracket: [element path or None, index of current element, waiting for it].
        stack: list[list[Any]] = []

        def element_starts() -> None:
            if stack and stack[-1][0] is not None and stack[-1][2]:
                self._record(stack[-1][0] + (stack[-1][1],), line)
                stack[-1][2] = False

        while pos < n:
            char = text[pos]
            if text.startswith('"""', pos) or text.startswith("'''", pos):
                element_starts()
                quote = text[pos : pos + 3]
                i = pos + 3
                while not text.startswith(quote, i):
                    i += 2 if (quote == '"""' and text[i] == "\\") else 1
                end = i + 3
                while end < n and text[end] == quote[0]:  # up to two quotes may end the content
                    end += 1
                line += text.count("\n", pos, end)
                pos = end
            elif char == '"':
                element_starts()
                pos = self._basic_string_end(text, pos)
            elif char == "'":
                element_starts()
                pos = text.index("'", pos + 1) + 1
            elif char == "#":
                end = text.find("\n", pos)
                pos = n if end < 0 else end
            elif char == "\n":
                line += 1
                pos += 1
                if not stack:
                    return pos, line
            elif char in "[{":
                element_starts()
                if char == "[":
                    if not stack:
                        child: tuple[Any, ...] | None = path
                    elif stack[-1][0] is not None:
                        child = stack[-1][0] + (stack[-1][1],)
                    else:
                        child = None
                else:
                    child = None  # keys inside an inline table share its (single) line
                stack.append([child, 0, char == "["])
                pos += 1
            elif char in "]}":
                stack.pop()
                pos += 1
            elif char == ",":
                if stack:
                    stack[-1][1] += 1
                    stack[-1][2] = True
                pos += 1
            else:
                if char not in " \t\r":
                    element_starts()
                pos += 1
        return pos, line


# --------------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------------

_MISSING: Any = object()


def _show(value: Any) -> str:
    """A value as the reader wrote it in TOML (``"x"``, ``true``, ``[...]``), for 'not X' messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{…}"
    return str(value)


def _known(names: Iterable[str]) -> str:
    return ", ".join(names) or "—"


class _Checker:
    """Walks the parsed TOML once, collecting every problem; builds the Workflow only if there are none."""

    def __init__(
        self,
        data: dict[str, Any],
        index: _LineIndex,
        source: str,
        known_guards: frozenset[str],
        known_fields: frozenset[str],
    ) -> None:
        self.data = data
        self.index = index
        self.source = source
        self.known_guards = known_guards
        self.known_fields = known_fields
        self.problems: list[Problem] = []
        # Set when a state name or kind is wrong: the graph checks would then report consequences of that
        # mistake (e.g. the intended target "can never be reached"), which only hides the real cause.
        self.graph_broken = False

    # -- reporting --------------------------------------------------------------------------------------

    def add(self, path: tuple[Any, ...], message: Msg) -> None:
        self.problems.append(Problem(self.source, self.index.line(*path), message))

    def unknown(self, path: tuple[Any, ...], message: Msg, name: str, candidates: Iterable[str]) -> None:
        """Report an unknown name, suggesting the closest known one (typos are the usual cause)."""
        close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
        if close:
            message = msg('{problem}; did you mean "{suggestion}"?', problem=message, suggestion=close[0])
        self.add(path, message)

    def check_keys(
        self, body: dict[str, Any], path: tuple[Any, ...], where: Msg, allowed: tuple[str, ...]
    ) -> None:
        for key in body:
            if key not in allowed:
                problem = msg(
                    '{where}: unknown setting "{key}" (known settings: {known})',
                    where=where,
                    key=key,
                    known=_known(allowed),
                )
                self.unknown((*path, key), problem, key, allowed)

    # -- typed getters: report and return a fallback, so checking can go on --------------------------------

    def get(
        self,
        body: dict[str, Any],
        path: tuple[Any, ...],
        key: str,
        where: Msg,
        kind: str,
        *,
        default: Any = _MISSING,
    ) -> Any:
        """The value of ``key`` if present and of ``kind`` ("text", "int", "number", "bool"), else None."""
        value = body.get(key, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                self.add(path, msg('{where}: required setting "{key}" is missing', where=where, key=key))
                return None
            return default
        ok = {
            "text": isinstance(value, str),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value),
            "bool": isinstance(value, bool),
        }[kind]
        if not ok:
            expected = {
                "text": msg("text in quotes"),
                "int": msg("a whole number"),
                "number": msg("a number"),
                "bool": msg("true or false"),
            }[kind]
            self.add(
                (*path, key),
                msg(
                    '{where}: "{key}" must be {expected}, not {got}',
                    where=where,
                    key=key,
                    expected=expected,
                    got=_show(value),
                ),
            )
            return None
        if kind == "text" and not value.strip():
            self.add((*path, key), msg('{where}: "{key}" must not be empty', where=where, key=key))
            return None
        return value

    def names(
        self,
        body: dict[str, Any],
        path: tuple[Any, ...],
        key: str,
        where: Msg,
        *,
        required: bool,
        non_empty: bool = False,
    ) -> list[tuple[int, str]]:
        """A list of names as ``(index, name)`` pairs, so callers can point at the offending element."""
        value = body.get(key, _MISSING)
        if value is _MISSING:
            if required:
                self.add(path, msg('{where}: required setting "{key}" is missing', where=where, key=key))
            return []
        if not isinstance(value, list):
            self.add(
                (*path, key),
                msg(
                    '{where}: "{key}" must be {expected}, not {got}',
                    where=where,
                    key=key,
                    expected=msg("a list in square brackets"),
                    got=_show(value),
                ),
            )
            return []
        if non_empty and not value:
            self.add((*path, key), msg('{where}: "{key}" must not be empty', where=where, key=key))
        out: list[tuple[int, str]] = []
        seen: set[str] = set()
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.add(
                    (*path, key, i),
                    msg(
                        '{where}: every entry of "{key}" must be a name in quotes, not {got}',
                        where=where,
                        key=key,
                        got=_show(item),
                    ),
                )
            elif item in seen:
                self.add(
                    (*path, key, i),
                    msg('{where}: "{value}" is listed twice in "{key}"', where=where, key=key, value=item),
                )
            else:
                seen.add(item)
                out.append((i, item))
        return out

    def role_names(
        self, body: dict[str, Any], path: tuple[Any, ...], key: str, where: Msg, *, required: bool
    ) -> list[str]:
        good = []
        for i, name in self.names(body, path, key, where, required=required, non_empty=required):
            if self.check_role((*path, key, i), name, key, where):
                good.append(name)
        return good

    def check_role(self, path: tuple[Any, ...], name: str, key: str, where: Msg) -> bool:
        if name in ROLES:
            return True
        problem = msg(
            '{where}: "{key}" names unknown role "{role}" (known roles: {known})',
            where=where,
            key=key,
            role=name,
            known=_known(ROLES),
        )
        self.unknown(path, problem, name, ROLES)
        return False

    def table(
        self, container: dict[str, Any], key: str, path: tuple[Any, ...], where: Msg
    ) -> dict[str, Any] | None:
        value = container.get(key)
        if isinstance(value, dict):
            return value
        self.add(
            (*path, key),
            msg(
                '{where}: "{key}" must be {expected}, not {got}',
                where=where,
                key=key,
                expected=msg("a section"),
                got=_show(value),
            ),
        )
        return None

    # -- the file ---------------------------------------------------------------------------------------

    def run(self) -> Workflow:
        data = self.data
        file_where = msg("the workflow file")
        for key in data:
            if key not in _SECTIONS:
                problem = msg(
                    'unknown section "{key}" (known sections: {known})', key=key, known=_known(_SECTIONS)
                )
                self.unknown((key,), problem, key, _SECTIONS)

        header: dict[str, Any] | None = None
        if "workflow" not in data:
            self.add((), msg("the {section} section is missing", section="[workflow]"))
        else:
            header = self.table(data, "workflow", (), file_where)
        roles = self.check_roles(data, file_where)
        states = self.check_states(data, file_where, header)
        transitions = self.check_transitions(data, file_where, states)
        wf_id, initial, ack = self.check_header(header, states)
        self.check_graph(states, transitions, initial)

        if self.problems:
            # Report in file order; whole-file problems (no line) first.
            self.problems.sort(key=lambda p: -1 if p.line is None else p.line)
            raise WorkflowError(self.problems)
        built_states = {
            sid: State(
                id=sid,
                label_en=body["label_en"],
                label_zh=body["label_zh"],
                owner=body["owner"],
                timeout_hours=float(body["timeout_hours"]),
                escalation=tuple(body.get("escalation", ())),
                escalation_minutes=body.get("escalation_minutes", ack),
                kind=body["kind"],
            )
            for sid, body in states.items()
        }
        return Workflow(
            id=wf_id,
            initial=initial,
            ack_minutes=ack,
            states=built_states,
            transitions=tuple(transitions),
            roles={rid: roles[rid] for rid in ROLES},
            source=self.source,
        )

    def check_header(
        self, header: dict[str, Any] | None, states: dict[str, dict[str, Any]]
    ) -> tuple[str, str, int]:
        path = ("workflow",)
        where = msg("the [workflow] section")
        if header is None:  # already reported as missing or not a section
            return "", "", 15
        self.check_keys(header, path, where, _WORKFLOW_KEYS)
        wf_id = self.get(header, path, "id", where, "text")
        initial = self.get(header, path, "initial", where, "text")
        ack = self.get(header, path, "ack_minutes", where, "int")
        if ack is not None and ack < 1:
            self.add(
                (*path, "ack_minutes"),
                msg(
                    '{where}: "{key}" must be at least 1 minute (got {value})',
                    where=where,
                    key="ack_minutes",
                    value=ack,
                ),
            )
        if initial is not None and states:
            if initial not in states:
                problem = msg(
                    'initial state "{state}" is not defined (known states: {known})',
                    state=initial,
                    known=_known(states),
                )
                self.unknown((*path, "initial"), problem, initial, states)
                self.graph_broken = True
            elif states[initial].get("kind") in ("hold", "terminal"):
                self.add(
                    (*path, "initial"),
                    msg(
                        'initial state "{state}" must have kind = "active", not "{kind}"',
                        state=initial,
                        kind=states[initial]["kind"],
                    ),
                )
        return wf_id or "", initial or "", ack if isinstance(ack, int) and ack >= 1 else 15

    def check_roles(self, data: dict[str, Any], file_where: Msg) -> dict[str, Role]:
        roles: dict[str, Role] = {}
        if "roles" not in data:
            self.add((), msg("the {section} section is missing", section="[roles]"))
            return roles
        table = self.table(data, "roles", (), file_where)
        if table is None:
            return roles
        for rid, body in table.items():
            path = ("roles", rid)
            where = msg('role "{role}"', role=rid)
            if rid not in ROLES:
                problem = msg(
                    "[roles.{role}] is not a known role (known roles: {known})", role=rid, known=_known(ROLES)
                )
                self.unknown(path, problem, rid, ROLES)
                continue
            if not isinstance(body, dict):
                self.table(table, rid, ("roles",), file_where)
                continue
            self.check_keys(body, path, where, _ROLE_KEYS)
            label_en = self.get(body, path, "label_en", where, "text")
            label_zh = self.get(body, path, "label_zh", where, "text")
            home = self.get(body, path, "home", where, "text")
            see = self.fields(body, path, "see", where, required=True)
            edit = self.fields(body, path, "edit", where, required=False)
            for i, name in edit.items():
                if name not in see.values():
                    self.add(
                        (*path, "edit", i),
                        msg(
                            '{where} may edit "{field}" but cannot see it; add "{field}" to "see" too',
                            where=where,
                            field=name,
                        ),
                    )
            roles[rid] = Role(
                rid,
                label_en or "",
                label_zh or "",
                home or "",
                frozenset(see.values()),
                frozenset(edit.values()),
            )
        missing = [rid for rid in ROLES if rid not in table]
        # No line of its own: point at where the roles are declared, which is where it must be added.
        anchor = ("roles", next(iter(table))) if table else ("roles",)
        for rid in missing:
            self.add(
                anchor,
                msg(
                    'role "{role}" has no [roles.{role}] section; every role needs one (roles: {known})',
                    role=rid,
                    known=_known(ROLES),
                ),
            )
        return roles

    def fields(
        self, body: dict[str, Any], path: tuple[Any, ...], key: str, where: Msg, *, required: bool
    ) -> dict[int, str]:
        """Field names in ``see``/``edit`` by element index; ``"*"`` expands to every known field."""
        out: dict[int, str] = {}
        for i, name in self.names(body, path, key, where, required=required):
            if name == WILDCARD:
                # Index -1 - n keeps the expanded names distinct from real elements; all point at the "*".
                for n, field_name in enumerate(sorted(self.known_fields)):
                    out[-1 - n] = field_name
            elif name in self.known_fields:
                out[i] = name
            else:
                problem = msg(
                    '{where}: "{key}" names unknown order field "{field}" (known fields: {known})',
                    where=where,
                    key=key,
                    field=name,
                    known=_known(sorted(self.known_fields)),
                )
                self.unknown((*path, key, i), problem, name, self.known_fields)
        return out

    def check_states(
        self, data: dict[str, Any], file_where: Msg, header: dict[str, Any]
    ) -> dict[str, dict[str, Any]]:
        """Check every state; return their bodies (file order) so later checks know ids and kinds."""
        states: dict[str, dict[str, Any]] = {}
        if "states" not in data:
            self.add((), msg("the {section} section is missing", section="[states]"))
            return states
        table = self.table(data, "states", (), file_where)
        if table is None:
            return states
        if not table:
            self.add(("states",), msg("the {section} section is empty", section="[states]"))
        for sid, body in table.items():
            path = ("states", sid)
            where = msg('state "{state}"', state=sid)
            if sid == WILDCARD or sid.startswith("@"):
                self.add(path, msg('state id "{state}" is reserved; pick another name', state=sid))
            if not isinstance(body, dict):
                self.table(table, sid, ("states",), file_where)
                states[sid] = {}
                self.graph_broken = True
                continue
            self.check_keys(body, path, where, _STATE_KEYS)
            self.get(body, path, "label_en", where, "text")
            self.get(body, path, "label_zh", where, "text")
            owner = self.get(body, path, "owner", where, "text")
            if owner is not None:
                self.check_role((*path, "owner"), owner, "owner", where)
            timeout = self.get(body, path, "timeout_hours", where, "number")
            if timeout is not None and timeout < 0:
                self.add(
                    (*path, "timeout_hours"),
                    msg(
                        '{where}: "{key}" cannot be negative (got {value}); use 0 for no timeout',
                        where=where,
                        key="timeout_hours",
                        value=timeout,
                    ),
                )
            self.role_names(body, path, "escalation", where, required=False)
            minutes = self.get(body, path, "escalation_minutes", where, "int", default=None)
            if minutes is not None and minutes < 1:
                self.add(
                    (*path, "escalation_minutes"),
                    msg(
                        '{where}: "{key}" must be at least 1 minute (got {value})',
                        where=where,
                        key="escalation_minutes",
                        value=minutes,
                    ),
                )
            kind = self.get(body, path, "kind", where, "text")
            if kind is not None and kind not in KINDS:
                problem = msg(
                    '{where}: "{key}" cannot be "{value}"; use one of: {known}',
                    where=where,
                    key="kind",
                    value=kind,
                    known=_known(KINDS),
                )
                self.unknown((*path, "kind"), problem, kind, KINDS)
            if kind not in KINDS:
                self.graph_broken = True
            if kind == "terminal" and timeout:
                self.add(
                    (*path, "timeout_hours"),
                    msg('{where} is final (kind = "terminal"), so "timeout_hours" must be 0', where=where),
                )
            states[sid] = body
        return states

    def check_transitions(
        self, data: dict[str, Any], file_where: Msg, states: dict[str, dict[str, Any]]
    ) -> list[Transition]:
        """Check every transition; return those whose states are valid (for the graph checks)."""
        out: list[Transition] = []
        if "transitions" not in data:
            self.add((), msg("the {section} section is missing", section="[[transitions]]"))
            return out
        items = data["transitions"]
        if not isinstance(items, list):
            self.add(
                ("transitions",),
                msg(
                    '{where}: "{key}" must be {expected}, not {got}',
                    where=file_where,
                    key="transitions",
                    expected=msg("a list of [[transitions]] sections"),
                    got=_show(items),
                ),
            )
            return out
        kinds = {sid: body.get("kind") for sid, body in states.items()}
        active = frozenset(sid for sid, kind in kinds.items() if kind == "active")
        first_line: dict[str, int | None] = {}
        for n, body in enumerate(items):
            path: tuple[Any, ...] = ("transitions", n)
            if not isinstance(body, dict):
                self.add(
                    path,
                    msg(
                        '{where}: "{key}" must be {expected}, not {got}',
                        where=file_where,
                        key="transitions",
                        expected=msg("a list of [[transitions]] sections"),
                        got=_show(body),
                    ),
                )
                continue
            tid = body.get("id")
            where = (
                msg('transition "{id}"', id=tid)
                if isinstance(tid, str) and tid
                else msg("transition #{n}", n=n + 1)
            )
            self.check_keys(body, path, where, _TRANSITION_KEYS)
            tid = self.get(body, path, "id", where, "text")
            if tid is not None:
                if tid in first_line:
                    self.add(
                        (*path, "id"),
                        msg(
                            'transition id "{id}" is used twice (first at line {line}); give each transition its own id',
                            id=tid,
                            line=first_line[tid] if first_line[tid] is not None else "?",
                        ),
                    )
                else:
                    first_line[tid] = self.index.line(*path, "id")

            before = len(self.problems)
            sources: set[str] = set()
            for i, name in self.names(body, path, "from", where, required=True, non_empty=True):
                if name == WILDCARD:
                    sources |= active
                elif name in states:
                    if kinds[name] != "terminal":
                        sources.add(name)
                    else:
                        self.add(
                            (*path, "from", i),
                            msg(
                                '{where} starts from final state "{state}"; nothing may leave a terminal state',
                                where=where,
                                state=name,
                            ),
                        )
                else:
                    problem = msg(
                        '{where} starts from unknown state "{state}" (known states: {known})',
                        where=where,
                        state=name,
                        known=_known(states),
                    )
                    self.unknown((*path, "from", i), problem, name, states)

            to = self.get(body, path, "to", where, "text")
            if to is not None and to != PREVIOUS and to not in states:
                problem = msg(
                    '{where} goes to unknown state "{state}" (known states: {known})',
                    where=where,
                    state=to,
                    known=_known(states),
                )
                self.unknown((*path, "to"), problem, to, [*states, PREVIOUS])
                to = None
            if len(self.problems) > before:
                self.graph_broken = True
            not_hold = sorted(name for name in sources if kinds.get(name) != "hold")
            if to == PREVIOUS and not_hold:
                # "@previous" means "where the order was before its hold"; other states record no such place.
                self.add(
                    (*path, "to"),
                    msg(
                        '{where} goes to "@previous", which only works from hold states, '
                        "but it also starts from: {states}",
                        where=where,
                        states=_known(not_hold),
                    ),
                )

            roles = self.role_names(body, path, "roles", where, required=True)
            guards: list[str] = []
            for i, name in self.names(body, path, "guards", where, required=False):
                if name in self.known_guards:
                    guards.append(name)
                else:
                    problem = msg(
                        '{where}: unknown check "{guard}" in "guards" (known checks: {known})',
                        where=where,
                        guard=name,
                        known=_known(sorted(self.known_guards)),
                    )
                    self.unknown((*path, "guards", i), problem, name, self.known_guards)
            notify = self.role_names(body, path, "notify", where, required=False)
            require_ack = self.get(body, path, "require_ack", where, "bool", default=False)
            label_en = self.get(body, path, "label_en", where, "text")
            label_zh = self.get(body, path, "label_zh", where, "text")
            route = self.get(body, path, "route", where, "text", default=None)
            if route is not None and route not in ROUTES:
                problem = msg(
                    '{where}: "{key}" cannot be "{value}"; use one of: {known}',
                    where=where,
                    key="route",
                    value=route,
                    known=_known(ROUTES),
                )
                self.unknown((*path, "route"), problem, route, ROUTES)

            if to is not None:
                out.append(
                    Transition(
                        id=tid or "",
                        sources=frozenset(sources),
                        to=to,
                        roles=frozenset(roles),
                        guards=tuple(guards),
                        notify=tuple(notify),
                        require_ack=bool(require_ack),
                        label_en=label_en or "",
                        label_zh=label_zh or "",
                        route=route,
                    )
                )
        return out

    # -- the graph --------------------------------------------------------------------------------------

    def check_graph(
        self, states: dict[str, dict[str, Any]], transitions: list[Transition], initial: str
    ) -> None:
        """Reachability from the initial state, a way out of every state, and a way to finish."""
        if not states or self.graph_broken:
            return
        kinds = {sid: body.get("kind") for sid, body in states.items()}
        # Two graphs. For reaching a state, "@previous" leads nowhere new: it only goes back where the order
        # already was. For getting out and finishing, a hold counts as able to return to any state that can
        # enter it, because that is where an order on hold will go when released.
        reach: dict[str, set[str]] = {sid: set() for sid in states}
        forward: dict[str, set[str]] = {sid: set() for sid in states}
        for t in transitions:
            for source in t.sources:
                if t.to == PREVIOUS:
                    forward[source] |= {s for u in transitions if u.to == source for s in u.sources}
                else:
                    forward[source].add(t.to)
                    reach[source].add(t.to)

        if initial in states:
            seen = {initial}
            todo = [initial]
            while todo:
                for nxt in reach[todo.pop()]:
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
            for sid in states:
                if sid not in seen:
                    self.add(
                        ("states", sid),
                        msg(
                            'state "{state}" can never be reached from the initial state "{initial}"; '
                            "add a transition into it or delete it",
                            state=sid,
                            initial=initial,
                        ),
                    )

        stuck = set()
        for sid in states:
            if kinds[sid] != "terminal" and not (forward[sid] - {sid}):
                stuck.add(sid)
                self.add(
                    ("states", sid),
                    msg(
                        'state "{state}" has no way out; add a transition from it or set kind = "terminal"',
                        state=sid,
                    ),
                )

        finals = {sid for sid, kind in kinds.items() if kind == "terminal"}
        if not finals:
            if all(kind in KINDS for kind in kinds.values()):
                self.add(
                    ("states",),
                    msg(
                        'no state has kind = "terminal"; add at least one final state (for example "closed")'
                    ),
                )
            return
        backward: dict[str, set[str]] = {sid: set() for sid in states}
        for source, targets in forward.items():
            for target in targets:
                backward[target].add(source)
        finishing = set(finals)
        todo = list(finals)
        while todo:
            for prev in backward[todo.pop()]:
                if prev not in finishing:
                    finishing.add(prev)
                    todo.append(prev)
        for sid in states:
            if sid not in finishing and sid not in stuck:
                self.add(
                    ("states", sid),
                    msg(
                        'orders in state "{state}" can never finish: no chain of transitions leads from it '
                        "to a final state",
                        state=sid,
                    ),
                )
