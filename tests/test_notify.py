"""Notifications to a real SMTP server (aiosmtpd) and a real HTTP webhook receiver on loopback, in the WeCom
and DingTalk group-robot formats: delivered, retried while the server is down, never sent twice, and a dead
channel never holding up the others. Business time is a moved clock; nothing here waits on it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from aiosmtpd.controller import Controller

from orderdesk.alerts import list_alerts, run_alert_pass
from orderdesk.clock import FixedClock
from orderdesk.notify import (
    DeliverySettings,
    EmailSettings,
    NotifyConfig,
    NotifyConfigError,
    Webhook,
    claim,
    deliver_pending,
    deliveries,
    load_notify_config,
    parse_notify_config,
)
from orderdesk.orders import create_order
from orderdesk.store import Store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a real SMTP server ----------------------------------------------------------------------------------
class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.box = Mailbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.box, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    yield server
    server.stop()


# -- a real HTTP receiver for the group robots -----------------------------------------------------------
class Receiver:
    """Loopback HTTP server recording every POST; ``answer`` decides the robot's reply."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.posts: list[tuple[str, dict[str, list[str]], dict[str, Any]]] = []
        self.answer: tuple[int, dict[str, Any]] = (200, {"errcode": 0, "errmsg": "ok"})
        self.hang = threading.Event()  # set: accept requests and never answer (a dead robot)
        self.release = threading.Event()  # lets hung requests finish when the test ends
        self._server: ThreadingHTTPServer | None = None
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                parsed = urlparse(self.path)
                if receiver.hang.is_set():
                    receiver.release.wait(10)
                    with receiver.lock:
                        receiver.posts.append((parsed.path + "#hung", parse_qs(parsed.query), body))
                    return
                with receiver.lock:
                    receiver.posts.append((parsed.path, parse_qs(parsed.query), body))
                status, answer = receiver.answer
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    yield r
    r.release.set()
    r.stop()


# -- helpers ---------------------------------------------------------------------------------------------
def config(smtp: SmtpServer | None = None, receiver: Receiver | None = None, **delivery: Any) -> NotifyConfig:
    email = EmailSettings()
    if smtp is not None:
        email = EmailSettings(
            enabled=True,
            host="127.0.0.1",
            port=smtp.port,
            security="none",
            sender="orderdesk@test.local",
            lang="zh",
            users={"wang": "wang@test.local"},
            roles={"supervisor": ("floor@test.local",)},
        )
    hooks: tuple[Webhook, ...] = ()
    if receiver is not None:
        hooks = (
            Webhook(
                name="production",
                kind="wecom",
                url=receiver.url("/cgi-bin/webhook/send?key=K1"),
                roles=("sales",),
            ),
            Webhook(
                name="management",
                kind="dingtalk",
                url=receiver.url("/robot/send?access_token=T1"),
                secret_env="TEST_DINGTALK_SECRET",
                roles=("supervisor",),
                lang="en",
            ),
        )
    settings = replace(DeliverySettings(), **{"timeout_seconds": 2.0, **delivery})
    return NotifyConfig(email=email, webhooks=hooks, delivery=settings)


def late_orders(store: Store, clock: FixedClock, cfg: NotifyConfig, n: int = 1) -> list[str]:
    """``n`` draft orders, made overdue (48 h) and alerted: messages for sales are queued."""
    numbers = [
        create_order(
            store, customer="C001", lines=[("HX-M8", 1)], user="wang", promised=date(2026, 12, 31)
        ).order_no
        for _ in range(n)
    ]
    run_alert_pass(store, cfg)
    clock.advance(hours=48)
    assert run_alert_pass(store, cfg).raised == n
    return numbers


# -- e-mail ----------------------------------------------------------------------------------------------
def test_alerts_are_mailed_through_a_real_smtp_server(
    desk: Store, clock: FixedClock, smtp: SmtpServer
) -> None:
    smtp.start()
    cfg = config(smtp)
    [no] = late_orders(desk, clock, cfg)
    report = deliver_pending(desk, cfg)
    assert (report.sent, report.retrying) == (1, 0)
    [mail] = smtp.box.messages
    assert mail.rcpt_tos == ["wang@test.local"]
    parsed = message_from_bytes(mail.content, policy=default_policy)
    assert no in parsed["Subject"]
    assert no in parsed.get_content() and "超时" in parsed.get_content()  # the mail is in Chinese (lang = zh)
    clock.advance(minutes=15)  # escalated to the supervisor: their group mailbox
    run_alert_pass(desk, cfg)
    deliver_pending(desk, cfg)
    assert [m.rcpt_tos for m in smtp.box.messages] == [["wang@test.local"], ["floor@test.local"]]
    assert deliver_pending(desk, cfg).claimed == 0  # nothing is sent twice


