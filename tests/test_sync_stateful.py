"""Property: several desks make random changes while requests are dropped, responses are lost, the server
answers busy or goes down, and desks sync partially (push only, pull only). Afterwards, once everyone has
synced: every op any desk made was decided exactly once (applied or rejected), none is lost, each applied
effect happened once, and every desk's data equals the central API's."""

from __future__ import annotations

import atexit
import itertools
import tempfile
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from orderdesk import replication as rep
from orderdesk.errors import Refused
from orderdesk.orders import add_note, create_order, edit_order, list_orders, move_order
from orderdesk.stock import adjust_stock
from tests.sync_harness import (
    READY_ORDER,
    FaultyTransport,
    PgCluster,
    WorldTemplate,
    build_template,
    business_state,
    open_world,
)

DESKS = ("a", "b", "c")
# transition -> a user allowed to make it
MOVES = {
    "sign_contract": "wang",
    "pick_from_stock": "liu",
    "ship": "liu",
    "cancel": "wang",
    "hold": "zhao",
    "resume": "zhao",
    "hand_to_carrier": "liu",
}
FAULTS = st.sampled_from([None, "drop", "lose", "lose", "503"])
_counter = itertools.count()


@cache
def template() -> WorldTemplate:
    return build_template(Path(tempfile.mkdtemp(prefix="orderdesk-stateful-")) / "tpl", list(DESKS))


@cache
def pg_template() -> WorldTemplate:
    """The same world with the central API on a real PostgreSQL (started once, stopped at exit)."""
    cluster = PgCluster()
    atexit.register(cluster.stop)
    return build_template(
        Path(tempfile.mkdtemp(prefix="orderdesk-stateful-pg-")) / "tpl", list(DESKS), pg=cluster
    )


