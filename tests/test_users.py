"""Users, roles, PIN and badge login; PINs stored hashed; lockout after repeated wrong PINs."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from orderdesk.clock import FixedClock
from orderdesk.errors import Refused
from orderdesk.store import Store
from orderdesk.users import ROLES, add_user, check_pin, hash_pin, list_users, login


def test_pins_and_badges_are_stored_hashed(store: Store) -> None:
    with store.read() as session:
        pin_hash, badge_hash = session.exec(
            text("SELECT pin_hash, badge_hash FROM app_user WHERE name='liu'")
        ).one()
    assert "1234" not in pin_hash and pin_hash.startswith("scrypt$")
    assert "B-LIU" not in badge_hash and len(badge_hash) == 64
    assert check_pin("1234", pin_hash) and not check_pin("1235", pin_hash)
    assert hash_pin("1234") != hash_pin("1234")  # salted


def test_login_by_pin_and_by_badge(store: Store) -> None:
    assert login(store, name="liu", pin="1234").roles == frozenset({"warehouse"})
    assert login(store, badge="B-ZHOU").name == "zhou"
    with pytest.raises(Refused, match="not registered"):
        login(store, badge="B-NOBODY")
    with pytest.raises(Refused, match="Wrong name or PIN"):
        login(store, name="nobody", pin="1234")


def test_wrong_pins_lock_the_user_for_a_while(store: Store, clock: FixedClock) -> None:
    for _ in range(5):
        with pytest.raises(Refused, match="Wrong name or PIN"):
            login(store, name="liu", pin="9999")
    with pytest.raises(Refused) as err:
        login(store, name="liu", pin="1234")  # right PIN, but locked
    assert err.value.code == "locked"
    clock.advance(minutes=6)
    assert login(store, name="liu", pin="1234").name == "liu"


def test_failed_logins_are_audited_but_not_synced(store: Store) -> None:
    with pytest.raises(Refused):
        login(store, name="liu", pin="0001")
    with store.read() as session:
        detail = session.exec(
            text("SELECT detail FROM audit_record WHERE command='login' ORDER BY id DESC")
        ).scalar()
        synced = session.exec(text("SELECT count(*) FROM outbox WHERE command='login'")).scalar()
    assert '"ok":false' in detail and "0001" not in detail
    assert synced == 0


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"name": "liu", "roles": ["sales"]}, "duplicate_user"),
        ({"name": "new", "roles": ["cashier"]}, "unknown_role"),
        ({"name": "new", "roles": []}, "unknown_role"),
        ({"name": "new", "roles": ["sales"], "pin": "12"}, "bad_pin"),
        ({"name": "new", "roles": ["sales"], "pin": "abcd"}, "bad_pin"),
        ({"name": "new guy", "roles": ["sales"]}, "bad_name"),
        ({"name": "", "roles": ["sales"]}, "empty_text"),
        ({"name": "new", "roles": ["sales"], "badge": "B-LIU"}, "duplicate_badge"),
    ],
)
def test_bad_users_are_refused(store: Store, kwargs: dict, code: str) -> None:
    before = len(list_users(store))
    with pytest.raises(Refused) as err:
        add_user(store, **kwargs)
    assert err.value.code == code
    assert len(list_users(store)) == before


def test_only_admins_add_users(store: Store) -> None:
    with pytest.raises(Refused) as err:
        add_user(store, name="x", roles=["sales"], by="wang")
    assert err.value.code == "forbidden"
    add_user(store, name="x", roles=["sales", "finance"], pin="5555", by="admin")
    assert {u.name: u.roles for u in list_users(store)}["x"] == ("sales", "finance")


def test_every_role_exists_in_the_workflow(store: Store) -> None:
    assert set(ROLES) == set(store.workflow.roles)


def test_badges_are_case_insensitive(store: Store) -> None:
    add_user(store, name="xl", roles=["warehouse"], badge="b-xl7")
    assert login(store, badge="B-XL7").name == "xl"
