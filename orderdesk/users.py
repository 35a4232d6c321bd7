"""Users, roles and logging in (name + PIN, or a badge scan). PINs and badges are stored hashed."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import col, select

from orderdesk.commands import SYSTEM, Actor, clean_text, command, load_actor
from orderdesk.errors import Refused
from orderdesk.i18n import msg
from orderdesk.models import AppUser, UserRole
from orderdesk.store import Store

ROLES = ("sales", "qc", "warehouse", "finance", "planner", "supervisor", "admin")
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=5)
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def check_pin(pin: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        actual = hashlib.scrypt(
            pin.encode(), salt=bytes.fromhex(salt), dklen=32, n=int(n), r=int(r), p=int(p)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual.hex(), digest)


def hash_badge(badge: str) -> str:
    """Badges are case-insensitive (a scanner with caps lock on still logs in), so hash the upper case."""
    return hashlib.sha256(("orderdesk-badge:" + badge.strip().upper()).encode()).hexdigest()


def _valid_pin(pin: str) -> str:
    if not (pin.isdigit() and 4 <= len(pin) <= 8):
        raise Refused(msg("A PIN is 4 to 8 digits."), code="bad_pin")
    return pin


@dataclass(frozen=True)
class UserInfo:
    name: str
    display_name: str
    roles: tuple[str, ...]
    has_pin: bool
    has_badge: bool
    active: bool

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "roles": list(self.roles),
            "has_pin": self.has_pin,
            "has_badge": self.has_badge,
            "active": self.active,
        }


def add_user(
    store: Store,
    *,
    name: str,
    roles: list[str],
    pin: str | None = None,
    badge: str | None = None,
    display_name: str = "",
    by: str | Actor = SYSTEM,
) -> UserInfo:
    """Create a user with one or more roles. Only an admin (or the desk owner at the CLI) may."""
    name = clean_text(name, field_name="User name", max_len=40, required=True)
    if any(ch.isspace() for ch in name):
        raise Refused(msg("A user name has no spaces: {name}", name=name), code="bad_name")
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise Refused(
            msg(
                "Unknown role {role}: use one of {roles}.",
                role=", ".join(unknown) or "-",
                roles=", ".join(ROLES),
            ),
            code="unknown_role",
        )
    display = clean_text(display_name or name, field_name="Display name", max_len=60)
    with command(store, "add_user", user=by) as ctx:
        if "admin" not in ctx.actor.roles:
            raise Refused(msg("Only an admin may add users."), code="forbidden", who=("admin",))
        if ctx.session.exec(select(AppUser).where(AppUser.name == name)).first():
            raise Refused(msg("A user called {name} already exists.", name=name), code="duplicate_user")
        badge_hash = hash_badge(badge) if badge else None
        if badge_hash and ctx.session.exec(select(AppUser).where(AppUser.badge_hash == badge_hash)).first():
            raise Refused(msg("That badge already belongs to another user."), code="duplicate_badge")
        user = AppUser(
            name=name,
            display_name=display,
            pin_hash=hash_pin(_valid_pin(pin)) if pin else "",
            badge_hash=badge_hash,
            created_at=ctx.now,
        )
        ctx.session.add(user)
        ctx.session.flush()
        for role in dict.fromkeys(roles):
            ctx.session.add(UserRole(user_id=user.id or 0, role=role))
        # PIN and badge never go into the audit trail or the outbox, not even hashed.
        ctx.record(args={"name": name, "roles": list(dict.fromkeys(roles)), "display_name": display})
    return UserInfo(name, display, tuple(dict.fromkeys(roles)), bool(pin), bool(badge), True)


def list_users(store: Store) -> list[UserInfo]:
    with store.read() as session:
        users = session.exec(select(AppUser).order_by(col(AppUser.name))).all()
        roles: dict[int, list[str]] = {}
        for ur in session.exec(select(UserRole)).all():
            roles.setdefault(ur.user_id, []).append(ur.role)
        return [
            UserInfo(
                u.name,
                u.display_name,
                tuple(sorted(roles.get(u.id or 0, []), key=ROLES.index)),
                bool(u.pin_hash),
                bool(u.badge_hash),
                u.active,
            )
            for u in users
        ]


def login(
    store: Store, *, name: str | None = None, pin: str | None = None, badge: str | None = None
) -> Actor:
    """Check a name + PIN or a badge. Wrong PINs count; five in a row lock the user for five minutes."""
    failure: Refused | None = None
    with command(store, "login", user=SYSTEM) as ctx:
        if badge is not None:
            user = ctx.session.exec(select(AppUser).where(AppUser.badge_hash == hash_badge(badge))).first()
            if user is None:
                raise Refused(msg("This badge is not registered. Ask your supervisor."), code="unknown_badge")
        else:
            user = ctx.session.exec(select(AppUser).where(AppUser.name == (name or "").strip())).first()
            if user is None:
                raise Refused(msg("Wrong name or PIN."), code="bad_login")
        if not user.active:
            raise Refused(
                msg("User {name} is deactivated; ask an admin.", name=user.name), code="inactive_user"
            )
        if user.locked_until and user.locked_until > ctx.now:
            minutes = max(1, round((user.locked_until - ctx.now).total_seconds() / 60))
            raise Refused(
                msg(
                    "Too many wrong PINs: {name} is locked for {minutes} more minutes.",
                    name=user.name,
                    minutes=minutes,
                ),
                code="locked",
            )
        ok = badge is not None or (bool(user.pin_hash) and check_pin(pin or "", user.pin_hash))
        if ok:
            user.failed_logins, user.locked_until = 0, None
        else:
            user.failed_logins += 1
            if user.failed_logins >= MAX_FAILED_LOGINS:
                user.locked_until, user.failed_logins = ctx.now + LOCKOUT, 0
            failure = Refused(msg("Wrong name or PIN."), code="bad_login")
        ctx.session.add(user)
        ctx.record(
            args={"name": user.name, "method": "badge" if badge is not None else "pin", "ok": ok}, sync=False
        )
        actor = load_actor(ctx.session, user.name)
    if failure:
        raise failure
    return actor
