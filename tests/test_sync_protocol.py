# ruff: noqa: F811 - pytest fixtures are imported from tests/sync_fixtures.py
"""The sync protocol against a real server on loopback: the central API's HTTP surface (enrolment, tokens,
size limits, malformed bodies, the push rules: same op twice, out of order, changed content; the OpenAPI
page), ops decided together, the desk's pipelined and split pushes, and how the desk applies pulled pages."""

from __future__ import annotations

import dataclasses
import json
import socket
import sqlite3
import sys
import threading
from typing import Any

import httpx
import orjson
import pytest

from orderdesk import replication as rep
from orderdesk.canonical import canonical_json
from orderdesk.errors import OrderdeskError, StoreError
from orderdesk.orders import add_note, edit_order, show_order
from orderdesk.scanning import choose_packing_preset, local_today, open_for_packing, record_scan
from orderdesk.store import Store
from sync.client import SyncStuck, enrol
from tests.desks_support import ready_to_pack
from tests.sync_fixtures import BOTH_STORES, any_world, pg_cluster, pg_template, sqlite_template, world  # noqa: F401
from tests.sync_harness import READY_ORDER, World, add_notes, converge, server_note_texts, table_count

WRITES = ("sync_op", "sync_change", "audit_record", "sales_order", "order_note")


def counts(store: Store) -> dict[str, int]:
    return {t: table_count(store, t) for t in WRITES}


def token(world: World, desk: str) -> str:
    link = rep.get_link(world.desks[desk])
    assert link is not None
    return link.token


def push_body(world: World, desk: str) -> dict[str, Any]:
    desk_id, epoch, ops = rep.pending_ops(world.desks[desk])
    return {"desk_id": desk_id, "epoch": epoch, "ops": [o.to_json() for o in ops], "note_entries": True}


def forge(op: dict[str, Any], **args: Any) -> None:
    """Change a pushed op's arguments as a forged or broken desk would, its hash made to match."""
    op["args"] = {**op["args"], **args}
    op["payload_hash"] = rep.payload_hash(op["command"], op["args"], op["base_version"], op["user_name"])


