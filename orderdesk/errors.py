"""Errors a person can act on. Each carries a deferred ``Msg`` so it is shown in the reader's language."""

from __future__ import annotations

from orderdesk.i18n import Msg


class OrderdeskError(Exception):
    """Base of every error orderdesk reports to a person instead of a traceback."""

    exit_code = 1

    def __init__(self, message: Msg, *, code: str = "error", who: tuple[str, ...] = ()) -> None:
        super().__init__(message.msgid)
        self.message = message
        self.code = code
        self.who = who  # roles that must act before this can succeed

    def __str__(self) -> str:
        return self.message.render()

    def to_json(self) -> dict[str, object]:
        return {"code": self.code, "message": str(self.message), "who": list(self.who)}


class Refused(OrderdeskError):
    """A domain command declined: nothing was written."""


class StoreError(OrderdeskError):
    """The database file cannot be used as it is (locked, corrupt, unreadable, too new, disk full)."""


class UsageError(OrderdeskError):
    """The request itself is malformed (bad option value, unknown language...)."""

    exit_code = 2
