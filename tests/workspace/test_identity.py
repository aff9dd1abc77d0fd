"""Identity (gexcore/workspace/identity.py): the sign-in mode, claim -> workspace name, the
trusted-proxy header and its loopback rule; the audit log (gexcore/workspace/audit.py)."""

from __future__ import annotations

import json
import threading

import pytest

from gexcore.workspace import audit
from gexcore.workspace.identity import (
    ConfigError,
    admins,
    auth_mode,
    check_server,
    from_claims,
    from_headers,
    is_loopback,
    session_hours,
    workspace_name,
)
from gexcore.workspace.store import check_name

PROXY = {"GEX_AUTH_HEADER": "X-Forwarded-Email"}


def test_workspace_names_are_safe_stable_and_readable():
    name = workspace_name("Alice.Smith@lab.org")
    slug = "alice-smith-lab-org-"
    assert name.startswith(slug) and len(name) == len(slug) + 10
    assert check_name(name, "user") == name
    assert workspace_name(" alice.smith@LAB.org ") == name      # e-mails ignore case
    assert "." not in name                                       # never a file beside them


@pytest.mark.parametrize(("a", "b"), [("alice@lab.org", "alice@lab-org"),
                                      ("a.b@x.org", "a-b@x.org"), ("bob@x.org", "bob@x.org.")])
def test_claims_with_the_same_slug_get_different_names(a, b):
    assert workspace_name(a) != workspace_name(b)


@pytest.mark.parametrize("claim", ["../../etc/passwd", "..", "日本語@例え.jp", "a" * 300,
                                   "-leading@x"])
def test_any_claim_maps_to_a_valid_workspace_name(claim):
    assert check_name(workspace_name(claim), "user")


@pytest.mark.parametrize("claim", ["", "   ", "a\nb", "x" * 400])
def test_empty_or_odd_claims_are_refused(claim):
    with pytest.raises(ValueError):
        workspace_name(claim)


def test_from_claims_prefers_email_then_sub():
    ident = from_claims({"email": "carol@lab.org", "sub": "123"}, admin_ids=frozenset())
    assert (ident.user, ident.label, ident.via, ident.admin) == (
        workspace_name("carol@lab.org"), "carol@lab.org", "oidc", False)
    assert from_claims({"sub": "123"}).user == workspace_name("123")
    assert from_claims({"sub": "123", "email": "c@x"}, claim="sub").label == "123"
    assert from_claims({"name": "no id"}) is None


def test_admins_come_from_gex_admins():
    ids = admins({"GEX_ADMINS": " Root@Lab.org , ops@lab.org,"})
    assert ids == {"root@lab.org", "ops@lab.org"}
    assert from_claims({"email": "root@lab.org"}, admin_ids=ids).admin
    assert not from_claims({"email": "carol@lab.org"}, admin_ids=ids).admin


def test_proxy_header_is_read_case_insensitively():
    headers = {"Host": "gex.lab.org", "x-forwarded-email": "dave@lab.org"}
    ident = from_headers(headers, "X-Forwarded-Email")
    assert (ident.user, ident.via, ident.label) == (workspace_name("dave@lab.org"), "proxy",
                                                    "dave@lab.org")
    assert from_headers({"Host": "x"}, "X-Forwarded-Email") is None
    assert from_headers({"X-Forwarded-Email": "  "}, "X-Forwarded-Email") is None
    assert from_headers({"X-Forwarded-Email": "a\nb"}, "X-Forwarded-Email") is None


@pytest.mark.parametrize(("address", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("", False), (None, False), ("10.1.2.3", False),
    ("gex.lab.org", False)])
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback


def test_proxy_mode_serves_only_on_loopback_with_a_header():
    check_server("proxy", "127.0.0.1", PROXY)
    with pytest.raises(ConfigError, match="must listen on loopback only"):
        check_server("proxy", "0.0.0.0", PROXY)
    with pytest.raises(ConfigError, match="all interfaces"):
        check_server("proxy", None, PROXY)
    with pytest.raises(ConfigError, match="needs GEX_AUTH_HEADER"):
        check_server("proxy", "127.0.0.1", {})
    check_server("password", "0.0.0.0", {})                     # other modes sign in themselves


def test_the_app_script_check_refuses_with_a_message(monkeypatch):
    import subprocess
    import sys

    env = {"GEX_AUTH": "proxy", "GEX_AUTH_HEADER": "X-Forwarded-Email", "PATH": ""}
    done = subprocess.run([sys.executable, "-m", "gexcore.workspace.identity", "0.0.0.0"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "Refusing to serve" in done.stderr
    done = subprocess.run([sys.executable, "-m", "gexcore.workspace.identity", "127.0.0.1"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_mode_and_hours_settings():
    assert auth_mode({}) == "none" and auth_mode({"GEX_AUTH": " OIDC "}) == "oidc"
    with pytest.raises(ConfigError, match="not a sign-in mode"):
        auth_mode({"GEX_AUTH": "ldap"})
    assert session_hours({}) == 12 and session_hours({"GEX_SESSION_HOURS": "0.5"}) == 0.5
    for bad in ("soon", "0", "-1"):
        with pytest.raises(ConfigError):
            session_hours({"GEX_SESSION_HOURS": bad})


# -- audit log ------------------------------------------------------------------------------
def test_audit_lines_are_json_with_time_event_user(tmp_path):
    audit.append("signin", "alice", base=tmp_path, via="password", client="10.0.0.7")
    audit.append("share", "alice", base=tmp_path, cohort="c1", to=["bob"])
    lines = (tmp_path / "audit.log").read_text().splitlines()
    first = json.loads(lines[0])
    assert first["event"] == "signin" and first["user"] == "alice" and first["time"].endswith("Z")
    assert [e["event"] for e in audit.read(tmp_path)] == ["signin", "share"]
    assert audit.read(tmp_path, limit=1)[0]["to"] == ["bob"]


def test_audit_refuses_credential_fields_and_keeps_user_text_on_one_line(tmp_path):
    with pytest.raises(ValueError, match="credentials"):
        audit.append("signin", "alice", base=tmp_path, password="x")
    with pytest.raises(ValueError):
        audit.append("signin", "alice", base=tmp_path, id_token="x")
    audit.append("signin_failed", "evil\n{\"event\":\"forged\"}", base=tmp_path)
    (line,) = (tmp_path / "audit.log").read_text().splitlines()
    assert json.loads(line)["user"] == "evil\n{\"event\":\"forged\"}"


def test_audit_uses_gex_workspace_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("GEX_WORKSPACE", str(tmp_path))
    audit.append("job_submitted", "alice", run="r1")
    assert audit.read()[0]["run"] == "r1"


def test_concurrent_appends_never_interleave(tmp_path):
    def write(i: int) -> None:
        for j in range(50):
            audit.append("event", f"user{i}", base=tmp_path, n=j, pad="x" * 2000)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = (tmp_path / "audit.log").read_text().splitlines()
    assert len(lines) == 400 and all(json.loads(line)["pad"] == "x" * 2000 for line in lines)
    assert audit.read(tmp_path / "missing") == []