def test_mail_is_retried_with_backoff_while_the_server_is_down(
    desk: Store, clock: FixedClock, smtp: SmtpServer
) -> None:
    cfg = config(smtp)
    late_orders(desk, clock, cfg)
    report = deliver_pending(desk, cfg)  # nobody listening on the port
    assert (report.sent, report.retrying) == (0, 1)
    [row] = deliveries(desk)
    assert row.status == "pending" and row.attempts == 1 and "SMTP" in row.last_error
    assert row.next_attempt_at == clock.now + timedelta(seconds=30)
    assert deliver_pending(desk, cfg).claimed == 0  # not due yet
    clock.advance(seconds=30)
    assert deliver_pending(desk, cfg).retrying == 1  # still down: the wait doubles
    assert deliveries(desk)[0].next_attempt_at == clock.now + timedelta(seconds=60)
    smtp.start()
    clock.advance(seconds=60)
    assert deliver_pending(desk, cfg).sent == 1
    assert len(smtp.box.messages) == 1
    assert deliveries(desk)[0].status == "sent"


def test_after_max_attempts_a_message_is_marked_failed_and_stays_visible(
    desk: Store, clock: FixedClock
) -> None:
    cfg = config(SmtpServer(free_port()), max_attempts=2)  # never started
    late_orders(desk, clock, cfg)
    deliver_pending(desk, cfg)
    clock.advance(hours=1)
    report = deliver_pending(desk, cfg)
    assert report.failed == 1
    [row] = deliveries(desk, status="failed")
    assert row.attempts == 2 and row.last_error
    clock.advance(days=1)
    assert deliver_pending(desk, cfg).claimed == 0


# -- webhooks --------------------------------------------------------------------------------------------
def test_wecom_and_dingtalk_robots_get_their_own_json(
    desk: Store, clock: FixedClock, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_DINGTALK_SECRET", "SEC-123")
    receiver.start()
    cfg = config(receiver=receiver)
    [no] = late_orders(desk, clock, cfg)
    deliver_pending(desk, cfg)
    [(path, query, body)] = receiver.posts
    assert path == "/cgi-bin/webhook/send" and query["key"] == ["K1"]
    assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"content"}
    assert no in body["markdown"]["content"] and "超时" in body["markdown"]["content"]

    clock.advance(minutes=15)  # escalated to the supervisor: the management robot (DingTalk, English)
    run_alert_pass(desk, cfg)
    deliver_pending(desk, cfg)
    path, query, body = receiver.posts[1]
    assert path == "/robot/send" and query["access_token"] == ["T1"]
    assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"title", "text"}
    assert "Escalated to you" in body["markdown"]["text"]
    timestamp = query["timestamp"][0]
    digest = hmac.new(b"SEC-123", f"{timestamp}\nSEC-123".encode(), hashlib.sha256).digest()
    assert query["sign"] == [base64.b64encode(digest).decode()]  # DingTalk's 加签


def test_a_robot_that_answers_an_error_code_is_retried(
    desk: Store, clock: FixedClock, receiver: Receiver
) -> None:
    receiver.answer = (200, {"errcode": 93000, "errmsg": "invalid webhook url"})
    receiver.start()
    cfg = config(receiver=receiver)
    late_orders(desk, clock, cfg)
    assert deliver_pending(desk, cfg).retrying == 1
    assert "93000" in deliveries(desk)[0].last_error
    receiver.answer = (200, {"errcode": 0, "errmsg": "ok"})
    clock.advance(seconds=30)
    assert deliver_pending(desk, cfg).sent == 1
    assert len(receiver.posts) == 2


def test_webhook_down_then_up_is_delivered_once(desk: Store, clock: FixedClock, receiver: Receiver) -> None:
    cfg = config(receiver=receiver)
    late_orders(desk, clock, cfg, n=3)  # 3 alerts for sales -> 3 WeCom messages
    report = deliver_pending(desk, cfg)
    # The robot is unreachable: one attempt fails, the other two wait instead of timing out one by one.
    assert (report.retrying, report.deferred) == (1, 2)
    receiver.start()
    clock.advance(minutes=5)
    assert deliver_pending(desk, cfg).sent == 3
    clock.advance(hours=2)
    assert deliver_pending(desk, cfg).claimed == 0
    assert len(receiver.posts) == 3


