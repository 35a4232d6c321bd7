"""The desk's side of sync: push the outbox in order, pull the change log, bootstrap from a snapshot.

Everything here blocks (HTTP and SQLite); the TUI runs it in a thread worker, the CLI runs it directly.
Transient failures (no network, timeouts, 5xx, a busy server) change nothing and are retried with backoff;
an op leaves the outbox only in the same transaction that stores its outcome.
"""

from __future__ import annotations

import contextlib
import json
import random
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from orderdesk import replication as rep
from orderdesk.canonical import canonical_json
from orderdesk.errors import OrderdeskError
from orderdesk.heap import gc_paused
from orderdesk.i18n import Msg, msg
from orderdesk.store import Store
from sync.protocol import MAX_BODY_BYTES, MAX_OPS_PER_PUSH

USER_AGENT = "orderdesk-desk/1"


class Offline(OrderdeskError):
    """The central API could not be reached (or kept failing) after retries; nothing was lost."""


class SyncStuck(OrderdeskError):
    """The central API refused in a way retrying cannot fix (a bad token, a damaged op): a person must act."""


@dataclass
class SyncReport:
    pushed: int = 0
    applied: int = 0
    rejected: int = 0
    pulled: int = 0
    bootstrapped: bool = False
    rekeyed: bool = False
    error: Msg | None = None
    rejections: list[str] = field(default_factory=list)  # op ids rejected in this run

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Backoff:
    """Exponential backoff with jitter: 0.2 s, 0.4 s, … capped at ``cap``; ``attempts`` tries in all."""

    attempts: int = 5
    base: float = 0.2
    cap: float = 10.0
    sleep: Callable[[float], None] = time.sleep

    def delays(self) -> list[float]:
        return [
            min(self.cap, self.base * 2**n) * (0.5 + random.random() / 2) for n in range(self.attempts - 1)
        ]


class _Transient(Exception):
    def __init__(self, message: Msg) -> None:
        super().__init__(message.msgid)
        self.message = message


@dataclass(frozen=True)
class _Flight:
    """A push on its way: which desk stream, which ops, and the response to come."""

    desk_id: str
    epoch: int
    ops: list[rep.OpIn]
    response: Future[httpx.Response]


