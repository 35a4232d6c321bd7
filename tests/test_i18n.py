"""Every user-visible string has a Chinese translation with the same placeholders."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from orderdesk.i18n import Label, Msg, catalog, detect_language, msg, set_language, translate

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for d in ("orderdesk", "screens", "sync") for p in (ROOT / d).rglob("*.py")]
# Calls whose first string argument is a message id, and keyword arguments that are message ids.
MSG_FUNCS = {"_", "msg", "translate"}
MSG_KWARGS = {"field_name", "action"}


def message_ids() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            first = node.args[0] if node.args else None
            if name in MSG_FUNCS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found[first.value] = f"{path.relative_to(ROOT)}:{node.lineno}"
            for kw in node.keywords:
                if (
                    kw.arg in MSG_KWARGS
                    and isinstance(kw.value, ast.Constant)
                    and isinstance(kw.value.value, str)
                ):
                    found[kw.value.value] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return found


def placeholders(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_every_message_has_a_chinese_translation() -> None:
    zh = catalog("zh")
    ids = message_ids()
    assert len(ids) > 50, "the scanner found suspiciously few messages"
    missing = {m: where for m, where in ids.items() if m not in zh and placeholders(m) != {m.strip("{}")}}
    assert not missing, "no Chinese for:\n" + "\n".join(f"{w}: {m!r}" for m, w in sorted(missing.items()))


def test_translations_keep_the_same_placeholders() -> None:
    bad = {k: v for k, v in catalog("zh").items() if placeholders(k) != placeholders(v)}
    assert not bad, bad


def test_chinese_catalog_is_really_chinese() -> None:
    han = re.compile(r"[\u4e00-\u9fff]")
    ascii_only = [
        k for k, v in catalog("zh").items() if not han.search(v) and len(placeholders(k)) == 0 and len(k) > 3
    ]
    assert len(ascii_only) < 10, ascii_only


def test_msg_renders_in_the_language_asked() -> None:
    m = msg(
        "There is no order {order_no}. Check the number, or find it with `orderdesk order list`.",
        order_no="SO-X",
    )
    assert "SO-X" in m.render("en") and m.render("en").startswith("There is no order")
    assert "SO-X" in m.render("zh") and m.render("zh") != m.render("en")
    nested = msg("{field} must not be empty.", field=msg("Notes"))
    assert nested.render("zh").startswith(translate("Notes", "zh"))
    assert Label("Draft", "草稿").render("zh") == "草稿"
    assert isinstance(m, Msg)


def test_language_choice_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERDESK_LANG", "zh")
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    assert detect_language(None) == "zh"
    assert detect_language("en") == "en"
    monkeypatch.delenv("ORDERDESK_LANG")
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    assert detect_language(None) == "zh"
    with pytest.raises(ValueError):
        detect_language("fr")
    with pytest.raises(ValueError):
        set_language("fr")
