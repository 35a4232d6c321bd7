"""The central API: FastAPI over the same store and domain commands as the desks.

Every route is a plain ``def`` (FastAPI runs it in its thread pool): the store's writes are blocking and are
serialised by the database (SQLite's single writer, the advisory lock on PostgreSQL).
"""

from __future__ import annotations

import gzip
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderdesk import replication as rep
from orderdesk import scanning  # noqa: F401 - station ops' replays: loaded at start, not by a first push
from orderdesk.canonical import canonical_json
from orderdesk.errors import StoreError
from orderdesk.heap import freeze_heap
from orderdesk.i18n import msg
from orderdesk.models import SyncDesk
from orderdesk.store import Store
from sync.protocol import (
    MAX_BODY_BYTES,
    MAX_PAGE,
    ChangesResponse,
    EnrolRequest,
    EnrolResponse,
    ErrorBody,
    PushRequest,
    PushResponse,
    RekeyRequest,
    RekeyResponse,
    StatusResponse,
)

PUSH_BUDGET_S = 5.0  # a push answers after about this long, however many ops it carried
# Store errors that pass by themselves: the desk retries later and nothing was written.
TRANSIENT_CODES = {"db_locked", "db_unreachable", "disk_full", "db_error"}
ERRORS = {
    400: {"model": ErrorBody, "description": "Malformed or truncated JSON"},
    401: {"model": ErrorBody, "description": "No or unknown desk token"},
    403: {"model": ErrorBody, "description": "Revoked desk, or a desk writing as another desk"},
    409: {"model": ErrorBody, "description": "Protocol error: sequence gap or reuse, op hash mismatch"},
    413: {"model": ErrorBody, "description": "Request body too large"},
    503: {"model": ErrorBody, "description": "Busy or unavailable: retry with backoff"},
}


def _error(status: int, code: str, message: Any, **extra: Any) -> JSONResponse:
    body = {"error": {"code": code, "message": message.to_json(), **extra}}
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse(body, status_code=status, headers=headers)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413 before a route reads them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        too_large = _error(
            413, "too_large", msg("The request is larger than {limit} bytes.", limit=self.limit)
        )
        if length is not None and length.isdigit() and int(length) > self.limit:
            await too_large(scope, receive, send)
            return
        # Read the whole body first (it is small by definition) so an oversized one is refused before any
        # route sees a byte of it, whether or not the client sent a Content-Length.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# A page of changes is up to a megabyte of JSON whose images repeat the same keys: gzipped at the fastest