class SyncClient:
    """Sync one desk store with its central API."""

    def __init__(
        self,
        store: Store,
        *,
        http: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        backoff: Backoff | None = None,
        batch: int = MAX_OPS_PER_PUSH,
        page: int = 2000,
        timeout: float = 60.0,
        stop: threading.Event | None = None,
        on_progress: Callable[[SyncReport], None] | None = None,
    ) -> None:
        self.store = store
        self.backoff = backoff or Backoff()
        self.batch = max(1, min(batch, MAX_OPS_PER_PUSH))
        self.page = page
        self.stop = stop or threading.Event()
        self.on_progress = on_progress  # called after each pushed batch (the TUI's status line counts down)
        self._http = http or httpx.Client(
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )

    def close(self) -> None:
        self._http.close()

    # -- HTTP with retries ------------------------------------------------------------------------------
    def _link(self) -> Any:
        link = rep.get_link(self.store)
        if link is None:
            raise SyncStuck(
                msg("This desk is not enrolled: run `orderdesk desk enrol --server URL --code CODE`."),
                code="not_enrolled",
            )
        return link

    def _once(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        link = self._link()
        headers = {"Authorization": f"Bearer {link.token}", **kwargs.pop("headers", {})}
        try:
            response = self._http.request(method, link.server_url + path, headers=headers, **kwargs)
        # connect refused, reset, timeout, truncated response; or a gzipped page damaged on the way
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise _Transient(
                msg(
                    "Cannot reach the central API at {url}: {detail}",
                    url=link.server_url,
                    detail=type(exc).__name__,
                )
            ) from exc
        if response.status_code >= 500:
            raise _Transient(
                msg("The central API is busy or failing (HTTP {status}).", status=response.status_code)
            )
        if response.status_code in (401, 403):
            raise SyncStuck(_reason(response), code="auth")
        return response

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        delays = self.backoff.delays()
        while True:
            try:
                return self._once(method, path, **kwargs)
            except _Transient as exc:
                if not delays or self.stop.is_set():
                    raise Offline(exc.message, code="offline") from exc
                self.backoff.sleep(delays.pop(0))

    # -- push ---------------------------------------------------------------------------------------------
    def push(self, report: SyncReport | None = None) -> SyncReport:
        """Send the outbox in order until it is empty (each decided op leaves it with its outcome).

        Pipelined, one request in flight: while the central API decides a batch, the desk reads the ops
        after it; when every op of the batch was applied, those go up at once and the desk records the
        batch's outcomes while the central API decides them. (Outcomes are durable on the central API before
        it answers, so an outcome recorded late, or never because the desk died, is only asked for again.)"""
        report = report or SyncReport()
        rekeys = 0
        sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orderdesk-push")
        flying: _Flight | None = None  # the batch on its way
        try:
            while True:
                if flying is None:
                    if self.stop.is_set():
                        return report
                    desk_id, epoch, ops = rep.pending_ops(self.store, limit=self.batch)
                    if not ops:
                        return report
                    flying = self._send(sender, desk_id, epoch, ops)
                this, flying = flying, None
                # read while the central API decides this batch: sent as soon as all of it is applied
                _, next_epoch, following = (
                    ("", 0, [])
                    if self.stop.is_set()
                    else rep.pending_ops(self.store, limit=self.batch, after=this.ops[-1].seq)
                )
                response = this.response.result()
                data = _json(response.content)
                results = data.get("results") or []
                if (
                    following
                    and next_epoch == this.epoch
                    and response.status_code == 200
                    and len(results) == len(this.ops)
                    and all(r.get("status") == "applied" for r in results)
                ):
                    # An op too large to send is met again, and refused, by the next round's own read:
                    # this batch's outcomes are recorded first.
                    with contextlib.suppress(SyncStuck):
                        flying = self._send(sender, this.desk_id, this.epoch, following)
                self._record(results, report)
                if self.on_progress is not None and results:
                    self.on_progress(report)
                if response.status_code == 200:
                    continue
                error = data.get("error") or {}
                code = error.get("code", "")
                if code in ("seq_taken", "seq_gap", "unknown_epoch") and rekeys < 2:
                    # This file was copied or restored (or the server was): continue under a fresh epoch.
                    rekeys += 1
                    self._rekey(this.desk_id, code)
                    report.rekeyed = True
                    continue
                if code == "bad_request" and len(this.ops) > 1:
                    # A central API not upgraded yet takes fewer ops to a push (500 before 1,000): send fewer.
                    self.batch = len(this.ops) // 2
                    continue
                raise SyncStuck(_reason(response), code=code or "push_refused")
        finally:
            # Recording failed (or the desk was interrupted) with a batch on its way: it is decided, and asked
            # for again by the next push, but it is waited for, so a desk never has two pushes in flight and
            # nothing uses the HTTP client after this returns.
            sender.shutdown(wait=True)

    def _send(self, sender: ThreadPoolExecutor, desk_id: str, epoch: int, ops: list[rep.OpIn]) -> _Flight:
        """Start pushing ``ops``, or as many of the first of them as fit in one request body (long notes, big
        orders: fewer to a push), on the sending thread."""
        head = f'{{"desk_id":{json.dumps(desk_id)},"epoch":{int(epoch)},"note_entries":true,"ops":['.encode()
        size = len(head) + 2
        parts: list[bytes] = []
        for op in ops:
            part = canonical_json(op.to_json()).encode()
            size += len(part) + 1
            if size > MAX_BODY_BYTES:
                if not parts:
                    raise SyncStuck(
                        msg(
                            "Op {seq} ({command}) is {size} bytes, more than the central API accepts ({limit}). "
                            "It cannot be sent; ask whoever runs orderdesk.",
                            seq=op.seq,
                            command=op.command,
                            size=len(part),
                            limit=MAX_BODY_BYTES,
                        ),
                        code="op_too_large",
                    )
                break
            parts.append(part)
        content = head + b",".join(parts) + b"]}"
        headers = {"Content-Type": "application/json"}
        response = sender.submit(self._call, "POST", "/v1/push", content=content, headers=headers)
        return _Flight(desk_id, epoch, ops[: len(parts)], response)

    def _record(self, results: list[dict[str, Any]], report: SyncReport) -> None:
        if not results:
            return
        rep.record_outcomes(self.store, results)
        report.pushed += len(results)
        for r in results:
            if r["status"] == "applied":
                report.applied += 1
            else:
                report.rejected += 1
                report.rejections.append(r["op_id"])

    def _rekey(self, desk_id: str, reason: str) -> None:
        response = self._call("POST", "/v1/rekey", json={"desk_id": desk_id, "reason": reason})
        if response.status_code != 200:
            raise SyncStuck(_reason(response), code="rekey_failed")
        data = response.json()
        rep.adopt_epoch(self.store, epoch=int(data["epoch"]), desk_code=str(data["desk_code"]))

    # -- pull ---------------------------------------------------------------------------------------------
    def pull(self, report: SyncReport | None = None) -> SyncReport:
        """Apply change-log pages until caught up; a too-old cursor leads to a fresh snapshot. The next page
        is fetched while this one is decoded and applied. (Decoding stays on this thread: decoding a page holds
        the GIL for milliseconds, and on the fetching thread it stalled the applying one.)"""
        report = report or SyncReport()
        fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orderdesk-pull")
        ahead: Future[httpx.Response | None] | None = None
        try:
            while not self.stop.is_set():
                response = (ahead or fetcher.submit(self._fetch, self._link().cursor)).result()
                ahead = None
                if response is None:  # 410: the cursor is older than the change log
                    rep.mark_needs_bootstrap(self.store)
                    self.bootstrap(report)
                    continue
                with gc_paused():  # a page: tens of thousands of fresh objects, in no cycle
                    entries, next_after = decode_page(response.content)
                    if next_after is None:
                        self.store.checkpoint()  # caught up: the pages' WAL, copied once (see Store.write)
                        return report
                    ahead = fetcher.submit(self._fetch, next_after)
                    rep.apply_changes(self.store, entries, next_cursor=next_after)
                    report.pulled += len(entries)
                    del entries, response  # freed now, not walked by the collector once it runs again
            self.store.checkpoint()
            return report
        finally:
            # Stopped, or applying failed: a page fetched ahead is not wanted (nor waited for).
            if ahead is not None:
                ahead.cancel()
            fetcher.shutdown(wait=False, cancel_futures=True)

    def _fetch(self, after: int) -> httpx.Response | None:
        """The change-log page after ``after``, undecoded (``None`` if the central API no longer keeps it)."""
        response = self._call(
            "GET", "/v1/changes", params={"after": after, "limit": self.page, "note_entries": "true"}
        )
        if response.status_code == 410:
            return None
        if response.status_code != 200:
            raise SyncStuck(_reason(response), code="pull_refused")
        return response

    # -- bootstrap ----------------------------------------------------------------------------------------
    def bootstrap(self, report: SyncReport | None = None) -> SyncReport:
        """Load a consistent snapshot, then pull from its seq. Unsent ops are pushed first, never dropped."""
        report = report or SyncReport()
        for _ in range(5):
            self.push(report)
            with tempfile.TemporaryDirectory(prefix="orderdesk-boot-") as folder:
                path = Path(folder) / "snapshot.db"
                self._download(path)
                try:
                    rep.install_snapshot(self.store, path)
                except OrderdeskError as exc:
                    if exc.code == "outbox_not_empty":  # someone worked meanwhile: push and try again
                        continue
                    raise
            report.bootstrapped = True
            return report
        raise Offline(msg("The snapshot could not be loaded: the desk kept making new changes."), code="busy")

    def _download(self, path: Path) -> None:
        delays = self.backoff.delays()
        link = self._link()
        while True:
            try:
                with self._http.stream(
                    "GET", link.server_url + "/v1/snapshot", headers={"Authorization": f"Bearer {link.token}"}
                ) as response:
                    if response.status_code in (401, 403):
                        response.read()
                        raise SyncStuck(_reason(response), code="auth")
                    if response.status_code != 200:
                        raise _Transient(
                            msg("The snapshot failed (HTTP {status}).", status=response.status_code)
                        )
                    with path.open("wb") as fh:
                        for chunk in response.iter_bytes(1 << 20):
                            fh.write(chunk)
                return
            except (httpx.TransportError, _Transient) as exc:
                if not delays or self.stop.is_set():
                    message = (
                        exc.message if isinstance(exc, _Transient) else msg("The snapshot download failed.")
                    )
                    raise Offline(message, code="offline") from exc
                self.backoff.sleep(delays.pop(0))

    # -- one full round -----------------------------------------------------------------------------------
    def sync_once(self) -> SyncReport:
        """Push, then pull (bootstrapping first if the desk has never loaded a snapshot). Never raises for
        being offline: the report carries the error, and the status line shows it."""
        report = SyncReport()
        try:
            link = self._link()
            if link.needs_bootstrap:
                self.bootstrap(report)
            self.push(report)
            self.pull(report)
        except OrderdeskError as exc:
            report.error = exc.message
            self._note(ok=False, error=exc.message)
            if isinstance(exc, SyncStuck) and exc.code == "not_enrolled":
                raise
            return report
        self._note(ok=True)
        return report

    def _note(self, *, ok: bool, error: Msg | None = None) -> None:
        # Best effort: when the desk's own file is busy or full, the report still carries the news.
        with contextlib.suppress(OrderdeskError):
            rep.note_sync(self.store, ok=ok, error=error)


def decode_page(body: bytes) -> tuple[list[tuple[Any, ...]], int | None]:
    """A change-log page's entries (seq, kind, key, image, event), oldest first, and the cursor after them
    (``None``: the page is empty, the desk is caught up)."""
    data = _json(body)
    entries = [(int(s), k, key, img, ev) for s, k, key, img, ev in data["entries"]]
    return entries, int(data["next_after"]) if entries else None


def _json(body: bytes) -> dict[str, Any]:
    # orjson: several times faster than the standard library on a page of images. Unlike it, orjson reads an
    # integer past 64 bits as a float; nothing the central API stores is one (amounts are 64-bit in fen).
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _reason(response: httpx.Response) -> Msg:
    error = _json(response.content).get("error") or {}
    message = error.get("message")
    if isinstance(message, dict):
        return rep.msg_from_json(message)
    return msg("The central API answered HTTP {status}.", status=response.status_code)


def enrol(
    store: Store,
    *,
    server_url: str,
    code: str,
    name: str = "",
    transport: httpx.BaseTransport | None = None,
    bootstrap: bool = True,
) -> rep.Enrolment:
    """Enrol this desk with a central API using a one-time code, then load the first snapshot."""
    server_url = server_url.rstrip("/")
    rep.check_enrollable(store)
    with httpx.Client(timeout=30, transport=transport, headers={"User-Agent": USER_AGENT}) as http:
        try:
            response = http.post(server_url + "/v1/enrol", json={"code": code, "name": name})
        except httpx.TransportError as exc:
            raise Offline(
                msg(
                    "Cannot reach the central API at {url}: {detail}",
                    url=server_url,
                    detail=type(exc).__name__,
                ),
                code="offline",
            ) from exc
        if response.status_code != 200:
            raise SyncStuck(_reason(response), code="enrol_refused")
        data = response.json()
    enrolment = rep.Enrolment(
        desk_id=data["desk_id"],
        desk_code=data["desk_code"],
        epoch=int(data["epoch"]),
        token=data["token"],
        server_id=data["server_id"],
    )
    rep.link_desk(store, server_url=server_url, enrolment=enrolment)
    if bootstrap:
        client = SyncClient(store, transport=transport)
        try:
            client.bootstrap()
            client.pull()
            rep.note_sync(store, ok=True)
        finally:
            client.close()
    return enrolment
