"""Running the alert engine on a schedule (APScheduler 3, ``BackgroundScheduler``), and deciding where.

Two jobs: ``alerts.pass`` (the overdue / promised-date / rush scan, escalations, acknowledgement deadlines,
snoozes ending and broadcasts of moves — one incremental pass, milliseconds) every ``scan_seconds``, and
``alerts.deliver`` (send queued e-mail and webhook messages) every ``deliver_seconds``. Each job runs on the
scheduler's own threads with ``max_instances=1`` and ``coalesce``: a slow delivery never delays a pass, and a
missed run is made up once, not many times. Business time comes from ``store.clock`` (tests move a clock and
call ``run_once``); the scheduler's wall clock only decides when to look.

**Who runs it.** The desk itself, unless it syncs with a central server: then the server runs it and desks
see the alerts through sync. ``run_alert_jobs_here(store)`` answers that; the sync side registers a policy
with ``register_alert_runner_policy`` (the core cannot import ``sync``). ``ORDERDESK_ALERT_JOBS=here|off``
overrides both. Several processes running the jobs on one database are safe anyway (claims and unique
keys), just wasteful.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orderdesk.alerts import PassReport, run_alert_pass
from orderdesk.notify import DeliveryReport, NotifyConfig, deliver_pending, load_notify_config
from orderdesk.store import Store

log = logging.getLogger("orderdesk.alerts")

AlertRunnerPolicy = Callable[[Store], "bool | None"]
_POLICIES: list[AlertRunnerPolicy] = []


def register_alert_runner_policy(policy: AlertRunnerPolicy) -> None:
    """Add a say in who runs the alert jobs: return False ("the server does"), True, or None (no opinion).

    The sync engineer registers one that returns False when the desk is enrolled with a central server, and
    the server process calls ``AlertScheduler(store).start()`` (or ``orderdesk alerts run``) itself.
    """
    if policy not in _POLICIES:
        _POLICIES.append(policy)


def run_alert_jobs_here(store: Store) -> bool:
    """True if this process should run the alert jobs for ``store``: the desk itself unless it syncs with a
    central server (a registered policy says so), with ``ORDERDESK_ALERT_JOBS=here|off`` as the override."""
    forced = os.environ.get("ORDERDESK_ALERT_JOBS", "").strip().lower()
    if forced in ("here", "on", "1", "yes"):
        return True
    if forced in ("off", "server", "0", "no"):
        return False
    for policy in _POLICIES:
        verdict = policy(store)
        if verdict is not None:
            return bool(verdict)
    return True


@dataclass
class JobStatus:
    """The last outcome of each job, for the screens ("alerts last checked 12 s ago", failures)."""

    last_pass: PassReport | None = None
    last_pass_at: datetime | None = None
    last_delivery: DeliveryReport | None = None
    last_error: str = ""


class AlertScheduler:
    """The alert jobs of one store. ``start()`` runs them in the background; ``run_once()`` runs each once now."""

    def __init__(self, store: Store, config: NotifyConfig | None = None) -> None:
        self.store = store
        self.config = config or load_notify_config()
        self.status = JobStatus()
        self._scheduler: Any = None
        self._lock = threading.Lock()

    # -- the jobs ---------------------------------------------------------------------------------------
    def alert_pass(self) -> PassReport | None:
        try:
            report = run_alert_pass(self.store, self.config)
        except Exception as exc:  # a job must survive a locked database or a bad row and try again later
            self.status.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("alert pass failed")
            return None
        self.status.last_pass, self.status.last_pass_at = report, self.store.clock()
        return report

    def deliver(self) -> DeliveryReport | None:
        try:
            report = deliver_pending(self.store, self.config)
        except Exception as exc:
            self.status.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("delivery failed")
            return None
        self.status.last_delivery = report
        return report

    def run_once(self) -> tuple[PassReport | None, DeliveryReport | None]:
        """One pass, then one delivery round (the CLI's ``alerts check`` and the tests)."""
        return self.alert_pass(), self.deliver()

    # -- scheduling -------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._scheduler is not None and self._scheduler.running

    def start(self) -> None:
        """Start both jobs on a background scheduler; the first pass runs at once."""
        from apscheduler.schedulers.background import BackgroundScheduler

        with self._lock:
            if self.running:
                return
            scheduler = BackgroundScheduler(
                timezone=UTC,
                job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
            )
            now = datetime.now(UTC)
            scheduler.add_job(
                self.alert_pass,
                "interval",
                seconds=max(1, self.config.alerts.scan_seconds),
                id="alerts.pass",
                name="overdue scan, escalation and deadlines",
                next_run_time=now,
            )
            scheduler.add_job(
                self.deliver,
                "interval",
                seconds=max(1, self.config.delivery.deliver_seconds),
                id="alerts.deliver",
                name="deliver notifications",
                next_run_time=now,
            )
            scheduler.start()
            self._scheduler = scheduler

    def run_soon(self, job_id: str = "alerts.pass") -> None:
        """Ask for a job to run now (e.g. after a move that asks for acknowledgement)."""
        if self.running:
            self._scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))

    def jobs(self) -> list[str]:
        return [job.id for job in self._scheduler.get_jobs()] if self._scheduler is not None else []

    def shutdown(self, *, wait: bool = False) -> None:
        with self._lock:
            if self._scheduler is not None and self._scheduler.running:
                self._scheduler.shutdown(wait=wait)
            self._scheduler = None
