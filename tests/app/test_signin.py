"""Sign-in (ui/auth.py, app.py) in AppTest: the password form, throttling, expiry, sign-out,
admin-only navigation, local mode ignoring `?user=`, and the refusals of misconfigured modes."""

from __future__ import annotations

import time

import pytest
from argon2 import PasswordHasher
from streamlit.testing.v1 import AppTest

from gexcore.workspace import audit, open_workspace, submit
from gexcore.workspace.accounts import Accounts
from gexcore.workspace.slot import job_slot
from tests.app.conftest import APP, unescaped
from tests.workspace._sleep_job import SleepJob

ALICE = "alice-password-1"


@pytest.fixture
def password_app(workspace_dir, monkeypatch) -> AppTest:
    """GEX_AUTH=password with alice (no admin) and root (admin); the app not yet run."""
    monkeypatch.setenv("GEX_AUTH", "password")
    monkeypatch.setattr("gexcore.workspace.accounts._hasher",       # cheap: rules, not cost
                        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    accounts = Accounts(workspace_dir)
    accounts.add("alice", ALICE)
    accounts.add("root", "root-password-1", admin=True)
    return AppTest.from_file(APP, default_timeout=180)


def _run_app(at: AppTest) -> AppTest:
    """Rerun on the app's default page, as a browser opening the root URL does (AppTest
    otherwise reruns the page it was last switched to)."""
    at._page_hash = at._finished_page_script_hash = ""
    at.run()
    assert not at.exception, at.exception
    return at


def _submit(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input[0].input(name)
    at.text_input[1].input(password)
    at.button[0].click()
    return _run_app(at)


def _on_sign_in_form(at: AppTest) -> bool:
    """The sign-in form is shown (as the app's only page, or in place of a page's content when
    AppTest reruns the page script alone)."""
    return [t.label for t in at.text_input][-2:] == ["User name", "Password"] and not at.metric


def _signed_in_as(at: AppTest) -> str:
    return unescaped(next(c.value for c in at.sidebar.caption if "Signed in as" in c.value))


def test_sign_in_form_comes_before_any_page(password_app):
    at = password_app
    _run_app(at)
    assert not at.exception
    assert [t.value for t in at.title] == ["GexScope"]
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    assert at.text_input[1].proto.type == at.text_input[1].proto.PASSWORD
    assert not at.metric and not at.sidebar.caption          # no page, no workspace opened


def test_wrong_password_is_refused_and_the_right_one_opens_the_own_workspace(password_app,
                                                                          workspace_dir):
    at = password_app
    _run_app(at)
    _submit(at, "alice", "not-her-password")
    assert [e.value for e in at.error] == ["Wrong user name or password."]
    assert at.title[0].value == "GexScope"
    _submit(at, "alice", ALICE)
    assert at.title[0].value == "Overview"
    assert _signed_in_as(at) == "Signed in as **alice**"
    assert (workspace_dir / "alice" / "workspace.sqlite").exists()
    assert not (workspace_dir / "default").exists()
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/admin.py")                      # alice is no admin: not listed
    at.switch_page("views/train.py")                          # navigation keeps the identity
    at.run()
    assert at.title[0].value == "Train" and not _on_sign_in_form(at)
    events = [(e["event"], e["user"]) for e in audit.read(workspace_dir)]
    assert events[-2:] == [("signin_failed", "alice"), ("signin", "alice")]
    assert ALICE not in (workspace_dir / "audit.log").read_text()


def test_sign_out_returns_to_the_form(password_app, workspace_dir):
    at = password_app
    _run_app(at)
    _submit(at, "alice", ALICE)
    at.sidebar.button(key="_gex_sign_out").click()
    _run_app(at)
    assert _on_sign_in_form(at)
    assert "You have signed out." in [i.value for i in at.info]
    assert audit.read(workspace_dir)[-1]["event"] == "signout"


def test_repeated_failures_lock_the_name_even_for_the_right_password(password_app):
    at = password_app
    _run_app(at)
    for _ in range(5):
        _submit(at, "alice", "guess-guess")
    assert "Too many failed sign-ins" in at.error[0].value
    _submit(at, "alice", ALICE)
    assert "Too many failed sign-ins" in at.error[0].value
    assert at.title[0].value == "GexScope"


def test_an_expired_session_asks_to_sign_in_again(password_app):
    at = password_app
    _run_app(at)
    _submit(at, "alice", ALICE)
    at.session_state["_gex_signed_in"] = {"user": "alice", "since": time.time() - 13 * 3600}
    _run_app(at)
    assert _on_sign_in_form(at)
    assert "Your session has ended; please sign in again." in [i.value for i in at.info]


def test_a_password_change_ends_open_sessions(password_app, workspace_dir):
    at = password_app
    _run_app(at)
    _submit(at, "alice", ALICE)
    time.sleep(0.01)
    Accounts(workspace_dir).set_password("alice", "a-new-password")
    _run_app(at)
    assert _on_sign_in_form(at)


def test_admins_get_the_admin_page_with_the_audit_log(password_app):
    at = password_app
    _run_app(at)
    _submit(at, "root", "root-password-1")
    at.switch_page("views/admin.py")
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Admin"
    assert [s.value for s in at.subheader] == ["Jobs", "Audit log", "Accounts"]
    assert int(at.metric[0].value) >= 3                       # account_added x2, signin


def test_the_admin_page_lists_every_users_jobs_and_cancels_one(password_app, workspace_dir):
    """bob's queued job (behind a running gex command) shows on root's admin page by name and
    state, without any of bob's data, and root's cancel reaches bob's run and the audit log."""
    at = password_app
    bob = open_workspace(workspace_dir, "bob")
    with job_slot(workspace_dir, "ann", "pretrain"):          # holds the one slot
        run_id = submit(bob, SleepJob(name="bob's <b>sleep</b>"), threads=1)
        _run_app(at)
        _submit(at, "root", "root-password-1")
        at.switch_page("views/admin.py")
        at.run()
        jobs = at.dataframe[0].value
        assert jobs[["user", "job", "state"]].values.tolist() == [
            ["ann", "pretrain", "running"], ["bob", "bob's <b>sleep</b>", "queued"]]
        at.selectbox(key="admin_cancel_pick").select_index(1).run()    # bob's, after ann's
        at.button(key="admin_cancel").click().run()
        assert not at.exception, at.exception
        assert bob.run(run_id).status == "cancelled"
        assert "Cancelled bob" in unescaped(at.success[0].value)
    assert ("job_cancelled", "bob", "root") in [
        (e["event"], e["user"], e.get("by")) for e in audit.read(workspace_dir)]


def test_local_mode_ignores_user_in_the_url(workspace_dir, monkeypatch):
    monkeypatch.delenv("GEX_AUTH", raising=False)
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["user"] = "bob"
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Overview"
    assert unescaped(at.sidebar.caption[0].value) == (
        "Workspace **default** · local mode, no sign-in")
    assert not (workspace_dir / "bob").exists()


@pytest.mark.parametrize(("env", "message"), [
    ({"GEX_AUTH": "proxy", "GEX_AUTH_HEADER": "X-Forwarded-Email"}, "must listen on loopback"),
    ({"GEX_AUTH": "proxy"}, "needs GEX_AUTH_HEADER"),
    ({"GEX_AUTH": "oidc"}, "needs an [auth] section"),
    ({"GEX_AUTH": "ldap"}, "is not a sign-in mode"),
])
def test_misconfigured_modes_refuse_to_serve(workspace_dir, monkeypatch, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert message in at.error[0].value
    assert not at.metric and not (workspace_dir / "default").exists()


def test_oidc_mode_offers_the_providers_sign_in(workspace_dir, monkeypatch):
    monkeypatch.setenv("GEX_AUTH", "oidc")
    monkeypatch.setenv("GEX_OIDC_NAME", "Lab ID")
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback",
                          "cookie_secret": "x" * 32, "client_id": "c", "client_secret": "s",
                          "server_metadata_url": "http://127.0.0.1:9/.well-known/openid"}
    at.run()
    assert not at.exception, at.exception
    assert [b.label for b in at.button] == ["Sign in with Lab ID"]
    assert not at.metric
