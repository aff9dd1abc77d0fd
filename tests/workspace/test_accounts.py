"""Built-in accounts (gexcore/workspace/accounts.py) and `gex user`: argon2 hashes, sign-in,
throttling, session expiry, the audit trail, and the CLI."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest
from argon2 import PasswordHasher

from gexcore.cli import main
from gexcore.errors import InputError
from gexcore.workspace import audit
from gexcore.workspace.accounts import Accounts, SignInError, Throttle

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch):
    """argon2id with tiny costs: these tests check the rules, not the hashing cost."""
    monkeypatch.setattr("gexcore.workspace.accounts._hasher",
                        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def accounts(tmp_path) -> Accounts:
    acc = Accounts(tmp_path / "base")
    acc.add("alice", PASSWORD)
    return acc


def _hash(accounts: Accounts, name: str) -> str:
    with sqlite3.connect(accounts.path) as db:
        return db.execute("SELECT hash FROM accounts WHERE name = ?", (name,)).fetchone()[0]


def test_the_stored_hash_is_argon2id_and_never_the_password(accounts):
    stored = _hash(accounts, "alice")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    accounts.add("bob", PASSWORD)
    assert _hash(accounts, "bob") != stored                    # salted
    assert PASSWORD.encode() not in accounts.path.read_bytes()


def test_sign_in_verifies_the_password(accounts):
    assert accounts.sign_in("alice", PASSWORD, client="10.0.0.7").name == "alice"
    with pytest.raises(SignInError, match="Wrong user name or password"):
        accounts.sign_in("alice", PASSWORD.upper())


def test_an_unknown_name_gets_the_same_refusal(accounts):
    with pytest.raises(SignInError) as unknown:
        accounts.sign_in("mallory", PASSWORD)
    with pytest.raises(SignInError) as wrong:
        accounts.sign_in("alice", "wrong-password")
    assert str(unknown.value) == str(wrong.value)


def test_passwd_replaces_the_password(accounts):
    accounts.set_password("alice", "a brand new one")
    with pytest.raises(SignInError):
        accounts.sign_in("alice", PASSWORD)
    assert accounts.sign_in("alice", "a brand new one").name == "alice"
    with pytest.raises(InputError, match="no user 'carol'"):
        accounts.set_password("carol", "whatever-long")


def test_remove_deletes_the_account(accounts):
    accounts.remove("alice")
    assert accounts.get("alice") is None and accounts.list() == []
    with pytest.raises(SignInError):
        accounts.sign_in("alice", PASSWORD)
    with pytest.raises(InputError, match="no user"):
        accounts.remove("alice")


@pytest.mark.parametrize("name", ["../etc", ".hidden", "a/b", "", "x" * 65, "audit.log",
                                  "server.sqlite-wal", "demo"])
def test_unsafe_or_reserved_names_are_refused(accounts, name):
    with pytest.raises(InputError):
        accounts.add(name, PASSWORD)


def test_a_name_taken_by_a_file_beside_the_workspaces_is_refused(accounts):
    (accounts.base / "notes.txt").write_text("admin's notes")
    with pytest.raises(InputError, match="taken by a file"):
        accounts.add("notes.txt", PASSWORD)


def test_short_passwords_and_taken_names_are_refused(accounts):
    with pytest.raises(InputError, match="8 to 1024 characters"):
        accounts.add("bob", "short")
    with pytest.raises(InputError, match="already exists"):
        accounts.add("alice", PASSWORD)


def test_failures_lock_the_name_even_against_the_right_password(tmp_path):
    acc = Accounts(tmp_path, throttle=Throttle(free_user=3, free_client=100, base_s=30))
    acc.add("alice", PASSWORD)
    for _ in range(2):
        with pytest.raises(SignInError) as err:
            acc.sign_in("alice", "guess-guess")
        assert err.value.retry_after == 0
    with pytest.raises(SignInError, match="try again in 30 s") as err:
        acc.sign_in("alice", "guess-guess")                     # the 3rd failure locks
    with pytest.raises(SignInError, match="Too many failed sign-ins"):
        acc.sign_in("alice", PASSWORD)                          # refused while locked
    # the lock holds for another Accounts object (another session, a restarted server)
    with pytest.raises(SignInError, match="Too many"):
        Accounts(tmp_path).sign_in("alice", PASSWORD)


def test_the_lock_doubles_and_a_success_clears_it(tmp_path, monkeypatch):
    acc = Accounts(tmp_path, throttle=Throttle(free_user=2, free_client=100, base_s=10,
                                               max_s=25))
    acc.add("alice", PASSWORD)
    clock = [1000.0]
    monkeypatch.setattr("gexcore.workspace.accounts.time.time", lambda: clock[0])
    waits = []
    for _ in range(4):
        with pytest.raises(SignInError) as err:
            acc.sign_in("alice", "guess-guess")
        waits.append(err.value.retry_after)
        clock[0] += err.value.retry_after + 1                   # just past each lock
    assert waits == [0, 10, 20, 25]                             # doubling, capped at max_s
    assert acc.sign_in("alice", PASSWORD).name == "alice"
    with pytest.raises(SignInError) as err:                     # counting starts over
        acc.sign_in("alice", "guess-guess")
    assert err.value.retry_after == 0


def test_one_client_guessing_many_names_is_locked(tmp_path):
    acc = Accounts(tmp_path, throttle=Throttle(free_user=100, free_client=3))
    acc.add("alice", PASSWORD)
    for name in ("u1", "u2", "u3"):
        with pytest.raises(SignInError):
            acc.sign_in(name, "guess-guess", client="10.0.0.9")
    with pytest.raises(SignInError, match="Too many"):
        acc.sign_in("alice", PASSWORD, client="10.0.0.9")
    assert acc.sign_in("alice", PASSWORD, client="10.0.0.10").name == "alice"


def test_sessions_expire_and_end_on_a_password_change(accounts):
    t0 = time.time()                                            # signed in now
    assert accounts.session_account("alice", t0, now=t0 + 11.9 * 3600, hours=12) is not None
    assert accounts.session_account("alice", t0, now=t0 + 12 * 3600, hours=12) is None
    time.sleep(0.01)
    accounts.set_password("alice", "a brand new one")
    assert accounts.session_account("alice", t0, now=t0 + 60, hours=12) is None
    accounts.remove("alice")
    assert accounts.session_account("alice", t0 + 1e6, now=t0 + 1e6, hours=12) is None


def test_session_hours_come_from_the_environment(accounts, monkeypatch):
    t0 = accounts.get("alice").changed + 1
    monkeypatch.setenv("GEX_SESSION_HOURS", "1")
    assert accounts.session_account("alice", t0, now=t0 + 3599) is not None
    assert accounts.session_account("alice", t0, now=t0 + 3601) is None


def test_every_change_and_sign_in_is_audited_without_the_password(accounts):
    accounts.sign_in("alice", PASSWORD, client="10.0.0.7")
    with pytest.raises(SignInError):
        accounts.sign_in("alice", "wrong-password", client="10.0.0.7")
    accounts.set_password("alice", "a brand new one")
    accounts.remove("alice")
    events = [(e["event"], e["user"]) for e in audit.read(accounts.base)]
    assert events == [("account_added", "alice"), ("signin", "alice"),
                      ("signin_failed", "alice"), ("password_changed", "alice"),
                      ("account_removed", "alice")]
    text = (accounts.base / "audit.log").read_text()
    assert PASSWORD not in text and "wrong-password" not in text and "brand new" not in text


# -- gex user -----------------------------------------------------------------------------------
def _gex(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gexcore.cli", "user", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, check=False)


def test_gex_user_add_list_passwd_remove(tmp_path):
    base = str(tmp_path)
    done = _gex("add", "alice", "--admin", "--password-stdin", "--workspace", base,
                stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    assert "added user alice (admin)" in done.stdout and PASSWORD not in done.stdout
    assert Accounts(base).sign_in("alice", PASSWORD).admin
    listing = _gex("list", "--workspace", base)
    assert listing.stdout.startswith("alice\tadmin\t")
    assert _gex("passwd", "alice", "--password-stdin", "--workspace", base,
                stdin="another password\n").returncode == 0
    assert Accounts(base).sign_in("alice", "another password").name == "alice"
    assert _gex("remove", "alice", "--workspace", base).returncode == 0
    assert Accounts(base).list() == []


def test_gex_user_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("short\n"))
    assert main(["user", "add", "bob", "--password-stdin", "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gex user: error: a password needs 8") and "Traceback" not in err
    assert main(["user", "remove", "carol", "--workspace", str(tmp_path)]) == 2
    assert "no user 'carol'" in capsys.readouterr().err


def test_gex_user_without_a_terminal_asks_for_password_stdin(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(""))
    assert main(["user", "add", "bob", "--workspace", str(tmp_path)]) == 2
    assert "--password-stdin" in capsys.readouterr().err


def test_gex_user_defaults_to_gex_workspace(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GEX_WORKSPACE", str(tmp_path))
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "carol", "--password-stdin"]) == 0
    assert (tmp_path / "server.sqlite").exists()