def post(world: World, path: str, *, desk: str | None = "a", **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", {})
    if desk:
        headers["Authorization"] = f"Bearer {token(world, desk)}"
    return httpx.post(world.server.url + path, headers=headers, timeout=30, **kwargs)


@BOTH_STORES
def test_same_push_twice_returns_the_stored_outcomes_and_applies_nothing_twice(world: World) -> None:
    add_note(world.desks["a"], order_no=READY_ORDER, text="第一次", user="liu")
    edit_order(world.desks["a"], order_no=READY_ORDER, changes={"notes": "易碎"}, user="wang")
    body = push_body(world, "a")
    first = post(world, "/v1/push", json=body)
    assert first.status_code == 200
    after_first = counts(world.store)
    second = post(world, "/v1/push", json=body)
    assert second.status_code == 200
    assert second.json()["results"] == first.json()["results"]
    assert counts(world.store) == after_first
    assert [r["status"] for r in first.json()["results"]] == ["applied", "applied"]


@BOTH_STORES
def test_out_of_order_push_is_refused_with_where_the_desk_stands(world: World) -> None:
    for n in range(3):
        add_note(world.desks["a"], order_no=READY_ORDER, text=f"n{n}", user="liu")
    body = push_body(world, "a")
    before = counts(world.store)
    late = {**body, "ops": body["ops"][2:]}  # op 3 first: ops 1 and 2 are missing
    response = post(world, "/v1/push", json=late)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "seq_gap" and error["expected_seq"] == 1
    assert counts(world.store) == before
    status = httpx.get(
        world.server.url + "/v1/status", headers={"Authorization": f"Bearer {token(world, 'a')}"}
    ).json()
    assert status["streams"] == {"1": 0}
    # In order, all three go through, and the stream says so.
    assert post(world, "/v1/push", json=body).status_code == 200
    status = httpx.get(
        world.server.url + "/v1/status", headers={"Authorization": f"Bearer {token(world, 'a')}"}
    ).json()
    assert status["streams"] == {"1": 3}


@BOTH_STORES
def test_a_gap_in_the_middle_of_a_push_keeps_the_ops_before_it(world: World) -> None:
    """Ops are decided several to a transaction: a protocol error at the third op still commits the first
    two, and the 409 hands their outcomes back with it."""
    for n in range(4):
        add_note(world.desks["a"], order_no=READY_ORDER, text=f"g{n}", user="liu")
    body = push_body(world, "a")
    before = counts(world.store)
    gapped = {**body, "ops": [*body["ops"][:2], *body["ops"][3:]]}  # op 3 is missing
    response = post(world, "/v1/push", json=gapped)
    assert response.status_code == 409
    data = response.json()
    assert data["error"]["code"] == "seq_gap" and data["error"]["expected_seq"] == 3
    assert [(r["seq"], r["status"]) for r in data["results"]] == [(1, "applied"), (2, "applied")]
    assert counts(world.store)["sync_op"] == before["sync_op"] + 2
    assert counts(world.store)["order_note"] == before["order_note"] + 2
    assert (
        post(world, "/v1/push", json=body).status_code == 200
    )  # in order: the first two are stored outcomes
    assert counts(world.store)["order_note"] == before["order_note"] + 4


@BOTH_STORES
def test_same_op_id_with_different_content_is_a_protocol_error(world: World) -> None:
    add_note(world.desks["a"], order_no=READY_ORDER, text="原文", user="liu")
    body = push_body(world, "a")
    assert post(world, "/v1/push", json=body).status_code == 200
    before = counts(world.store)
    forged = json.loads(json.dumps(body))
    forge(forged["ops"][0], text="改过")
    response = post(world, "/v1/push", json=forged)
    assert response.status_code == 409 and response.json()["error"]["code"] == "op_conflict"
    assert counts(world.store) == before


@BOTH_STORES
def test_an_op_that_does_not_match_its_hash_is_refused(world: World) -> None:
    add_note(world.desks["a"], order_no=READY_ORDER, text="原文", user="liu")
    body = push_body(world, "a")
    body["ops"][0]["args"]["text"] = "damaged on the way"
    before = counts(world.store)
    response = post(world, "/v1/push", json=body)
    assert response.status_code == 409 and response.json()["error"]["code"] == "bad_hash"
    assert counts(world.store) == before


@BOTH_STORES
@pytest.mark.parametrize("cut", [1, 10, -1])
def test_truncated_json_is_400_and_nothing_is_written(world: World, cut: int) -> None:
    add_note(world.desks["a"], order_no=READY_ORDER, text="半截", user="liu")
    raw = json.dumps(push_body(world, "a")).encode()
    before = counts(world.store)
    response = post(world, "/v1/push", content=raw[:cut], headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_json"
    assert counts(world.store) == before


@BOTH_STORES
def test_a_body_that_is_valid_json_but_not_a_push_is_400(world: World) -> None:
    before = counts(world.store)
    response = post(world, "/v1/push", json={"desk_id": "x", "epoch": 1, "ops": [{"seq": "one"}]})
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"
    assert counts(world.store) == before


@BOTH_STORES
def test_oversized_request_is_413_without_being_read(world: World) -> None:
    before = counts(world.store)
    response = post(
        world,
        "/v1/push",
        content=b"[" + b"0," * 5_000_000 + b"0]",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert counts(world.store) == before


@BOTH_STORES
def test_oversized_chunked_request_is_413(world: World) -> None:
    """No Content-Length (chunked): the limit is enforced on the bytes as they arrive."""

    def chunks() -> Any:
        for _ in range(100):
            yield b" " * 100_000

    before = counts(world.store)
    response = post(world, "/v1/push", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert counts(world.store) == before


@BOTH_STORES
def test_no_token_unknown_token_revoked_desk_and_other_desk_are_refused(world: World) -> None:
    add_note(world.desks["a"], order_no=READY_ORDER, text="谁", user="liu")
    body = push_body(world, "a")
    before = counts(world.store)
    assert post(world, "/v1/push", desk=None, json=body).status_code == 401
    bad = {"Authorization": "Bearer " + token(world, "a")[:-4] + "AAAA"}
    assert post(world, "/v1/push", desk=None, json=body, headers=bad).status_code == 401
    # Desk b's token, writing as desk a.
    response = post(world, "/v1/push", desk="b", json=body)
    assert response.status_code == 403 and response.json()["error"]["code"] == "wrong_desk"
    assert httpx.get(world.server.url + "/v1/changes").status_code == 401
    rep.revoke_desk(world.store, body["desk_id"])
    response = post(world, "/v1/push", json=body)
    assert response.status_code == 403 and response.json()["error"]["code"] == "revoked"
    assert counts(world.store) == before
    # The desk's own client reports it instead of retrying forever, and keeps the op.
    report = world.client("a").sync_once()
    assert report.error is not None and "revoked" in str(report.error)
    assert rep.outbox_count(world.desks["a"]) == 1


@BOTH_STORES
def test_enrolment_code_works_once_and_the_token_is_stored_hashed(world: World, tmp_path: Any) -> None:
    code = rep.create_enrol_code(world.store, name="Warehouse 3")
    desk = Store.open(tmp_path / "c.db", create=True)
    enrolment = enrol(desk, server_url=world.server.url, code=code, name="Warehouse 3")
    assert enrolment.desk_code not in ("D1", "D2")  # every desk numbers its orders with its own code
    with world.store.read() as session:
        hashes = session.connection().exec_driver_sql("SELECT token_hash FROM sync_desk").scalars().all()
    assert enrolment.token not in hashes and all(len(h) == 64 for h in hashes)
    assert {u.name for u in __import__("orderdesk.users", fromlist=["list_users"]).list_users(desk)} >= {
        "admin"
    }
    again = Store.open(tmp_path / "d.db", create=True)
    with pytest.raises(SyncStuck) as err:
        enrol(again, server_url=world.server.url, code=code)
    assert "unknown, used or expired" in str(err.value)
    assert rep.get_link(again) is None
    desk.close()
    again.close()


@BOTH_STORES
def test_openapi_is_published(world: World) -> None:
    spec = httpx.get(world.server.url + "/openapi.json").json()
    assert {"/v1/push", "/v1/changes", "/v1/snapshot", "/v1/enrol", "/v1/rekey", "/v1/status"} <= set(
        spec["paths"]
    )
    assert httpx.get(world.server.url + "/docs").status_code == 200


def test_the_server_serves_on_a_real_socket(world: World) -> None:
    with socket.create_connection(("127.0.0.1", world.server.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"200 OK" in s.recv(1000)


def test_push_and_pull_on_both_stores(any_world: World) -> None:
    """The same properties hold with the central API on SQLite and on PostgreSQL."""
    w = any_world
    edit_order(w.desks["a"], order_no=READY_ORDER, changes={"notes": "小心轻放"}, user="wang")
    body = push_body(w, "a")
    first = post(w, "/v1/push", json=body).json()
    assert post(w, "/v1/push", json=body).json() == first
    w.sync("b")
    from orderdesk.orders import show_order

    assert show_order(w.desks["b"], READY_ORDER).notes == "小心轻放"


def test_amounts_past_21_million_cny_sync_on_both_stores(any_world: World) -> None:
    """Money is 64-bit in fen on both stores: a 60-million-CNY order is pushed, applied and pulled intact
    (a 32-bit column on PostgreSQL would refuse it, and the desk would retry it forever)."""
    from orderdesk.catalog import add_product
    from orderdesk.orders import create_order, show_order

    w = any_world
    price = 3_000_000_000  # fen: 30 million CNY, past 2**31 - 1
    add_product(w.store, sku="TURBINE-1", name="燃气轮机", unit_price=price, user="admin")
    w.sync("a")
    order_no = create_order(w.desks["a"], customer="C001", lines=[("TURBINE-1", 2)], user="wang").order_no
    report = w.sync("a")
    assert report.error is None and report.rejected == 0 and rep.outbox_count(w.desks["a"]) == 0
    assert show_order(w.store, order_no).summary.amount == 2 * price
    w.sync("b")
    assert show_order(w.desks["b"], order_no).summary.amount == 2 * price


def test_ops_decided_together_publish_the_committed_image_and_keep_no_outbox_copy(any_world: World) -> None:
    """A push's ops are decided in one transaction: the order's first change-log entry in it carries the
    order as that transaction committed it (nobody ever saw it in between), as of its last entry, and the
    later ones carry no copy of it. A note is an entry of its own, named by the op that added it, and leaves
    the order's image alone. The central API, nobody's desk, keeps no outbox copy of what it replayed."""
    w = any_world
    a = w.desks["a"]
    add_note(a, order_no=READY_ORDER, text="第一条", user="liu")
    edit_order(a, order_no=READY_ORDER, changes={"notes": "易碎"}, user="wang")
    add_note(a, order_no=READY_ORDER, text="第二条", user="liu")
    edit_order(a, order_no=READY_ORDER, changes={"notes": "易碎，轻放"}, user="wang")
    before = table_count(w.store, "sync_change")
    desk_id, epoch, ops = rep.pending_ops(a)
    results, error = rep.decide_ops(
        w.store, desk_id, epoch, ops, budget_s=60
    )  # one transaction, however slow
    assert error is None and [r.status for r in results] == ["applied"] * 4
    assert table_count(w.store, "outbox") == 0  # nothing written to be published again
    with w.store.read() as session:
        entries = (
            session.connection()
            .exec_driver_sql(
                f"SELECT seq, kind, key, image, event FROM sync_change WHERE seq > {before} ORDER BY seq"
            )
            .all()
        )
        committed = rep.dump_order(session, READY_ORDER)
    assert [(kind, json.loads(event)["command"]) for _, kind, _, _, event in entries] == [
        ("note", "add_note"),
        ("order", "edit_order"),
        ("note", "add_note"),
        ("order", "edit_order"),
    ]
    notes, orders = entries[0::2], entries[1::2]
    assert [key for _, _, key, _, _ in notes] == [ops[0].op_id, ops[2].op_id]
    assert [json.loads(image)["text"] for _, _, _, image, _ in notes] == ["第一条", "第二条"]
    assert all(json.loads(image)["order_no"] == READY_ORDER for _, _, _, image, _ in notes)
    (_, _, _, first_image, _), (last, _, _, later, _) = orders
    assert json.loads(first_image) == {**json.loads(json.dumps(committed)), "_as_of": last}
    assert later == rep.SAME_IMAGE
    assert committed is not None and committed["notes"] == "易碎，轻放" and "_notes" not in committed
    rep.record_outcomes(a, [r.to_json() for r in results])
    converge(w)


def two_edits_in_one_transaction(w: World) -> list[rep.OpResult]:
    """Desk a edits the ready order's notes twice; the central API decides both in one transaction (their
    outcomes are not recorded on a yet)."""
    a = w.desks["a"]
    edit_order(a, order_no=READY_ORDER, changes={"notes": "轻放"}, user="wang")
    edit_order(a, order_no=READY_ORDER, changes={"notes": "易碎"}, user="wang")
    desk_id, epoch, ops = rep.pending_ops(a)
    results, error = rep.decide_ops(w.store, desk_id, epoch, ops, budget_s=60)  # one transaction
    assert error is None and [r.status for r in results] == ["applied", "applied"]
    return results


def test_an_edit_made_after_pulling_part_of_a_transaction_is_based_on_what_it_showed(world: World) -> None:
    """Desk b pulls only the first entry of a push that desk a's two ops made in one transaction: the image
    it applies is the committed one (a's later edit included), so b's edit of that field is based on the
    state b showed, not a stale one: applied, not kept as a conflict."""
    w = world
    a, b = w.desks["a"], w.desks["b"]
    results = two_edits_in_one_transaction(w)
    rep.record_outcomes(a, [r.to_json() for r in results])
    link = rep.get_link(b)
    assert link is not None
    page = rep.changes_after(w.store, link.cursor, limit=1)
    assert [json.loads(e[4])["command"] for e in page.entries] == ["edit_order"]
    rep.apply_changes(b, page.entries, next_cursor=page.next_after or link.cursor)
    assert show_order(b, READY_ORDER).notes == "易碎"
    edit_order(b, order_no=READY_ORDER, changes={"notes": "易碎，轻放"}, user="wang")
    report = w.sync("b")
    assert (report.applied, report.rejected) == (1, 0)
    assert show_order(w.store, READY_ORDER).notes == "易碎，轻放"
    converge(w)


def test_a_pull_page_stops_at_its_byte_budget_but_is_never_empty(any_world: World) -> None:
    """A page holds at most about ``max_bytes`` of JSON (a desk decodes it without stalling its screen), one
    entry at least however large, and paging through them skips nothing. On both stores, whose text each
    page reads as the UTF-8 bytes stored (Chinese notes: three bytes a character), as it sends them."""
    world = any_world
    for n in range(6):
        add_note(world.desks["a"], order_no=READY_ORDER, text=f"第{n}条" * 50, user="liu")
    add_note(world.desks["a"], order_no=READY_ORDER, text='引号"与反斜杠\\', user="liu")  # escaped in JSON
    world.sync("a")
    every = rep.changes_after(world.store, 0, limit=10_000)
    assert len(every.entries) >= 7
    first = rep.changes_after(world.store, 0, max_bytes=1).entries
    assert [e[0] for e in first] == [every.entries[0][0]]
    budget = max(len(e[3]) + len(e[4]) for e in every.entries) * 2
    seen, after, pages = [], 0, 0
    while True:
        page = rep.changes_after(world.store, after, max_bytes=budget)
        if not page.entries:
            break
        pages += 1
        assert len(page.entries) == 1 or sum(len(e[3]) + len(e[4]) for e in page.entries) <= budget
        seen += [e[0] for e in page.entries]
        after = page.next_after or after
    assert seen == [e[0] for e in every.entries]
    assert pages >= 3  # at most two of the six large entries fit in one page
    texts = [json.loads(e[3])["text"] for e in every.entries if e[1] == "note"]
    assert texts[-7:] == [f"第{n}条" * 50 for n in range(6)] + ['引号"与反斜杠\\']
    sent = json.loads(every.body())
    assert [list(e[:3]) for e in sent["entries"]] == [list(e[:3]) for e in every.entries]
    assert sent["entries"][-1][3] == json.loads(every.entries[-1][3] or '""')


def test_only_pulled_pages_and_push_outcomes_commit_without_waiting_for_the_disk(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The desk's writes a sync makes that the central API can send again (a pulled page, the outcomes of
    pushed ops) are refetchable; the desk's own commands are not."""
    a = world.desks["a"]
    write = Store.write
    seen: list[tuple[str, bool]] = []

    def spy(self: Store, *, refetchable: bool = False) -> Any:
        if self is a:
            seen.append((sys._getframe(1).f_code.co_name, refetchable))
        return write(self, refetchable=refetchable)

    monkeypatch.setattr(Store, "write", spy)
    add_note(a, order_no=READY_ORDER, text="同步", user="liu")
    add_note(world.store, order_no=READY_ORDER, text="总部", user="wang")
    world.sync("a")
    assert {name for name, refetchable in seen if refetchable} == {"apply_changes", "record_outcomes"}
    assert ("command_batch", False) in seen  # the note made on the desk (add_note is set-based)


def test_a_pull_that_is_caught_up_leaves_what_it_applied_in_the_database_file(world: World) -> None:
    """Pulled pages commit without checkpointing the WAL each time (see ``Store.write``); once caught up the
    pull checkpoints, so the desk's next write that waits for the disk does not pay for copying them. Read
    with ``immutable=1``, which ignores the WAL, the file itself holds the pulled note."""
    a = world.desks["a"]
    world.sync("a")
    add_note(world.store, order_no=READY_ORDER, text="总部已确认", user="wang")
    world.client("a").pull()
    assert a.path is not None
    file_only = sqlite3.connect(f"file:{a.path}?immutable=1", uri=True)
    try:
        texts = [t for (t,) in file_only.execute("SELECT text FROM order_note")]
    finally:
        file_only.close()
    assert "总部已确认" in texts


def test_a_pull_pauses_garbage_collection_only_while_it_holds_a_page(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding and applying a page run with the cyclic collector paused (each collection walked the page's
    tens of thousands of fresh objects again); it runs again once the page is applied, also when applying
    fails."""
    import gc

    real = rep.apply_changes
    seen: list[bool] = []

    def spy(*args: Any, **kwargs: Any) -> int:
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(rep, "apply_changes", spy)
    add_note(world.store, order_no=READY_ORDER, text="到货后请电话联系", user="liu")
    world.sync("a")
    assert seen and not any(seen)
    assert gc.isenabled()

    def fail(*args: Any, **kwargs: Any) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(rep, "apply_changes", fail)
    add_note(world.store, order_no=READY_ORDER, text="再联系一次", user="liu")
    with pytest.raises(OSError):
        world.client("a").sync_once()
    assert gc.isenabled()


@BOTH_STORES
def test_a_run_of_notes_with_a_bad_one_in_the_middle_rejects_only_that_one(world: World) -> None:
    """Consecutive notes are replayed set-based; the one the command refuses (here its order is unknown to
    the central API) is rejected alone, the others apply in order, each with its own change-log entry, audit
    record and outcome."""
    from orderdesk import audit

    add_notes(world.desks["a"], ["前", "中", "后"])
    body = push_body(world, "a")
    forge(body["ops"][1], order_no="SO-XX-9999999")
    before = counts(world.store)
    response = post(world, "/v1/push", json=body)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["status"], r["code"]) for r in results] == [
        ("applied", ""),
        ("rejected", "unknown_order"),
        ("applied", ""),
    ]
    after = counts(world.store)
    assert {t: after[t] - before[t] for t in WRITES} == {
        "sync_op": 3,
        "sync_change": 2,
        "audit_record": 2,
        "sales_order": 0,
        "order_note": 2,
    }
    with world.store.read() as session:
        conn = session.connection()
        log = conn.exec_driver_sql(
            "SELECT seq, op_id, event FROM sync_change ORDER BY seq DESC LIMIT 2"
        ).all()[::-1]
        _checked, breaks = audit.verify(session)
    assert server_note_texts(world)[-2:] == ["前", "后"]
    assert [(seq, op) for seq, op, _e in log] == [
        (results[0]["change_seq"], results[0]["op_id"]),
        (results[2]["change_seq"], results[2]["op_id"]),
    ]
    assert [json.loads(e)["detail"]["text"] for _s, _o, e in log] == ["前", "后"]
    assert breaks == []


def _sends(monkeypatch: pytest.MonkeyPatch, world: World) -> list[tuple[int, int, int]]:
    """(first seq, ops, ops still in the outbox) for every push the desk sends, taken as it sends it."""
    from sync.client import SyncClient

    seen: list[tuple[int, int, int]] = []
    real = SyncClient._send

    def send(self: SyncClient, *args: Any) -> Any:
        sent = real(self, *args)
        seen.append((sent.ops[0].seq, len(sent.ops), rep.outbox_count(world.desks["a"])))
        return sent

    monkeypatch.setattr(SyncClient, "_send", send)
    return seen


class PushWatch(httpx.BaseTransport):
    """A real transport that notes every push as it goes out: (first seq, ops, body bytes)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.pushes: list[tuple[int, int, int]] = []
        self.sent = threading.Condition()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/push":
            ops = json.loads(request.content)["ops"]
            with self.sent:
                self.pushes.append((ops[0]["seq"], len(ops), len(request.content)))
                self.sent.notify_all()
        return self.inner.handle_request(request)

    def wait_for(self, pushes: int) -> bool:
        """Whether ``pushes`` pushes have gone out, waiting up to 10 s for them."""
        with self.sent:
            return self.sent.wait_for(lambda: len(self.pushes) >= pushes, timeout=10)

    def close(self) -> None:
        self.inner.close()


def _recording(monkeypatch: pytest.MonkeyPatch, at_each: Any) -> None:
    """Call ``at_each(n)`` as the desk starts recording the outcomes of its n-th push."""
    real = rep.record_outcomes
    calls = [0]

    def record(*args: Any, **kwargs: Any) -> int:
        calls[0] += 1
        at_each(calls[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(rep, "record_outcomes", record)


def test_the_next_push_goes_up_while_the_last_ones_outcomes_are_recorded(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_notes(world.desks["a"], (f"p{i}" for i in range(5)))
    seen = _sends(monkeypatch, world)
    watch = PushWatch()
    # While the desk records push n's outcomes, push n + 1 goes out (waited for; never comes if not pipelined).
    overlapped: list[bool] = []
    _recording(monkeypatch, lambda n: overlapped.append(watch.wait_for(n + 1)) if n < 3 else None)
    report = world.client("a", batch=2, transport=watch).push()
    assert (report.applied, report.rejected) == (5, 0)
    first = seen[0][0]
    # The second push left before the first one's outcomes were recorded (5 still queued), the third before
    # the second's (3 queued).
    assert seen == [(first, 2, 5), (first + 2, 2, 5), (first + 4, 1, 3)]
    assert overlapped == [True, True]
    assert [(seq, n) for seq, n, _b in watch.pushes] == [(first, 2), (first + 2, 2), (first + 4, 1)]
    assert rep.outbox_count(world.desks["a"]) == 0


def test_after_a_rejection_the_next_push_waits_for_the_outcomes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rejected op brings the server's images back to apply first, so nothing more goes up until they
    are recorded; the push still ends with every op decided once."""
    add_notes(world.desks["a"], [f"r{i}" for i in range(5)])
    real = rep.REPLAYS["add_note"]
    assert real.many is not None
    many = real.many

    def refuse_r1(store: Store, ops: list[rep.OpContext]) -> Any:
        from orderdesk.errors import Refused
        from orderdesk.i18n import msg

        got = many(store, [op for op in ops if op.args["text"] != "r1"])
        out = iter(got)
        return [Refused(msg("No."), code="no") if op.args["text"] == "r1" else next(out) for op in ops]

    monkeypatch.setitem(rep.REPLAYS, "add_note", dataclasses.replace(real, many=refuse_r1))
    seen = _sends(monkeypatch, world)
    watch = PushWatch()
    out_when_recording: list[int] = []
    _recording(monkeypatch, lambda _n: out_when_recording.append(len(watch.pushes)))
    report = world.client("a", batch=2, transport=watch).push()
    assert (report.applied, report.rejected) == (4, 1)
    first = seen[0][0]
    assert seen == [(first, 2, 5), (first + 2, 2, 3), (first + 4, 1, 3)]
    # The first push's rejection was recorded before the second push went out.
    assert out_when_recording[0] == 1


def test_ops_that_would_not_fit_in_one_request_go_up_in_smaller_pushes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sync.client

    monkeypatch.setattr(sync.client, "MAX_BODY_BYTES", 6_000)  # the desk's idea of the limit
    texts = add_notes(world.desks["a"], [f"{'长' * 600}{i}" for i in range(6)])  # each op ~2 KB of UTF-8
    seen = _sends(monkeypatch, world)
    watch = PushWatch()
    report = world.client("a", transport=watch).push()
    assert (report.applied, report.rejected) == (6, 0)
    assert [n for _s, n, _q in seen] == [2, 2, 2]
    assert all(size <= 6_000 for _s, _n, size in watch.pushes)
    assert server_note_texts(world)[-6:] == texts


def test_an_op_too_large_to_send_stops_the_push_with_a_clear_reason(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sync.client
    from sync.client import SyncStuck

    monkeypatch.setattr(sync.client, "MAX_BODY_BYTES", 1_000)
    add_note(world.desks["a"], order_no=READY_ORDER, text="长" * 600, user="liu")
    watch = PushWatch()
    with pytest.raises(SyncStuck) as stuck:
        world.client("a", transport=watch).push()
    assert stuck.value.code == "op_too_large" and "more than the central API accepts" in str(
        stuck.value.message
    )
    assert watch.pushes == [] and rep.outbox_count(world.desks["a"]) == 1


def test_an_op_too_large_after_a_pushed_batch_leaves_that_batch_recorded(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The op that does not fit comes after a batch already on its way: that batch's outcomes are still
    recorded (its ops leave the outbox), and the push stops at the large op with the same reason."""
    import sync.client
    from sync.client import SyncStuck

    monkeypatch.setattr(sync.client, "MAX_BODY_BYTES", 1_000)
    add_notes(world.desks["a"], ["小一", "小二", "长" * 600])
    watch = PushWatch()
    with pytest.raises(SyncStuck) as stuck:
        world.client("a", batch=2, transport=watch).push()
    assert stuck.value.code == "op_too_large"
    assert len(watch.pushes) == 1 and rep.outbox_count(world.desks["a"]) == 1
    assert server_note_texts(world)[-2:] == ["小一", "小二"]


def test_a_central_api_that_takes_fewer_ops_to_a_push_gets_fewer(world: World) -> None:
    """A central API not upgraded yet refuses pushes over its own limit as malformed (400); the desk halves
    its pushes until they are taken, and every op is decided once."""

    class Older(PushWatch):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/v1/push" and len(json.loads(request.content)["ops"]) > 2:
                error = {"error": {"code": "bad_request", "message": {"msgid": "too many ops", "params": {}}}}
                return httpx.Response(400, json=error, request=request)
            return super().handle_request(request)

    add_notes(world.desks["a"], [f"o{i}" for i in range(5)])
    older = Older()
    report = world.client("a", batch=8, transport=older).push()
    assert (report.applied, report.rejected) == (5, 0)
    assert [n for _s, n, _b in older.pushes] == [2, 2, 1]
    assert rep.outbox_count(world.desks["a"]) == 0


@BOTH_STORES
def test_the_same_note_twice_in_one_push_gets_one_outcome(world: World) -> None:
    """Notes are replayed a run at a time; a copy of an op still waiting in the run gets its outcome like
    any retried op, not a sequence error."""
    add_note(world.desks["a"], order_no=READY_ORDER, text="一次", user="liu")
    body = push_body(world, "a")
    body["ops"] = body["ops"] * 2
    before = counts(world.store)
    response = post(world, "/v1/push", json=body)
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert first == second and first["status"] == "applied"
    assert table_count(world.store, "order_note") == before["order_note"] + 1


def test_a_note_that_is_not_text_is_rejected_alone_with_a_clear_reason(world: World) -> None:
    add_notes(world.desks["a"], ("甲", "乙", "丙"))
    body = push_body(world, "a")
    forge(body["ops"][1], text=5)
    response = post(world, "/v1/push", json=body)
    results = response.json()["results"]
    assert [(r["status"], r["code"]) for r in results] == [
        ("applied", ""),
        ("rejected", "bad_text"),
        ("applied", ""),
    ]
    assert results[1]["reason"]["msgid"] == "{field} must be text."


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"code": 5}, "malformed_op"),  # fails the run as a whole, replayed one op at a time
        ({"code": "(01)06901234567892", "multiplier": 2.9}, "bad_multiplier"),  # never counted as 2
    ],
)
def test_a_malformed_scan_in_a_stations_run_is_rejected_alone(
    world: World, args: dict[str, Any], code: str
) -> None:
    """A station's scans are replayed together with its order opened once. A malformed one (its code a
    number: the run fails as a whole, is rolled back, station too, and replayed one op at a time; its
    multiplier not a whole number: refused as the station refuses it) is rejected alone, and the scans
    around it still count."""

    a = world.desks["a"]
    order = ready_to_pack(a, 3)
    world.sync("a")
    open_for_packing(a, order_no=order, user="liu")
    for serial in ("M1", "M2", "M3"):
        record_scan(a, user="liu", code=f"(01)06901234567892(21){serial}", order_no=order)
    body = push_body(world, "a")
    forge(body["ops"][1], **args)
    response = post(world, "/v1/push", json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["status"], r["code"]) for r in results] == [
        ("applied", ""),
        ("rejected", code),
        ("applied", ""),
    ]
    assert [ln.scanned_qty for ln in show_order(world.store, order).lines] == [2]
    assert table_count(world.store, "packing_session") == 0


@pytest.mark.parametrize(
    ("day", "code"),
    [
        ("station", ""),  # offline over midnight: judged as of the station's day
        (None, "expired"),  # an older desk sends no day: judged as of the central API's
        ("2000-01-01", "expired"),  # before the desk was enrolled: a wrong clock, not a day to judge by
    ],
)
def test_a_scans_expiry_is_judged_as_of_the_stations_day_when_that_day_is_plausible(
    world: World, day: str | None, code: str
) -> None:
    """An item in date on the day the station scanned it, synced the day after it expired."""

    a = world.desks["a"]
    order = ready_to_pack(a, 1)
    world.sync("a")
    today = local_today(world.clocks["a"]())
    open_for_packing(a, order_no=order, user="liu")
    record_scan(a, user="liu", code=f"(01)06901234567892(17){today:%y%m%d}(10)B1(21)D1", order_no=order)
    world.store.clock.advance(days=1)  # type: ignore[attr-defined]
    body = push_body(world, "a")
    assert body["ops"][0]["args"]["day"] == today.isoformat()
    if day != "station":
        forge(body["ops"][0], day=day)
    response = post(world, "/v1/push", json=body)
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert (result["status"], result["code"]) == ("rejected" if code else "applied", code)


def test_a_packing_preset_id_no_desk_card_could_hold_is_rejected(world: World) -> None:
    """The central API keeps a station's preset id as the station chose it, from a presets file it need not
    have; an id no preset could have (a forged op) is rejected with the reason, the scan before it counts."""

    a = world.desks["a"]
    order = ready_to_pack(a, 1)
    world.sync("a")
    open_for_packing(a, order_no=order, user="liu")
    record_scan(a, user="liu", code="(01)06901234567892(21)FORGE1", order_no=order)
    choose_packing_preset(a, user="liu", preset="1")
    body = push_body(world, "a")
    assert body["ops"][-1]["command"] == "choose_packing_preset"
    forge(body["ops"][-1], packing_preset="1; DROP")
    response = post(world, "/v1/push", json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["status"], r["code"]) for r in results[-2:]] == [("applied", ""), ("rejected", "bad_preset")]
    assert results[-1]["reason"]["msgid"] == "Command {command} needs an id of letters, digits, - or _: {arg}"
    detail = show_order(world.store, order)
    assert (detail.lines[0].scanned_qty, detail.packing_preset) == (1, "")


def test_an_image_is_compared_by_the_seq_it_is_as_of_not_by_its_entry(world: World) -> None:
    """A transaction's image of an order comes on its first entry about the order, as of its last. A desk
    that got an image of that order at a seq in between (a rejected op's refresh, dumped mid-transaction)
    still takes it: the image is newer than the refresh, though its entry's seq is not."""
    w = world
    a, b = w.desks["a"], w.desks["b"]
    results = two_edits_in_one_transaction(w)
    link = rep.get_link(b)
    assert link is not None
    page = rep.changes_after(w.store, link.cursor, limit=100)
    first, second = [e for e in page.entries if e[1] == "order" and e[2] == READY_ORDER]
    assert first[3] != rep.SAME_IMAGE and second[3] == rep.SAME_IMAGE
    # b holds an image of the order as of the first entry, as a refresh would leave it. Written directly: only
    # the desk whose op was rejected gets a refresh, so no command gives b this state; a's own desk can reach
    # it only while the central API decides, which a test cannot hold still.
    with b.write() as session:
        session.connection().exec_driver_sql(
            "INSERT INTO sync_entity (kind, key, seq) VALUES ('order', ?, ?) "
            "ON CONFLICT (kind, key) DO UPDATE SET seq = excluded.seq",
            (READY_ORDER, first[0]),
        )
    rep.apply_changes(b, page.entries, next_cursor=page.next_after or link.cursor)
    assert show_order(b, READY_ORDER).notes == "易碎"
    rep.record_outcomes(a, [r.to_json() for r in results])
    converge(w)


def link_and_ready_order(world: World, desk: Store) -> tuple[Any, dict[str, Any]]:
    """``desk``'s sync link (its cursor) and the central API's image of ``READY_ORDER``, to build pages from."""
    link = rep.get_link(desk)
    assert link is not None
    with world.store.read() as session:
        held = rep.dump_order(session, READY_ORDER)
    assert held is not None
    return link, held


def test_a_page_with_images_of_two_shapes_applies_each_by_its_own(world: World) -> None:
    """A page can hold images of two shapes (some written by a central API older than a column or a part). A
    column or part an image leaves out is kept as the desk has it, or gets its default in a new row; an image
    that has them writes them all. (Rows of one shape are read one way; a change of shape starts a new way.)"""
    b = world.desks["b"]
    link, held = link_and_ready_order(world, b)
    older = {k: v for k, v in held.items() if k not in ("notes", "_revisions")}

    def pulled(seq: int, *images: dict[str, Any]) -> None:
        # as a pulled page holds them: decoded together, the decoder sharing key objects between images
        page = orjson.loads(
            orjson.dumps([[seq + i, "order", im["order_no"], im, ""] for i, im in enumerate(images)])
        )
        assert rep.apply_changes(b, [tuple(e) for e in page], next_cursor=seq + len(images) - 1) == len(
            images
        )

    pulled(link.cursor + 1, held | {"notes": "先到的备注", "version": held["version"] + 1})
    pulled(
        link.cursor + 2,
        older | {"ship_address": "宁波鄞州区 3 号库", "version": held["version"] + 2},
        older | {"order_no": "SO-HQ-0009998", "_notes": []},
        held | {"order_no": "SO-HQ-0009999", "notes": "新单", "_notes": [], "_revisions": []},
    )
    kept = show_order(b, READY_ORDER)
    assert (kept.ship_address, kept.notes) == ("宁波鄞州区 3 号库", "先到的备注")
    assert show_order(b, "SO-HQ-0009998").notes == ""
    new = show_order(b, "SO-HQ-0009999")
    assert (new.notes, new.ship_address, [ln.sku for ln in new.lines]) == (
        "新单",
        held["ship_address"],
        [ln["_sku"] for ln in held["_lines"]],
    )


def test_an_image_without_a_column_the_desk_needs_is_refused_with_a_reason_and_nothing_applied(
    world: World,
) -> None:
    """A column this desk must fill (NOT NULL, no default) that an image leaves out: the page is refused
    with a reason a person can act on, not the database's own words, and nothing of it is applied."""
    b = world.desks["b"]
    link, held = link_and_ready_order(world, b)
    before = show_order(b, READY_ORDER)
    lacking = {k: v for k, v in held.items() if k != "created_by"}
    page = [
        (link.cursor + 1, "order", READY_ORDER, canonical_json(held | {"notes": "不该写入"}), ""),
        (
            link.cursor + 2,
            "order",
            "SO-HQ-0009997",
            canonical_json(lacking | {"order_no": "SO-HQ-0009997"}),
            "",
        ),
    ]
    with pytest.raises(StoreError) as caught:
        rep.apply_changes(b, page, next_cursor=link.cursor + 2)
    assert caught.value.code == "sync_image_incomplete"
    text = str(caught.value)
    assert "created_by" in text and "upgrade the central API" in text and "NOT NULL" not in text
    assert "中心服务器" in caught.value.message.render("zh")
    assert rep.get_link(b).cursor == link.cursor  # type: ignore[union-attr]
    assert show_order(b, READY_ORDER).notes == before.notes
    with pytest.raises(OrderdeskError):
        show_order(b, "SO-HQ-0009997")


def test_pages_of_changes_are_gzipped_for_a_desk_that_takes_gzip(world: World) -> None:
    """A page of changes goes gzipped to a client that takes gzip (as the desk's httpx client does): the
    same entries in a fraction of the bytes. A client that does not take it gets plain JSON."""
    w = world
    add_notes(w.desks["a"], [f"第{i}条: 到货后请电话联系" for i in range(60)])
    w.sync("a")
    headers = {"Authorization": f"Bearer {token(w, 'b')}"}

    def page(accept: str) -> httpx.Response:
        return httpx.get(
            w.server.url + "/v1/changes",
            params={"after": 0, "limit": 1000, "note_entries": "true"},
            headers={**headers, "Accept-Encoding": accept},
            timeout=30,
        )

    zipped, plain, refused = page("gzip, deflate"), page("identity"), page("gzip;q=0")
    assert zipped.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers and "content-encoding" not in refused.headers
    assert zipped.json() == plain.json() == refused.json() and len(plain.json()["entries"]) > 60
    sent = int(zipped.headers["content-length"])
    assert sent * 4 < len(plain.content), (sent, len(plain.content))
    # and the desks, which take gzip, pull them as ever
    converge(w)


@BOTH_STORES
def test_a_desk_too_old_for_note_entries_is_told_to_upgrade_and_keeps_its_work(world: World) -> None:
    """A desk built before notes were entries of their own would read an order's image (no ``_notes`` now,
    pulled or as a rejected op's refresh) as an order without notes and drop them all. It does not say
    ``note_entries``, so its pushes and pulls are refused with a reason it shows its user (409
    ``desk_too_old``: upgrade this desk); nothing is written or sent, and its ops wait in its outbox."""
    w = world
    a = w.desks["a"]
    add_note(a, order_no=READY_ORDER, text="旧版工作台的备注", user="liu")
    headers = {"Authorization": f"Bearer {token(w, 'a')}"}
    before = counts(w.store)
    old_push = {k: v for k, v in push_body(w, "a").items() if k != "note_entries"}
    refused = [
        post(w, "/v1/push", json=old_push),
        *(
            httpx.get(w.server.url + "/v1/changes", params={"after": 0, **old}, headers=headers, timeout=30)
            for old in ({"same_image": "true"}, {})
        ),
    ]
    for r in refused:
        assert r.status_code == 409 and r.json()["error"]["code"] == "desk_too_old"
        reason = rep.msg_from_json(r.json()["error"]["message"])
        assert "Upgrade orderdesk on this desk" in reason.render("en") and "升级" in reason.render("zh")
    assert counts(w.store) == before and rep.outbox_count(a) == 1
    (op,) = rep.pending_ops(a)[2]
    report = w.client("a").push()  # upgraded: it says note_entries
    assert report.applied == 1 and rep.outbox_count(a) == 0
    ok = httpx.get(
        w.server.url + "/v1/changes", params={"after": 0, "note_entries": "true"}, headers=headers, timeout=30
    )
    assert ok.status_code == 200 and ok.json()["entries"][-1][1:3] == ["note", op.op_id]
    converge(w)
