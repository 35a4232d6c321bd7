"""The alert engine on the central API's PostgreSQL store (where it runs when desks sync with a server):
migration 0004's plpgsql tally trigger, a pass that raises and escalates, triage ranking, the delivery
queue's atomic claim."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text

from orderdesk.alerts import acknowledge_alert, list_alerts, run_alert_pass, triage
from orderdesk.catalog import add_customer, add_product
from orderdesk.clock import FixedClock
from orderdesk.notify import NotifyConfig, Webhook, claim, inbox
from orderdesk.orders import create_order, move_order
from orderdesk.store import Store
from orderdesk.users import add_user
from tests.sync_fixtures import pg_cluster  # noqa: F401
from tests.sync_harness import PgCluster

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_desk(pg_cluster: PgCluster) -> Iterator[tuple[Store, FixedClock]]:  # noqa: F811
    clock = FixedClock(datetime(2026, 11, 20, 2, 0, tzinfo=UTC))
    store = Store.open(pg_cluster.url(pg_cluster.create()), create=True, clock=clock)
    for name, roles in {
        "wang": ["sales"],
        "zhao": ["planner"],
        "sun": ["supervisor"],
        "admin": ["admin"],
    }.items():
        add_user(store, name=name, roles=roles, pin="1234")
    add_customer(store, code="C001", name="苏州精工机械有限公司", credit_limit=50_000_000)
    add_product(store, sku="HX-M8", name="六角螺栓 M8x40", unit_price=150, stock_on_hand=5000)
    yield store, clock
    store.close()


def test_the_engine_runs_on_postgresql(pg_desk: tuple[Store, FixedClock]) -> None:
    store, clock = pg_desk
    config = NotifyConfig(webhooks=(Webhook(name="group", kind="wecom", url="http://127.0.0.1:9/x"),))
    first = create_order(
        store, customer="C001", lines=[("HX-M8", 10)], user="wang", promised=date(2026, 12, 31)
    )
    rush = create_order(
        store, customer="C001", lines=[("HX-M8", 1)], user="wang", promised=date(2026, 11, 21), rush=True
    )
    move_order(store, order_no=rush.order_no, to="contract_signed", user="wang")
    with store.read() as session:
        tally = dict(session.execute(text("SELECT state, sum(n) FROM board_tally GROUP BY state")).all())
    assert {k: int(v) for k, v in tally.items()} == {"draft": 1, "contract_signed": 1}  # the plpgsql trigger

    run_alert_pass(store, config)
    clock.advance(hours=48)
    report = run_alert_pass(store, config)
    assert report.raised >= 2
    assert run_alert_pass(store, config).raised == 0  # nothing raised twice
    clock.advance(minutes=15)
    assert run_alert_pass(store, config).escalated >= 1
    total, rows = triage(store, config=config)
    assert total == len(rows) and rows[0].order_no == rush.order_no  # rush and red first
    acknowledge_alert(store, alert_id=rows[0].alert_id, user="zhao", config=config)
    assert any(a.status == "acked" for a in list_alerts(store, order_no=rush.order_no, config=config))
    assert inbox(store, "sun")  # escalated to the supervisor
    taken = claim(store, worker="w1", now=clock.now, limit=100, lease_seconds=300)
    assert taken and claim(store, worker="w2", now=clock.now, limit=100, lease_seconds=300) == []
    assert first.order_no
