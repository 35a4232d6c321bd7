# ruff: noqa: F811 - pytest fixtures are imported from tests/sync_fixtures.py
"""The sync commands of the CLI, end to end against a real central API on loopback: make a code, enrol a
desk, create an order on it, sync, see it on another desk; rejections and their resolution; errors as one
line and an exit code, never a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from orderdesk.cli import main
from orderdesk.orders import move_order, show_order
from orderdesk.store import Store
from tests.sync_fixtures import sqlite_template, world  # noqa: F401
from tests.sync_harness import READY_ORDER, World, free_port


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_enrol_sync_and_status_from_the_cli(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server_db = str(world.store.path)
    code, out, _ = run(capsys, "server", "enrol-code", "--db", server_db, "--name", "Warehouse 9")
    assert code == 0
    enrol_code = out.strip()
    assert len(enrol_code) == 14 and enrol_code.count("-") == 2
    desk_db = str(tmp_path / "w9.db")
    code, out, err = run(
        capsys, "desk", "enrol", "--server", world.server.url, "--code", enrol_code, "--db", desk_db
    )
    assert code == 0, err
    assert "Enrolled as desk D" in out
    code, _out, err = run(
        capsys,
        "desk",
        "enrol",
        "--server",
        world.server.url,
        "--code",
        enrol_code,
        "--db",
        str(tmp_path / "x.db"),
    )
    assert code == 1 and "used or expired" in err and "Traceback" not in err
    code, out, err = run(
        capsys,
        "--db",
        desk_db,
        "order",
        "create",
        "--customer",
        "C002",
        "--line",
        "HX-M8:7",
        "--user",
        "wang",
        "--json",
    )
    assert code == 0, err
    order_no = json.loads(out)["order_no"]
    code, out, _ = run(capsys, "sync", "--status", "--db", desk_db)
    assert "1 waiting" in out
    code, out, err = run(capsys, "sync", "--once", "--db", desk_db)
    assert code == 0 and "Pushed 1 (0 rejected)" in out, err
    code, out, _ = run(capsys, "sync", "--status", "--db", desk_db)
    assert out.startswith("online · 0 waiting")
    world.sync("a")
    assert show_order(world.desks["a"], order_no).lines[0].quantity == 7
    code, out, _ = run(capsys, "server", "desks", "--db", server_db, "--json")
    assert "Warehouse 9" in [d["name"] for d in json.loads(out)]


def test_rejections_and_resolve_from_the_cli(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    move_order(world.desks["a"], order_no=READY_ORDER, to="ship", user="liu")
    move_order(world.desks["b"], order_no=READY_ORDER, to="cancel", user="wang")
    world.sync("a")
    b = str(world.desks["b"].path)
    code, out, err = run(capsys, "sync", "--once", "--db", b)
    # The person at the desk is told which change was refused, whose it was, and why.
    assert code == 0 and "Pushed 1 (1 rejected)" in out, err
    assert f"{READY_ORDER}: Move: cancel by wang was rejected by the central API: " in err
    assert "already moved to Shipped" in err
    code, out, _ = run(capsys, "desk", "rejections", "--db", b, "--json")
    [row] = json.loads(out)
    assert row["code"] == "state_conflict" and "already moved to Shipped" in row["reason"]
    code, out, _ = run(capsys, "--lang", "zh", "desk", "rejections", "--db", b)
    assert "状态变更：cancel" in out and "已发货" in out  # the same rejection in the reader's language
    code, out, _ = run(capsys, "desk", "resolve", row["op_id"], "--user", "sun", "--db", b)
    assert code == 0
    code, out, _ = run(capsys, "desk", "rejections", "--db", b, "--json")
    assert json.loads(out) == []


def test_sync_on_a_desk_that_is_not_enrolled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Store.open(tmp_path / "solo.db", create=True).close()
    code, _out, err = run(capsys, "sync", "--once", "--db", str(tmp_path / "solo.db"))
    assert code == 1 and "not enrolled" in err and "Traceback" not in err


def test_offline_sync_once_fails_cleanly(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.server.stop()
    code, _out, err = run(capsys, "sync", "--once", "--db", str(world.desks["a"].path))
    assert code == 1 and "Cannot reach the central API" in err


def readme_blocks(heading: str) -> list[str]:
    """The ``sh`` code blocks of one README section, as written there."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def test_the_readmes_central_api_and_two_desks_work_as_written(tmp_path: Path) -> None:
    """The README's commands, run as a person would in two terminals (the installed ``orderdesk`` script,
    the real ``orderdesk serve``), on a free port; only the last line, which opens the terminal app, is
    left out."""
    server_block, desks_block = readme_blocks("A central API and two desks")
    port = free_port()
    scripts = Path(sys.executable).parent
    assert (scripts / "orderdesk").exists(), "the orderdesk script is not installed (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if k not in ("ORDERDESK_DB", "ORDERDESK_WORKFLOW")}
    env |= {"PATH": f"{scripts}{os.pathsep}{env.get('PATH', '')}", "ORDERDESK_LANG": "en"}

    def sh(script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-ec", script.replace("8765", str(port))],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    setup, serve = [line for line in server_block.splitlines() if line.strip()]
    made = sh(setup)
    assert made.returncode == 0, made.stderr
    server = subprocess.Popen(
        ["bash", "-c", "exec " + serve.split("#")[0].replace("8765", str(port))],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:  # until it answers (readiness, not a claim about speed)
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.communicate()
            time.sleep(0.1)
        assert "/v1/push" in httpx.get(url + "/openapi.json").json()["paths"]
        work = "\n".join(line for line in desks_block.splitlines() if " run " not in line)
        done = sh(work)
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert "Enrolled as desk D1" in out and "Enrolled as desk D2" in out
        assert "Pushed 1 (0 rejected), pulled 1." in out
        assert re.search(r"SO-D1-0000001 .*│", out)  # listed on the second desk
    finally:
        server.terminate()
        server.wait(30)