def test_a_dead_channel_does_not_hold_up_the_others(
    desk: Store, clock: FixedClock, receiver: Receiver, smtp: SmtpServer
) -> None:
    smtp.start()
    receiver.start()
    receiver.hang.set()  # the robot accepts the connection and never answers
    cfg = config(smtp, receiver, timeout_seconds=0.5)
    late_orders(desk, clock, cfg, n=2)
    report = deliver_pending(desk, cfg)
    assert report.sent == 2  # both e-mails went out
    assert report.retrying + report.deferred == 2  # the two WeCom messages wait for their robot
    assert len(smtp.box.messages) == 2
    errors = [r.last_error for r in deliveries(desk) if r.channel == "wecom"]
    assert errors and all("Timeout" in e or "timed out" in e for e in errors if e)


def test_a_missing_secret_is_reported_not_raised(desk: Store, clock: FixedClock) -> None:
    hook = Webhook(name="production", kind="wecom", url_env="ORDERDESK_TEST_UNSET_URL", roles=("sales",))
    cfg = NotifyConfig(webhooks=(hook,))
    late_orders(desk, clock, cfg)
    assert deliver_pending(desk, cfg).retrying == 1
    assert "ORDERDESK_TEST_UNSET_URL" in deliveries(desk)[0].last_error


# -- never twice -----------------------------------------------------------------------------------------
def test_two_senders_racing_never_send_the_same_message_twice(
    desk: Store, clock: FixedClock, receiver: Receiver
) -> None:
    receiver.start()
    cfg = config(receiver=receiver, batch=3)
    late_orders(desk, clock, replace(cfg, webhooks=()), n=12)  # inbox only while raising: no digests
    # Queue twelve robot messages directly, as twelve separate alerts would.
    from orderdesk.i18n import msg
    from orderdesk.notify import enqueue

    with desk.write() as session:
        for i in range(12):
            enqueue(
                session,
                cfg,
                key=f"race-{i}",
                now=clock.now,
                event="raised",
                message=msg(
                    "{order_no} is overdue in {state}: {hours} h over its {timeout} h.",
                    order_no=f"SO-{i}",
                    state="x",
                    hours=1,
                    timeout=1,
                ),
                users=[],
                roles=["sales"],
            )
    other = Store.open(desk.path, clock=clock)
    barrier = threading.Barrier(2)

    def drain(store: Store) -> None:
        barrier.wait()
        while deliver_pending(store, cfg).claimed:
            pass

    threads = [threading.Thread(target=drain, args=(s,)) for s in (desk, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    contents = [body["markdown"]["content"] for _p, _q, body in receiver.posts]
    assert len(contents) == 12 and len(set(contents)) == 12
    other.close()


def test_a_claim_whose_sender_died_is_taken_over_after_its_lease(
    desk: Store, clock: FixedClock, receiver: Receiver
) -> None:
    receiver.start()
    cfg = config(receiver=receiver)
    late_orders(desk, clock, cfg)
    [taken] = claim(desk, worker="crashed", now=clock.now, limit=10, lease_seconds=300)
    assert deliver_pending(desk, cfg).claimed == 0  # still leased to the crashed sender
    clock.advance(seconds=301)
    assert deliver_pending(desk, cfg).sent == 1
    assert len(receiver.posts) == 1 and taken.channel == "wecom"


# -- configuration ---------------------------------------------------------------------------------------
def test_the_shipped_notify_file_loads() -> None:
    cfg = load_notify_config(Path(__file__).resolve().parent.parent / "data" / "notify.toml")
    assert cfg.alerts.amber_days == 3 and {w.kind for w in cfg.webhooks} == {"wecom", "dingtalk"}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[alerts]\namber_dayz = 3\n", "alerts.amber_dayz"),
        ("[delivery]\ntimeout_seconds = -1\n", "delivery.timeout_seconds"),
        ("[[webhooks]]\nname = 'a'\nkind = 'slack'\n", "webhooks[0].kind"),
        ("[email]\nsecurity = 'tls'\n", "email.security"),
        ("[smtp]\n", "smtp"),
    ],
)
def test_a_bad_notify_file_names_the_key(text: str, key: str) -> None:
    with pytest.raises(NotifyConfigError) as bad:
        parse_notify_config(text, source="notify.toml")
    assert f"notify.toml: {key}:" in str(bad.value)


def test_alert_list_still_works_with_channels(desk: Store, clock: FixedClock) -> None:
    cfg = config(SmtpServer(free_port()))
    late_orders(desk, clock, cfg)
    assert [a.kind for a in list_alerts(desk, config=cfg)] == ["overdue"]
