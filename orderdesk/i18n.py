"""Translations: English message ids, Simplified Chinese catalogs in ``orderdesk/locales/zh/*.toml``.

Messages are kept as ``Msg`` (id + parameters) until shown, so a reason produced on the server or in a
worker is rendered in the language of the person who reads it.
"""

from __future__ import annotations

import locale
import os
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

LANGUAGES = ("en", "zh")
_current = {"lang": ""}


def detect_language(explicit: str | None = None) -> str:
    """Pick the UI language: explicit choice, then ``ORDERDESK_LANG``, then the locale, then English."""
    for candidate in (explicit, os.environ.get("ORDERDESK_LANG")):
        if candidate:
            code = candidate.strip().lower()[:2]
            if code not in LANGUAGES:
                raise ValueError(f"unknown language {candidate!r}: use one of {', '.join(LANGUAGES)}")
            return code
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    loc = locale.getlocale()[0] or ""
    return "zh" if loc.lower().startswith("zh") else "en"


def set_language(lang: str) -> None:
    """Set the process-wide language used by ``_`` and ``str(Msg)``."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}: use one of {', '.join(LANGUAGES)}")
    _current["lang"] = lang


def current_language() -> str:
    if not _current["lang"]:
        _current["lang"] = detect_language()
    return _current["lang"]


@cache
def catalog(lang: str) -> dict[str, str]:
    """All translations for ``lang``, merged from every ``locales/<lang>/*.toml`` file."""
    if lang == "en":
        return {}
    merged: dict[str, str] = {}
    folder = resources.files("orderdesk") / "locales" / lang
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            merged.update(tomllib.loads(entry.read_text(encoding="utf-8")))
    return merged


def translate(msgid: str, lang: str | None = None, **params: Any) -> str:
    """Translate ``msgid`` and fill ``{name}`` placeholders; unknown ids fall back to English."""
    text = catalog(lang or current_language()).get(msgid, msgid)
    return text.format(**params) if params else text


def _(msgid: str, **params: Any) -> str:
    """Translate now, in the current language."""
    return translate(msgid, **params)


@dataclass(frozen=True)
class Msg:
    """A message kept untranslated until it is shown (it may cross a thread or the network)."""

    msgid: str
    params: dict[str, Any] = field(default_factory=dict)

    def render(self, lang: str | None = None) -> str:
        params = {k: (v.render(lang) if isinstance(v, Msg | Label) else v) for k, v in self.params.items()}
        return translate(self.msgid, lang, **params)

    def __str__(self) -> str:
        return self.render()

    def to_json(self) -> dict[str, Any]:
        return {
            "msgid": self.msgid,
            "params": {k: (v.to_json() if isinstance(v, Msg | Label) else v) for k, v in self.params.items()},
        }


@dataclass(frozen=True)
class Label:
    """A name that comes with both languages from data (a workflow state, a role), not from a catalog."""

    en: str
    zh: str

    def render(self, lang: str | None = None) -> str:
        return self.zh if (lang or current_language()) == "zh" and self.zh else self.en

    def __str__(self) -> str:
        return self.render()

    def to_json(self) -> dict[str, str]:
        return {"en": self.en, "zh": self.zh}


def msg(msgid: str, **params: Any) -> Msg:
    """Build a deferred message: ``msg("Order {order_no} not found", order_no=no)``."""
    return Msg(msgid, params)