# level (a few milliseconds a page) the demo desk's orders are 7 times smaller, for a desk on a slow line
# across town.
GZIP_FROM_BYTES = 1024


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header takes gzip: named, or by ``*``, with a weight above 0
    (``gzip;q=0`` refuses it)."""
    weights: dict[str, float] = {}
    for item in accept_encoding.lower().split(","):
        name, *params = (part.strip() for part in item.split(";"))
        q = next((p[2:] for p in params if p.startswith("q=")), "1")
        try:
            weights[name] = float(q)
        except ValueError:
            weights[name] = 0.0
    return weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0))) > 0


def _maybe_gzipped(request: Request, body: bytes) -> Response:
    """A JSON response, gzipped when it is large enough to gain and the client takes gzip."""
    if len(body) >= GZIP_FROM_BYTES and accepts_gzip(request.headers.get("accept-encoding", "")):
        return Response(
            gzip.compress(body, compresslevel=1),
            media_type="application/json",
            headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
        )
    return Response(body, media_type="application/json", headers={"Vary": "Accept-Encoding"})


def create_app(
    store: Store, *, max_body: int = MAX_BODY_BYTES, ops_per_commit: int = rep.OPS_PER_COMMIT
) -> FastAPI:
    """The central API over ``store`` (made a server store if it is not one yet). A push's ops are decided
    in transactions of up to ``ops_per_commit`` ops (see ``replication.decide_ops``)."""
    rep.init_server(store)
    rep.publish_local_changes(store)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        freeze_heap(once=True)  # what is loaded by now lives as long as the server
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="orderdesk central API",
        version="1",
        description="Desks push their ops and pull the change log. See docs/sync-protocol.md.",
    )
    app.state.store = store
    app.add_middleware(BodyLimit, limit=max_body)

    def current_store(request: Request) -> Store:
        return request.app.state.store

    @app.exception_handler(rep.SyncError)
    def _sync_error(_request: Request, exc: rep.SyncError) -> JSONResponse:
        return JSONResponse({"error": exc.to_json()}, status_code=exc.status)

    @app.exception_handler(StoreError)
    def _store_error(_request: Request, exc: StoreError) -> JSONResponse:
        if exc.code in TRANSIENT_CODES:
            return _error(503, exc.code, exc.message)
        return _error(500, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "bad_json", msg("The request body is not valid JSON (truncated?)."))
        detail = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in errors[:5])
        return _error(400, "bad_request", msg("The request is malformed: {detail}", detail=detail))

    def desk(request: Request) -> SyncDesk:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        return rep.authenticate(current_store(request), token)

    def same_desk(found: SyncDesk, desk_id: str) -> None:
        if found.desk_id != desk_id:
            raise rep.AuthError(
                msg("This token belongs to another desk; a desk may only write as itself."),
                code="wrong_desk",
                status=403,
            )

    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/enrol", response_model=EnrolResponse, responses=ERRORS, tags=["desks"])
    def enrol(body: EnrolRequest, request: Request) -> EnrolResponse:
        """Trade a one-time enrolment code for the desk's identity and token."""
        e = rep.enrol_desk(current_store(request), code=body.code, name=body.name)
        return EnrolResponse(
            desk_id=e.desk_id, desk_code=e.desk_code, epoch=e.epoch, token=e.token, server_id=e.server_id
        )

    @app.get("/v1/status", response_model=StatusResponse, responses=ERRORS, tags=["desks"])
    def status(request: Request, me: SyncDesk = Depends(desk)) -> StatusResponse:
        """Where this desk stands: the last op decided in each epoch, and the change log's bounds."""
        store = current_store(request)
        info = rep.desk_status(store, me.desk_id)
        return StatusResponse(
            desk_id=me.desk_id,
            current_epoch=me.current_epoch,
            server_time=store.clock().isoformat(),
            **info,
        )

    @app.post("/v1/rekey", response_model=RekeyResponse, responses=ERRORS, tags=["desks"])
    def rekey(body: RekeyRequest, request: Request, me: SyncDesk = Depends(desk)) -> RekeyResponse:
        """Open a new epoch for a desk whose file was copied or restored from a backup."""
        same_desk(me, body.desk_id)
        epoch, code = rep.rekey_desk(current_store(request), me.desk_id)
        return RekeyResponse(epoch=epoch, desk_code=code)

    @app.post("/v1/push", response_model=PushResponse, responses=ERRORS, tags=["sync"])
    def push(body: PushRequest, request: Request, me: SyncDesk = Depends(desk)) -> Any:
        """Decide ops in order, several to a transaction: each op in a savepoint, or a run of set-based ops
        (notes, scans) in one. A retried op gets its stored outcome."""
        same_desk(me, body.desk_id)
        if not body.note_entries:
            rep.refuse_desk_too_old()
        store = current_store(request)
        results: list[dict[str, Any]] = []
        deadline = time.monotonic() + PUSH_BUDGET_S
        ops = [rep.OpIn(**op.model_dump()) for op in body.ops]
        while len(results) < len(ops) and not (results and time.monotonic() > deadline):
            # answer with what is decided once the budget is spent; the desk sends the rest next
            try:
                decided, error = rep.decide_ops(
                    store, me.desk_id, body.epoch, ops[len(results) :], limit=ops_per_commit
                )
            except StoreError as exc:
                if exc.code in TRANSIENT_CODES and results:
                    break  # those decided are committed: the desk records them and sends the rest again
                raise
            results += [r.to_json() for r in decided]
            if error is not None:
                return JSONResponse({"error": error.to_json(), "results": results}, status_code=error.status)
        # Encoded here: FastAPI would validate a thousand outcomes against PushResponse and walk them with
        # jsonable_encoder first, costing more than deciding a tenth of them. They have its shape already.
        return Response(canonical_json({"results": results}), media_type="application/json")

    @app.get(
        "/v1/changes",
        response_model=ChangesResponse,
        responses=ERRORS
        | {
            409: {"model": ErrorBody, "description": "desk_too_old: the desk must be upgraded to pull"},
            410: {"model": ErrorBody, "description": "Cursor too old: re-bootstrap"},
        },
        tags=["sync"],
    )
    def changes(
        request: Request,
        after: int = Query(0, ge=0, description="The last seq this desk applied"),
        limit: int = Query(1000, ge=1, le=MAX_PAGE),
        note_entries: bool = Query(
            False,
            description="The desk takes each note as an entry of its own (kind note, named by the op that "
            "added it) and an order's image without its notes; a desk that does not say so is too old (409 "
            "desk_too_old)",
        ),
        _me: SyncDesk = Depends(desk),
    ) -> Response:
        """Change-log entries after ``after``, oldest first, in pages."""
        if not note_entries:
            rep.refuse_desk_too_old()
        page = rep.changes_after(current_store(request), after, limit=limit)
        # Images are sent as stored (canonical JSON), never decoded and re-encoded; "" (``SAME_IMAGE``):
        # an earlier entry of the same transaction carries the entity's image.
        return _maybe_gzipped(request, page.body())

    @app.get(
        "/v1/snapshot",
        responses=ERRORS | {200: {"content": {"application/vnd.sqlite3": {}}, "description": "SQLite file"}},
        tags=["sync"],
    )
    def snapshot(request: Request, _me: SyncDesk = Depends(desk)) -> FileResponse:
        """A consistent SQLite copy of the business tables; header ``X-Orderdesk-Seq`` says which change
        seq it is consistent with (pull from there)."""
        folder = Path(tempfile.mkdtemp(prefix="orderdesk-snap-"))
        path = folder / "snapshot.db"
        seq = rep.write_snapshot(current_store(request), path)

        def cleanup() -> None:
            path.unlink(missing_ok=True)
            folder.rmdir()

        return FileResponse(
            path,
            media_type="application/vnd.sqlite3",
            headers={"X-Orderdesk-Seq": str(seq)},
            background=BackgroundTask(cleanup),
        )

    return app
