"""Built-in accounts for `GEX_AUTH=password`: argon2id hashes and sign-in throttling in
`<base>/server.sqlite`, beside the workspaces.

```python
accounts = Accounts(base)
accounts.add("alice", "correct horse battery", admin=True)     # `gex user add alice --admin`
account = accounts.sign_in("alice", password, client="10.0.0.7")   # SignInError if refused
accounts.session_account("alice", signed_in=t0)       # None once expired, removed, re-keyed
```
Throttling (`Throttle`): failed sign-ins are counted per user name (known or not, so a refusal
says nothing about which names exist) and per client address. After `free` failures in a row a
key is locked for `base_s` seconds, doubling with every further failure up to `max_s`; while
locked, attempts are refused without checking the password. The counts live in the database, so
they hold across browser sessions and server restarts; a success clears the user's count, and a
key's count is forgotten `max_s` after its last failure. Nothing here sleeps.
Passwords are never stored, logged or audited; account changes and sign-ins go to the audit log.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gexcore.errors import InputError
from gexcore.workspace import audit, db
from gexcore.workspace.audit import AUDIT_FILE
from gexcore.workspace.identity import session_hours
from gexcore.workspace.store import check_user

__all__ = ["ACCOUNTS_FILE", "Account", "Accounts", "SignInError", "Throttle"]

ACCOUNTS_FILE = "server.sqlite"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_RESERVED = (ACCOUNTS_FILE, AUDIT_FILE, "shares.sqlite")    # files beside the workspaces
_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    changed REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT PRIMARY KEY,           -- "user:NAME" or "client:ADDRESS"
    count INTEGER NOT NULL,
    last REAL NOT NULL,
    locked_until REAL NOT NULL
);
"""
_hasher = PasswordHasher()                      # argon2id, 64 MiB, t=3 (the library's defaults)
_DUMMY_HASH = _hasher.hash("not a password anyone has")   # unknown names cost the same time


class SignInError(InputError):
    """A refused sign-in; the message is safe to show (it never says whether the name exists).
    `retry_after` is the lock's remaining seconds, 0 for a plain wrong password."""

    def __init__(self, message: str, retry_after: float = 0.0):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Throttle:
    """Lock a user name after `free_user` failures in a row, a client after `free_client`;
    the lock lasts `base_s`, doubling per further failure, at most `max_s`."""

    free_user: int = 5
    free_client: int = 20
    base_s: float = 30.0
    max_s: float = 3600.0

    def lock_for(self, count: int, free: int) -> float:
        """Seconds to lock a key that has failed `count` times in a row."""
        if count < free:
            return 0.0
        return min(self.base_s * 2 ** (count - free), self.max_s)


@dataclass(frozen=True)
class Account:
    """One built-in account; times are Unix seconds, `changed` is the last password change."""

    name: str
    admin: bool
    created: float
    changed: float


