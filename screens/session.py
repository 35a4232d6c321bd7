"""Who is at the desk: the logged-in user and the open store, as frozen data the screens share.

Only type-checking imports of the core here, so building the app never pulls in SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orderdesk.i18n import current_language

if TYPE_CHECKING:
    from orderdesk.commands import Actor
    from orderdesk.store import Store
    from orderdesk.workflow import Workflow


@dataclass(frozen=True)
class DeskUser:
    """The person logged in, with what the workflow lets their roles see."""

    name: str
    roles: tuple[str, ...]
    role: str  # the role whose home screen and label are shown (the first in workflow order)
    home: str  # that role's ``home`` in the workflow file: the key into ``HOME_SCREENS``
    see: frozenset[str]  # order fields the user's roles may see (``orders.visible_fields``)

    def may_see(self, field: str) -> bool:
        return field in self.see


def desk_user(workflow: Workflow, actor: Actor) -> DeskUser:
    """Build the ``DeskUser`` for ``actor`` (called from the login worker: it imports the core)."""
    from orderdesk.orders import visible_fields

    ordered = [r for r in workflow.roles if r in actor.roles] or sorted(actor.roles)
    role = ordered[0] if ordered else ""
    home = workflow.roles[role].home if role in workflow.roles else ""
    return DeskUser(
        name=actor.name,
        roles=tuple(ordered),
        role=role,
        home=home,
        see=visible_fields(workflow, actor),
    )


@dataclass(frozen=True)
class DeskSession:
    """An open desk and the user working at it; handed to every screen after login."""

    store: Store
    workflow: Workflow
    user: DeskUser
    db_path: Path

    def role_label(self) -> str:
        role = self.workflow.roles.get(self.user.role)
        return role.label(current_language()) if role else self.user.role

    def role_labels(self, roles: tuple[str, ...]) -> str:
        """Role ids as names in the current language, e.g. for "who must act"."""
        lang = current_language()
        return " / ".join(
            self.workflow.roles[r].label(lang) if r in self.workflow.roles else r for r in roles
        )
