"""Sync replays for the alert commands (issue 5): registered into ``orderdesk.replication``.

Alert ids are local to each node (every node that runs the engine raises its own alerts), so the ops of
``acknowledge_alert``, ``answer_ack_request``, ``snooze_alert`` and ``escalate_alert`` name the alert by its
key — order, kind, topic and the order's state it was about (``alerts.AlertKey``) — and the central API runs
the same commands with ``key=``:

* it has that live alert (it runs the engine): the action applies to it, as it would at a desk;
* it has none (it does not run the engine, or the alert closed there), or someone else's action reached it
  first (``alerts.already_done``: already acknowledged, snoozed, escalated that far): the op is **applied** as
  a recorded action that changes nothing — no rejection for a supervisor to dismiss.

Either way the op's event rides on its order's change-log entry (the default ``touches``), so the order's
timeline on every desk shows who acknowledged, answered, snoozed or escalated, and via which desk; a desk's
alert engine then applies the action to that desk's own alert (``alerts._Engine.follow_audit``). Refused
as on a desk: an order the central API does not have, a user without the role, bad text. Ops queued before
the key was carried (with the desk's ``alert_id``, no ``topic``/``state``) match the order's one live alert of
that kind, if there is just one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orderdesk.alerts import AlertKey, acknowledge_alert, answer_ack_request, escalate_alert, snooze_alert
from orderdesk.replication import REPLAYS, Replay
from orderdesk.store import Store


def _replay_acknowledge(store: Store, a: dict[str, Any], user: str) -> object:
    return acknowledge_alert(store, key=AlertKey.from_args(a), user=user, note=str(a.get("note") or ""))


def _replay_answer(store: Store, a: dict[str, Any], user: str) -> object:
    return answer_ack_request(
        store, key=AlertKey.from_args(a), user=user, answer=a["answer"], reason=str(a.get("reason") or "")
    )


def _replay_snooze(store: Store, a: dict[str, Any], user: str) -> object:
    return snooze_alert(
        store,
        key=AlertKey.from_args(a),
        user=user,
        until=datetime.fromisoformat(a["until"]),  # the command takes a time without an offset as UTC
        reason=str(a.get("reason") or ""),
    )


def _replay_escalate(store: Store, a: dict[str, Any], user: str) -> object:
    level = a.get("level")
    return escalate_alert(
        store,
        key=AlertKey.from_args(a),
        user=user,
        reason=str(a.get("reason") or ""),
        to_level=None if level is None else int(level),
    )


REPLAYS.update(
    {
        "acknowledge_alert": Replay(_replay_acknowledge),
        "answer_ack_request": Replay(_replay_answer),
        "snooze_alert": Replay(_replay_snooze),
        "escalate_alert": Replay(_replay_escalate),
    }
)
