"""Sign-in in a real browser: built-in accounts in two browser contexts at once, and the OIDC
flow through a real identity provider (oidc-provider-mock) on loopback."""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from gexcore.data.simulate import SimulationConfig, simulate_cohort
from gexcore.workspace import audit, open_workspace
from gexcore.workspace.accounts import Accounts
from gexcore.workspace.identity import workspace_name
from gexcore.workspace.sharing import qualify
from tests.browser.conftest import _free_port, screenshot, streamlit_server

pytestmark = pytest.mark.browser

PAGES = ["Train", "Embeddings", "Predictions", "Gene importance", "Survival", "Data"]
PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-2"}


@pytest.fixture(scope="module")
def password_app(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """An app server with GEX_AUTH=password and two accounts (alice is an admin)."""
    base = tmp_path_factory.mktemp("password_ws")
    accounts = Accounts(base)
    accounts.add("alice", PASSWORDS["alice"], admin=True)
    accounts.add("bob", PASSWORDS["bob"])
    log = tmp_path_factory.mktemp("password_server") / "streamlit.log"
    with streamlit_server(base, log, env={"GEX_AUTH": "password"}) as url:
        yield url, base


@pytest.fixture(scope="module")
def oidc_app(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """An OIDC provider (oidc-provider-mock) and an app server signing in against it."""
    import werkzeug.serving
    with warnings.catch_warnings():                 # its Authlib import warns of httpx
        warnings.simplefilter("ignore")
        import oidc_provider_mock

    provider = werkzeug.serving.make_server("127.0.0.1", 0, oidc_provider_mock.app(),
                                            threaded=True)
    thread = threading.Thread(target=provider.serve_forever, daemon=True)
    thread.start()
    issuer = f"http://127.0.0.1:{provider.server_port}"
    port = _free_port()
    folder = tmp_path_factory.mktemp("oidc_server")
    secrets = folder / "secrets.toml"               # never the repo's .streamlit/secrets.toml
    secrets.write_text(f"""[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "browser-test-cookie-secret-0123456789"
client_id = "gexscope"
client_secret = "browser-test-client-secret"
server_metadata_url = "{issuer}/.well-known/openid-configuration"
""")
    base = tmp_path_factory.mktemp("oidc_ws")
    try:
        with streamlit_server(base, folder / "streamlit.log", port=port,
                              env={"GEX_AUTH": "oidc", "GEX_OIDC_NAME": "Lab ID"},
                              args=("--secrets.files", str(secrets))) as url:
            yield url, base
    finally:
        provider.shutdown()
        thread.join(5)


def _settled(page: Page) -> None:
    expect(page.locator("[data-testid=stApp][data-test-script-state=notRunning]")
           ).to_be_attached()


def _sign_in(page: Page, name: str, password: str) -> None:
    _settled(page)
    page.get_by_role("textbox", name="User name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _click_until(button, shown, *, tries: int = 4) -> None:
    """Click `button` until `shown` appears: on a loaded 2-core box Streamlit now and then
    drops a click that lands while the sidebar's run_every fragment is rerunning (the
    journeys' _click_until_rerun works around the same)."""
    for _ in range(tries):
        if button.count():
            button.click()
        try:
            expect(shown).to_be_visible(timeout=30_000)
            return
        except AssertionError:
            continue
    expect(shown).to_be_visible()


def _sidebar(page: Page):
    return page.get_by_test_id("stSidebar")


def _open(browser, url: str) -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)          # two test workers share two cores
    expect.set_options(timeout=120_000)
    page.goto(url)
    return page


def test_a_deep_link_on_a_fresh_server_still_asks_to_sign_in(browser, password_app):
    """A bookmark of the admin page, opened before any session ran: app.py's gate asks to sign
    in first, and a user who is no admin never gets the page (the app's default instead)."""
    url, _ = password_app
    page = _open(browser, f"{url}/admin")
    try:
        expect(page.get_by_role("textbox", name="Password")).to_be_visible(timeout=90_000)
        expect(page.get_by_role("heading", name="Audit log")).to_have_count(0)
        _sign_in(page, "bob", PASSWORDS["bob"])                    # bob is no admin
        expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
        expect(page.get_by_role("heading", name="Audit log")).to_have_count(0)
    finally:
        page.context.close()


def test_two_users_each_see_only_their_own_workspace(browser, password_app):
    url, base = password_app
    alice, bob = _open(browser, url), _open(browser, url)
    try:
        expect(alice.get_by_role("textbox", name="Password")).to_be_visible(timeout=90_000)
        screenshot(alice, "signin_form.png")
        _sign_in(alice, "alice", "not-her-password")
        expect(alice.get_by_text("Wrong user name or password.")).to_be_visible()
        # the form is cleared on submit: the password is never kept in the page
        expect(alice.get_by_role("textbox", name="Password")).to_have_value("")
        screenshot(alice, "signin_wrong_password.png")

        _sign_in(alice, "alice", PASSWORDS["alice"])
        expect(bob.get_by_role("textbox", name="Password")).to_be_visible(timeout=90_000)
        _sign_in(bob, "bob", PASSWORDS["bob"])
        for page, me, other in ((alice, "alice", "bob"), (bob, "bob", "alice")):
            expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible(
                timeout=90_000)
            expect(_sidebar(page)).to_contain_text(f"Signed in as {me}")
            expect(_sidebar(page)).not_to_contain_text(other)
        expect(_sidebar(alice).get_by_role("link", name="Admin")).to_be_visible()
        expect(_sidebar(bob).get_by_role("link", name="Admin")).to_have_count(0)
        screenshot(bob, "signin_bob_data.png")

        for title in PAGES:                 # st.navigation keeps the identity on every page
            _sidebar(alice).get_by_role("link", name=title).click()
            expect(alice.get_by_role("heading", name=title, exact=True).first).to_be_visible()
            expect(_sidebar(alice)).to_contain_text("Signed in as alice")
            assert "user=" not in alice.url
        _settled(alice)
        screenshot(alice, "signin_alice_pages.png")
        _sidebar(alice).get_by_role("link", name="Admin").click()
        expect(alice.get_by_role("heading", name="Audit log")).to_be_visible()
        expect(alice.get_by_test_id("stMetricValue")).not_to_have_text("0")   # a canvas grid
        screenshot(alice, "signin_admin_audit.png")

        _click_until(_sidebar(alice).get_by_role("button", name="Sign out"),
                     alice.get_by_text("You have signed out."))
        expect(alice.get_by_role("textbox", name="Password")).to_be_visible()
        expect(_sidebar(bob)).to_contain_text("Signed in as bob")   # bob's session goes on
    finally:
        alice.context.close()
        bob.context.close()
    assert {p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")
            } >= {"alice", "bob"}
    events = [(e["event"], e["user"]) for e in audit.read(base)]
    assert ("signin_failed", "alice") in events and ("signin", "bob") in events
    assert ("signout", "alice") in events
    assert not any(p in (base / "audit.log").read_text() for p in PASSWORDS.values())


def test_alice_shares_a_cohort_with_bob_read_only_then_revokes_it(browser, password_app):
    url, base = password_app
    cohort = open_workspace(base, "alice").add_cohort(simulate_cohort(SimulationConfig(
        n_samples=60, n_genes=40, n_cancer_types=3, seed=3)), "Alice tumours")
    alice = _open(browser, f"{url}/data?cohort={cohort}")      # a bookmark of her cohort
    bob = _open(browser, f"{url}/data?cohort={qualify('alice', cohort)}")
    try:
        _sign_in(alice, "alice", PASSWORDS["alice"])
        expect(alice.get_by_role("heading", name="Alice tumours")).to_be_visible(timeout=90_000)
        _sign_in(bob, "bob", PASSWORDS["bob"])             # not shared yet: bob gets the demo
        expect(bob.get_by_role("heading", name="Data", exact=True)).to_be_visible(
            timeout=90_000)
        expect(bob.get_by_role("heading", name="Alice tumours")).to_have_count(0)

        alice.get_by_text("Share this cohort").click()
        alice.get_by_role("textbox", name="User names (comma-separated)").fill("bob")
        alice.get_by_role("button", name="Share read-only").click()
        alice.get_by_text("Share this cohort (1)").click()      # unfold it again: who reads it
        expect(alice.get_by_role("button", name="Revoke")).to_be_visible()
        _settled(alice)
        screenshot(alice, "share_alice_owner.png")

        bob.goto(f"{url}/data?cohort={qualify('alice', cohort)}")    # the same bookmark again
        _sign_in(bob, "bob", PASSWORDS["bob"])
        expect(bob.get_by_role("heading", name="Alice tumours")).to_be_visible(timeout=90_000)
        expect(bob.get_by_text("Shared with you read-only")).to_be_visible()
        picker = _sidebar(bob).get_by_role("combobox", name="Cohort")
        expect(picker).to_have_value(re.compile(r"^Alice tumours .* · shared by alice$"))
        expect(bob.get_by_text("Share this cohort")).to_have_count(0)   # bob cannot re-share
        _settled(bob)
        screenshot(bob, "share_bob_reader.png")

        alice.get_by_role("button", name="Revoke").click()
        expect(alice.get_by_text("Share this cohort", exact=True)).to_be_visible()
        _sidebar(bob).get_by_role("link", name="Train").click()          # bob's next rerun
        expect(bob.get_by_role("heading", name="Train", exact=True)).to_be_visible()
        _settled(bob)
        expect(picker).not_to_have_value(re.compile("Alice tumours"))   # back on the demo
    finally:
        alice.context.close()
        bob.context.close()
    events = [(e["event"], e["user"], e.get("to")) for e in audit.read(base)]
    assert ("share", "alice", ["bob"]) in events and ("unshare", "alice", "bob") in events


@pytest.mark.filterwarnings("ignore::DeprecationWarning")      # the mock provider's Authlib
def test_oidc_sign_in_through_the_identity_provider(browser, oidc_app):
    url, base = oidc_app
    page = _open(browser, url)
    email = "carol@lab.example"
    try:
        button = page.get_by_role("button", name="Sign in with Lab ID")
        expect(button).to_be_visible(timeout=90_000)
        screenshot(page, "oidc_signin.png")
        button.click()
        page.get_by_placeholder("sub").fill(email)          # the provider's own login form
        screenshot(page, "oidc_provider_form.png")
        page.get_by_role("button", name="Authorize").click()

        expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible(
            timeout=90_000)
        expect(_sidebar(page)).to_contain_text(f"Signed in as {email}")
        expect(_sidebar(page)).to_contain_text(f"Workspace {workspace_name(email)}")
        _sidebar(page).get_by_role("link", name="Train").click()
        expect(page.get_by_role("heading", name="Train", exact=True)).to_be_visible()
        expect(_sidebar(page)).to_contain_text(f"Signed in as {email}")
        _settled(page)
        screenshot(page, "oidc_signed_in.png")

        end_session = page.get_by_role("button", name="End session")   # the provider's logout
        _click_until(_sidebar(page).get_by_role("button", name="Sign out"), end_session)
        end_session.click()
        expect(page.get_by_role("button", name="Sign in with Lab ID")).to_be_visible(
            timeout=90_000)
    finally:
        page.context.close()
    assert (base / workspace_name(email) / "workspace.sqlite").exists()
    events = [(e["event"], e["user"], e.get("via")) for e in audit.read(base)]
    assert ("signin", workspace_name(email), "oidc") in events
    assert ("signout", workspace_name(email), "oidc") in events
