"""The wire format between desks and the central API (pydantic models; they also make the OpenAPI
description at ``/openapi.json``). See ``docs/sync-protocol.md`` for the rules behind them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

API_VERSION = "1"
MAX_BODY_BYTES = 8 * 1024 * 1024  # a desk sends fewer ops to a push when they would not fit (long notes)
MAX_OPS_PER_PUSH = 1000
MAX_PAGE = 10_000


class Message(BaseModel):
    """A message kept as id + parameters, so each desk shows it in its own user's language."""

    msgid: str
    params: dict[str, Any] = {}


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable: seq_gap, seq_taken, op_conflict, cursor_too_old, …")
    message: Message
    expected_seq: int | None = Field(None, description="seq_gap / seq_taken: the op seq the server expects")
    floor: int | None = Field(None, description="cursor_too_old: the oldest cursor the change log serves")


class ErrorBody(BaseModel):
    error: ErrorDetail
    results: list[OpOutcome] = Field(default_factory=list, description="Push: ops decided before the error")


class EnrolRequest(BaseModel):
    code: str = Field(
        min_length=4, max_length=40, description="The one-time code from `orderdesk server enrol-code`"
    )
    name: str = Field("", max_length=60, description="A name for the desk, e.g. 'Warehouse 2'")


class EnrolResponse(BaseModel):
    desk_id: str
    desk_code: str = Field(description="Orders this desk creates are numbered SO-<desk_code>-n")
    epoch: int
    token: str = Field(description="Shown once; send as `Authorization: Bearer <token>`")
    server_id: str


class Op(BaseModel):
    """One outbox record: a domain command as intent."""

    op_id: str = Field(min_length=1, max_length=36)
    seq: int = Field(ge=1, description="Contiguous per desk epoch")
    command: str = Field(min_length=1, max_length=40)
    args: dict[str, Any]
    order_no: str = Field("", max_length=20)
    base_version: int | None = None
    payload_hash: str = Field(min_length=64, max_length=64)
    user_name: str = Field(max_length=40)
    seen_seq: int = Field(0, ge=0, description="Change seq of the server image the op's order was at")


class PushRequest(BaseModel):
    desk_id: str = Field(max_length=36)
    epoch: int = Field(ge=1)
    ops: list[Op] = Field(max_length=MAX_OPS_PER_PUSH)
    note_entries: bool = Field(
        False,
        description="The desk takes notes as change-log entries of their own (and order images without "
        "notes, as a rejected op's refresh carries them); a desk that does not say so is too old (409 "
        "desk_too_old) and keeps its ops until it is upgraded",
    )


class RefreshImage(BaseModel):
    seq: int
    kind: str
    key: str
    image: dict[str, Any] | None


class OpOutcome(BaseModel):
    op_id: str
    seq: int
    status: Literal["applied", "rejected"]
    code: str = ""
    reason: Message | None = None
    change_seq: int | None = None
    decided_at: str = ""
    refresh: list[RefreshImage] = Field(default_factory=list)


class PushResponse(BaseModel):
    results: list[OpOutcome]


class ChangesResponse(BaseModel):
    entries: list[tuple[int, str, str, dict[str, Any] | Literal[""] | None, dict[str, Any] | None]] = Field(
        description="[seq, kind, key, image, event] oldest first; kind is user, customer, product, order, "
        "note (named by the op that added it), invoice or payment; "
        'image is null for an entity that no longer exists, and "" '
        "when an earlier entry of the same transaction carries the entity's image; event (command, user, order_no, detail, at, desk_id, "
        "desk_code) is on one entry per op"
    )
    next_after: int | None = Field(description="Pass as `after` for the next page; null when none")
    high_water: int
    floor: int


class RekeyRequest(BaseModel):
    desk_id: str = Field(max_length=36)
    reason: str = Field("", max_length=200)


class RekeyResponse(BaseModel):
    epoch: int
    desk_code: str


class StatusResponse(BaseModel):
    desk_id: str
    current_epoch: int
    streams: dict[str, int] = Field(description="epoch -> last op seq decided")
    high_water: int
    floor: int
    server_time: str


ErrorBody.model_rebuild()