class DesksAndServer(RuleBasedStateMachine):
    template = staticmethod(template)

    def __init__(self) -> None:
        super().__init__()
        self.world = open_world(self.template(), Path(tempfile.mkdtemp(prefix="orderdesk-run-")))
        self.made: dict[str, set[str]] = {d: set() for d in DESKS}
        self.notes: dict[str, str] = {}  # note text -> op id (each text unique)
        self.deltas: dict[str, int] = {}  # op id -> stock delta on BR-6204
        self.server_up = True

    def _made(self, desk: str) -> str:
        store = self.world.desks[desk]
        with store.read() as session:
            op_id = (
                session.connection()
                .exec_driver_sql("SELECT op_id FROM outbox ORDER BY seq DESC LIMIT 1")
                .scalar_one()
            )
        self.made[desk].add(op_id)
        return op_id

    def _orders(self, desk: str) -> list[str]:
        return [o.order_no for o in list_orders(self.world.desks[desk], limit=50)[1]] or [READY_ORDER]

    # -- local work -------------------------------------------------------------------------------------
    @rule(desk=st.sampled_from(DESKS), qty=st.integers(1, 5))
    def create(self, desk: str, qty: int) -> None:
        create_order(
            self.world.desks[desk], customer="C001", lines=[("HX-M8", qty)], user="wang", route="from_stock"
        )
        self._made(desk)

    @rule(desk=st.sampled_from(DESKS), pick=st.integers(0, 50), move=st.sampled_from(sorted(MOVES)))
    def move(self, desk: str, pick: int, move: str) -> None:
        orders = self._orders(desk)
        try:
            move_order(self.world.desks[desk], order_no=orders[pick % len(orders)], to=move, user=MOVES[move])
        except Refused:
            return
        self._made(desk)

    @rule(
        desk=st.sampled_from(DESKS), pick=st.integers(0, 50), field=st.sampled_from(["notes", "ship_address"])
    )
    def edit(self, desk: str, pick: int, field: str) -> None:
        orders = self._orders(desk)
        try:
            edit_order(
                self.world.desks[desk],
                order_no=orders[pick % len(orders)],
                changes={field: f"{desk}-{next(_counter)}"},
                user="wang",
            )
        except Refused:
            return
        self._made(desk)

    @rule(desk=st.sampled_from(DESKS), pick=st.integers(0, 50))
    def note(self, desk: str, pick: int) -> None:
        orders = self._orders(desk)
        text = f"note {desk} {next(_counter)}"
        add_note(self.world.desks[desk], order_no=orders[pick % len(orders)], text=text, user="liu")
        self.notes[text] = self._made(desk)

    @rule(desk=st.sampled_from(DESKS), delta=st.integers(-3, 3).filter(bool))
    def stock(self, desk: str, delta: int) -> None:
        try:
            adjust_stock(self.world.desks[desk], sku="BR-6204", delta=delta, user="liu")
        except Refused:
            return
        self.deltas[self._made(desk)] = delta

    # -- sync under faults ------------------------------------------------------------------------------
    @rule(
        desk=st.sampled_from(DESKS),
        faults=st.lists(FAULTS, min_size=1, max_size=3),
        how=st.sampled_from(["both", "push", "pull"]),
    )
    def sync(self, desk: str, faults: list[str | None], how: str) -> None:
        client = self.world.client(desk, transport=FaultyTransport(list(faults)))
        if how == "both":
            client.sync_once()  # offline or not, it never raises
            return
        try:
            client.push() if how == "push" else client.pull()
        except Exception as exc:  # Offline / SyncStuck are the expected failures here
            assert type(exc).__name__ in ("Offline", "SyncStuck"), repr(exc)

    @precondition(lambda self: self.server_up)
    @rule()
    def server_down(self) -> None:
        self.world.server.stop()
        self.server_up = False

    @precondition(lambda self: not self.server_up)
    @rule()
    def server_up_again(self) -> None:
        self.world.server.start()
        self.server_up = True

    # -- the properties ---------------------------------------------------------------------------------
    def teardown(self) -> None:
        try:
            if not self.server_up:
                self.world.server.start()
            for _round in range(2):
                for desk in DESKS:
                    self.world.sync(desk)
            server = self.world.store
            with server.read() as session:
                conn = session.connection()
                decided = {
                    r[0]: (r[1], r[2])
                    for r in conn.exec_driver_sql("SELECT op_id, desk_id, status FROM sync_op").fetchall()
                }
                notes = [r[0] for r in conn.exec_driver_sql("SELECT text FROM order_note").fetchall()]
                stock = conn.exec_driver_sql(
                    "SELECT stock_on_hand FROM product WHERE sku = 'BR-6204'"
                ).scalar_one()
            for desk in DESKS:
                store = self.world.desks[desk]
                assert rep.outbox_count(store) == 0, f"desk {desk} still has ops waiting"
                with store.read() as session:
                    outcomes = {
                        r[0]: r[1]
                        for r in session.connection().exec_driver_sql(
                            "SELECT op_id, status FROM sync_outcome"
                        )
                    }
                assert set(outcomes) == self.made[desk], f"desk {desk}: ops lost or invented"
                assert all(decided[op][1] == outcomes[op] for op in outcomes), "desk and server disagree"
            assert set(decided) == set().union(*self.made.values())
            for text, op in self.notes.items():  # an applied note exists exactly once, a rejected one not
                assert notes.count(text) == (1 if decided[op][1] == "applied" else 0), text
            applied = sum(d for op, d in self.deltas.items() if decided[op][1] == "applied")
            assert stock == 5 + applied and stock >= 0
            expected = business_state(server)
            for desk in DESKS:
                assert business_state(self.world.desks[desk]) == expected, (
                    f"desk {desk} differs from the server"
                )
        finally:
            self.world.close()


DesksAndServer.TestCase.settings = settings(
    max_examples=10,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=True,
)
TestDesksAndServer = DesksAndServer.TestCase


class DesksAndPostgresServer(DesksAndServer):
    """The same property with the central API on PostgreSQL."""

    template = staticmethod(pg_template)


DesksAndPostgresServer.TestCase.settings = DesksAndServer.TestCase.settings
TestDesksAndPostgresServer = DesksAndPostgresServer.TestCase