class Accounts:
    """The accounts database of one server (`<base>/server.sqlite`)."""

    def __init__(self, base: str | Path, *, throttle: Throttle = Throttle()):
        self.base = Path(base)
        self.path = self.base / ACCOUNTS_FILE
        self.throttle = throttle
        db.create(self.path, _SCHEMA)

    def _db(self):
        return db.transaction(self.path)

    # -- accounts ---------------------------------------------------------------------------
    def add(self, name: str, password: str, *, admin: bool = False, by: str = "cli") -> Account:
        """Create an account; refuses a taken or unsafe name and a short password."""
        _check_account_name(name)
        if (self.base / name).exists() and not (self.base / name).is_dir():
            raise InputError(f"user name {name!r} is taken by a file in {self.base}.")
        hashed = _hasher.hash(_check_password(password))
        now = time.time()
        with self._db() as conn:
            try:
                conn.execute("INSERT INTO accounts VALUES (?, ?, ?, ?, ?)",
                           (name, hashed, int(admin), now, now))
            except sqlite3.IntegrityError:
                raise InputError(f"user {name!r} already exists; `gex user passwd {name}` "
                                 "changes the password.") from None
        audit.append("account_added", name, base=self.base, admin=admin, by=by)
        return Account(name, admin, now, now)

    def set_password(self, name: str, password: str, *, by: str = "cli") -> None:
        """Replace the password; sessions signed in before now end at their next page load."""
        hashed = _hasher.hash(_check_password(password))
        with self._db() as conn:
            cur = conn.execute("UPDATE accounts SET hash = ?, changed = ? WHERE name = ?",
                             (hashed, time.time(), name))
            if not cur.rowcount:
                raise InputError(_no_such(name))
            conn.execute("DELETE FROM failures WHERE key = ?", (f"user:{name}",))
        audit.append("password_changed", name, base=self.base, by=by)

    def set_admin(self, name: str, admin: bool, *, by: str = "cli") -> None:
        with self._db() as conn:
            if not conn.execute("UPDATE accounts SET admin = ? WHERE name = ?",
                              (int(admin), name)).rowcount:
                raise InputError(_no_such(name))
        audit.append("admin_changed", name, base=self.base, admin=admin, by=by)

    def remove(self, name: str, *, by: str = "cli") -> None:
        """Delete the account (its workspace folder stays on disk for an admin to archive)."""
        with self._db() as conn:
            if not conn.execute("DELETE FROM accounts WHERE name = ?", (name,)).rowcount:
                raise InputError(_no_such(name))
        audit.append("account_removed", name, base=self.base, by=by)

    def get(self, name: str) -> Account | None:
        with self._db() as conn:
            row = conn.execute("SELECT name, admin, created, changed FROM accounts WHERE name = ?",
                             (name,)).fetchone()
        return None if row is None else Account(row[0], bool(row[1]), row[2], row[3])

    def list(self) -> list[Account]:
        with self._db() as conn:
            rows = conn.execute("SELECT name, admin, created, changed FROM accounts "
                              "ORDER BY name").fetchall()
        return [Account(r[0], bool(r[1]), r[2], r[3]) for r in rows]

    # -- signing in ---------------------------------------------------------------------------
    def sign_in(self, name: str, password: str, *, client: str = "") -> Account:
        """The account if `password` is right and neither the name nor the client is locked;
        else SignInError. Every outcome is audited (never the password)."""
        name = name.strip()
        keys = [f"user:{name[:64]}"] + ([f"client:{client[:64]}"] if client else [])
        now = time.time()
        if wait := self._locked(keys, now):
            audit.append("signin_refused", name[:64], base=self.base, client=client,
                         retry_after=round(wait))
            raise SignInError(f"Too many failed sign-ins; try again in {_seconds(wait)}.", wait)
        account, stored = self._account_hash(name)
        if not _verify(stored or _DUMMY_HASH, password) or account is None:
            wait = self._fail(keys, now)
            audit.append("signin_failed", name[:64], base=self.base, via="password",
                         client=client)
            raise SignInError("Wrong user name or password." + (
                f" Too many failed sign-ins; try again in {_seconds(wait)}." if wait else ""),
                wait)
        with self._db() as conn:
            conn.execute("DELETE FROM failures WHERE key = ?", (keys[0],))
            if _hasher.check_needs_rehash(stored):
                conn.execute("UPDATE accounts SET hash = ? WHERE name = ?",
                           (_hasher.hash(password), name))
        audit.append("signin", name, base=self.base, via="password", client=client)
        return account

    def session_account(self, name: str, signed_in: float, *, now: float | None = None,
                        hours: float | None = None) -> Account | None:
        """The account of a session signed in at `signed_in` if it still stands: the account
        exists, its password has not changed since, and fewer than `hours`
        (GEX_SESSION_HOURS, default 12) have passed; else None."""
        now = time.time() if now is None else now
        hours = session_hours() if hours is None else hours
        account = self.get(name)
        if account is None or account.changed > signed_in or now - signed_in >= hours * 3600:
            return None
        return account

    def _account_hash(self, name: str) -> tuple[Account | None, str | None]:
        with self._db() as conn:
            row = conn.execute("SELECT name, admin, created, changed, hash FROM accounts "
                             "WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None, None
        return Account(row[0], bool(row[1]), row[2], row[3]), row[4]

    def _locked(self, keys: list[str], now: float) -> float:
        """Seconds until every key in `keys` is unlocked (0: none is locked)."""
        with self._db() as conn:
            marks = ",".join("?" * len(keys))
            rows = conn.execute(f"SELECT locked_until FROM failures WHERE key IN ({marks})",
                              keys).fetchall()
        return max([r[0] - now for r in rows if r[0] > now], default=0.0)

    def _fail(self, keys: list[str], now: float) -> float:
        """Count one failure against each key (in one transaction); the longest new lock."""
        longest = 0.0
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")         # take the write lock before reading counts
            for key in keys:
                row = conn.execute("SELECT count, last FROM failures WHERE key = ?",
                                   (key,)).fetchone()
                count = 1 if row is None or now - row[1] > self.throttle.max_s else row[0] + 1
                free = (self.throttle.free_user if key.startswith("user:")
                        else self.throttle.free_client)
                lock = self.throttle.lock_for(count, free)
                longest = max(longest, lock)
                conn.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?)",
                         (key, count, now, now + lock))
        return longest


def _verify(stored: str, password: str) -> bool:
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _check_account_name(name: str) -> str:
    check_user(name)                            # safe, at most 64 characters, not "demo"
    if name.lower().startswith(_RESERVED):
        raise InputError(f"user name {name!r} is reserved (a file beside the workspaces).")
    return name


def _check_password(password: str) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InputError(f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters.")
    return password


def _no_such(name: str) -> str:
    return f"no user {name!r}; `gex user list` shows the accounts."


def _seconds(wait: float) -> str:
    wait = max(1, round(wait))
    return f"{wait} s" if wait < 120 else f"{round(wait / 60)} min"
