"""Who runs the alert jobs, the jobs themselves, and the schema migration 0004 against the models."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from orderdesk import scheduler
from orderdesk.alerts import list_alerts
from orderdesk.clock import FixedClock
from orderdesk.notify import NotifyConfig
from orderdesk.orders import create_order
from orderdesk.scheduler import AlertScheduler, register_alert_runner_policy, run_alert_jobs_here
from orderdesk.store import Store

MY_TABLES = ("alert", "alert_event", "alert_cursor", "notification", "board_tally", "board_flow")


@pytest.fixture
def no_policies(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(scheduler, "_POLICIES", [])
    monkeypatch.delenv("ORDERDESK_ALERT_JOBS", raising=False)
    yield


def test_the_desk_runs_the_jobs_unless_a_policy_or_the_environment_says_otherwise(
    store: Store, monkeypatch: pytest.MonkeyPatch, no_policies: None
) -> None:
    assert run_alert_jobs_here(store) is True
    register_alert_runner_policy(lambda s: None)  # no opinion
    assert run_alert_jobs_here(store) is True
    register_alert_runner_policy(lambda s: False)  # e.g. sync: "this desk is enrolled; the server runs them"
    assert run_alert_jobs_here(store) is False
    monkeypatch.setenv("ORDERDESK_ALERT_JOBS", "here")
    assert run_alert_jobs_here(store) is True
    monkeypatch.setenv("ORDERDESK_ALERT_JOBS", "off")
    assert run_alert_jobs_here(store) is False


def test_run_once_raises_and_delivers(desk: Store, clock: FixedClock) -> None:
    create_order(desk, customer="C001", lines=[("HX-M8", 1)], user="wang", promised=date(2026, 12, 31))
    jobs = AlertScheduler(desk, NotifyConfig())
    jobs.run_once()
    clock.advance(hours=48)
    report, delivery = jobs.run_once()
    assert report is not None and report.raised == 1
    assert delivery is not None and delivery.claimed == 0  # inbox only: nothing to send
    assert jobs.status.last_pass is report and jobs.status.last_error == ""


def test_a_failing_job_is_recorded_and_survives(desk: Store) -> None:
    jobs = AlertScheduler(desk, NotifyConfig())
    desk.close()
    desk.path.write_bytes(b"not a database at all")
    assert jobs.alert_pass() is None
    assert jobs.status.last_error


def test_the_background_scheduler_runs_both_jobs(desk: Store, clock: FixedClock) -> None:
    jobs = AlertScheduler(desk, NotifyConfig())
    ran = {"pass": threading.Event(), "deliver": threading.Event()}
    real_pass, real_deliver = jobs.alert_pass, jobs.deliver

    def alert_pass() -> object:
        result = real_pass()
        ran["pass"].set()
        return result

    def deliver() -> object:
        result = real_deliver()
        ran["deliver"].set()
        return result

    jobs.alert_pass, jobs.deliver = alert_pass, deliver  # type: ignore[method-assign]
    jobs.start()
    try:
        assert sorted(jobs.jobs()) == ["alerts.deliver", "alerts.pass"]
        assert ran["pass"].wait(20) and ran["deliver"].wait(20)  # the first runs are immediate
        jobs.start()  # starting twice is harmless
    finally:
        jobs.shutdown(wait=True)
    assert not jobs.running
    with desk.read() as session:
        assert session.execute(text("SELECT count(*) FROM alert_cursor")).scalar() == 3


def test_migration_0004_matches_the_models(store: Store) -> None:
    inspector = inspect(store.engine)
    for name in MY_TABLES:
        table = SQLModel.metadata.tables[name]
        columns = {c["name"]: c for c in inspector.get_columns(name)}
        assert set(columns) == {c.name for c in table.columns}, name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, (name, column.name)
        indexes = {i["name"] for i in inspector.get_indexes(name)}
        assert {i.name for i in table.indexes} <= indexes, name
    order_indexes = {i["name"] for i in inspector.get_indexes("sales_order")}
    assert {"ix_sales_order_updated_at", "ix_sales_order_state_promised"} <= order_indexes


def test_one_open_alert_per_order_and_kind_is_enforced_by_the_database(
    desk: Store, clock: FixedClock
) -> None:
    create_order(desk, customer="C001", lines=[("HX-M8", 1)], user="wang", promised=date(2026, 12, 31))
    jobs = AlertScheduler(desk, NotifyConfig())
    jobs.run_once()
    clock.advance(hours=48)
    jobs.run_once()
    [alert] = list_alerts(desk, config=NotifyConfig())
    with pytest.raises(Exception, match="UNIQUE"), desk.write() as session:
        session.execute(
            text(
                "INSERT INTO alert (order_id, order_no, kind, topic, severity, state, state_since, due_at, level, "
                "target_role, target_user, mover, status, raised_at, acked_by, snooze_reason, answer, answer_reason, "
                "close_reason, version) SELECT order_id, order_no, kind, topic, severity, state, state_since, due_at, "
                "level, target_role, target_user, mover, status, raised_at, acked_by, snooze_reason, answer, "
                "answer_reason, close_reason, version FROM alert WHERE id = :id"
            ),
            {"id": alert.id},
        )
