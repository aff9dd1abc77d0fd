"""Sign-in for the dashboard: app.py calls `gate()` first for the signed-in `Identity` and,
when there is none, `sign_in()` (the form of the mode, `GEX_AUTH`) instead of running a page.

The identity lives in `st.session_state` (password mode) or Streamlit's signed identity cookie
(`st.user`, OIDC mode), or comes with every connection (proxy mode): never in the URL, so page
navigation keeps it and `?user=` means nothing. The rules are in `gexcore.workspace.identity`
and `gexcore.workspace.accounts`; this module holds the widgets.
"""

from __future__ import annotations

import os
import time
from functools import partial
from typing import NoReturn

import streamlit as st

from gexcore.errors import GexError
from gexcore.workspace import audit
from gexcore.workspace.accounts import Accounts, SignInError
from gexcore.workspace.identity import (
    LOCAL,
    AuthMode,
    ConfigError,
    Identity,
    admins,
    auth_mode,
    check_server,
    default_base,
    from_claims,
    from_headers,
    is_loopback,
    session_hours,
)

__all__ = ["current_identity", "gate", "identity_sidebar", "sign_in"]

_SIGNED_IN = "_gex_signed_in"      # session_state (password mode): {"user", "since"}
_AUDITED = "_gex_audited"          # session_state (oidc, proxy): the user whose sign-in we logged
_NOTE = "_gex_signin_note"         # session_state: why the last session ended


def gate() -> Identity | None:
    """The signed-in identity, or None (app.py then draws `sign_in()` in place of the page).
    A server whose settings must not serve shows why as its only page, and the run stops."""
    try:
        return _resolve()
    except ConfigError as err:
        _only_page(partial(_refuse, err), "GexScope")


def sign_in() -> NoReturn:
    """The mode's sign-in form (or the proxy's refusal) in place of the page; the run stops.
    app.py calls it after st.navigation, so the requested page (a deep link, or the page a user
    signed out on) stays the current one and opens once someone signs in."""
    _sign_in_page()
    st.stop()


def current_identity() -> Identity:
    """Who is signed in (LOCAL in local mode). Pages call it first, so a page run without one
    shows the sign-in form instead and the run stops (app.py's gate comes first anyway: the
    pages live in views/, where Streamlit never serves a file on its own)."""
    try:
        identity = _resolve()
    except ConfigError as err:
        _refuse(err)
        st.stop()
    if identity is None:
        _sign_in_page()
        st.stop()
    return identity


def _resolve() -> Identity | None:
    """The mode's identity, or None; ConfigError for settings that must not serve."""
    mode = auth_mode()
    check_server(mode, st.get_option("server.address"))
    session_hours()
    if mode == "none":
        return LOCAL
    st.set_option("client.showErrorDetails", "none")    # no tracebacks for a lab's users
    if mode == "password":
        return _password_identity()
    if mode == "oidc":
        if not _oidc_configured():
            raise ConfigError("GEX_AUTH=oidc needs an [auth] section in .streamlit/secrets.toml "
                              "(redirect_uri, cookie_secret, client_id, client_secret, "
                              "server_metadata_url); see README, 'Run it for your lab'.")
        return _oidc_identity()
    return _proxy_identity()


def identity_sidebar(identity: Identity) -> None:
    """The sidebar's identity line: who, which workspace, and a sign-out button."""
    if identity.via == "none":
        st.caption(f"Workspace **{_esc(identity.user)}** · {identity.label}")
        return
    st.caption(f"Signed in as **{_esc(identity.label)}**"
               + ("" if identity.label == identity.user else
                  f"  \nWorkspace **{_esc(identity.user)}**"))
    if identity.via == "proxy":
        if url := os.environ.get("GEX_SIGNOUT_URL", "/oauth2/sign_out"):
            st.link_button("Sign out", url, icon=":material/logout:")
        return
    st.button("Sign out", icon=":material/logout:", key="_gex_sign_out", on_click=_sign_out,
              args=(identity,))


# -- password mode -------------------------------------------------------------------------
@st.cache_resource
def _accounts(base: str) -> Accounts:
    return Accounts(base)


def _password_identity() -> Identity | None:
    signed = st.session_state.get(_SIGNED_IN)
    if not signed:
        return None
    account = _accounts(str(default_base())).session_account(signed["user"], signed["since"])
    if account is None:                 # expired, password changed or account removed
        del st.session_state[_SIGNED_IN]
        audit.append("signout", signed["user"], base=default_base(), via="password",
                     reason="session ended")
        st.session_state[_NOTE] = "Your session has ended; please sign in again."
        return None
    return Identity(account.name, admin=account.admin, via="password", label=account.name)


def _password_form() -> None:
    with st.form("_gex_signin", clear_on_submit=True, enter_to_submit=True):
        name = st.text_input("User name", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    try:
        account = _accounts(str(default_base())).sign_in(name, password, client=_client())
    except SignInError as err:
        st.error(str(err))
        return
    st.session_state[_SIGNED_IN] = {"user": account.name, "since": time.time()}
    st.session_state.pop(_NOTE, None)
    st.rerun()


def _client() -> str:
    """The client's address for throttling; behind a loopback reverse proxy, its X-Real-IP."""
    ip = st.context.ip_address
    if not isinstance(ip, str) or is_loopback(ip):     # None: a loopback connection
        forwarded = (st.context.headers.get("X-Real-IP") or "").strip()
        return forwarded[:64] if forwarded else "loopback"
    return ip


# -- OIDC mode (st.login / st.user) ----------------------------------------------------------
def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:
        return False


def _oidc_identity() -> Identity | None:
    if not st.user.get("is_logged_in"):
        return None
    issued = st.user.get("iat")
    if isinstance(issued, (int, float)) and time.time() - issued >= session_hours() * 3600:
        st.session_state[_NOTE] = "Your session has ended; please sign in again."
        return None                     # the sign-in page's button starts a fresh st.login()
    identity = from_claims(st.user, claim=os.environ.get("GEX_OIDC_CLAIM", "email"),
                           admin_ids=admins())
    if identity is None:
        raise ConfigError("The identity provider sent neither an e-mail nor a sub claim; ask "
                          "its admin to release the 'email' scope to this app.")
    _audit_once(identity)
    return identity


def _oidc_button() -> None:
    provider = os.environ.get("GEX_OIDC_PROVIDER") or None
    name = os.environ.get("GEX_OIDC_NAME", "your lab account")
    if st.button(f"Sign in with {name}", type="primary", icon=":material/login:"):
        st.login(provider)


# -- proxy mode (st.context.headers) ---------------------------------------------------------
def _proxy_identity() -> Identity | None:
    identity = from_headers(st.context.headers, os.environ["GEX_AUTH_HEADER"],
                            admin_ids=admins())
    if identity is not None:
        _audit_once(identity)
    return identity


# -- shared -----------------------------------------------------------------------------------
def _sign_in_page() -> None:
    mode: AuthMode = auth_mode()
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title("GexScope")
        st.caption("Self-supervised learning on bulk expression")
        if note := st.session_state.get(_NOTE):
            st.info(note)
        if mode == "password":
            _password_form()
        elif mode == "oidc":
            _oidc_button()
        else:
            header = os.environ.get("GEX_AUTH_HEADER", "")
            st.error(f"No identity came with this request (the {_esc(header)} header is "
                     "missing). Open GexScope through the lab's sign-in address.")


def _sign_out(identity: Identity) -> None:
    """The sign-out button's callback: it runs before the next script run, so that run (app.py
    or a page) already finds nobody signed in."""
    audit.append("signout", identity.user, base=default_base(), via=identity.via)
    for key in (_SIGNED_IN, _AUDITED):
        st.session_state.pop(key, None)
    st.session_state[_NOTE] = "You have signed out."
    if identity.via == "oidc":
        st.logout()                     # clears the identity cookie, then the provider's session


def _audit_once(identity: Identity) -> None:
    """Log an OIDC / proxy sign-in once per browser session (they happen outside the app)."""
    if st.session_state.get(_AUDITED) != identity.user:
        st.session_state[_AUDITED] = identity.user
        audit.append("signin", identity.user, base=default_base(), via=identity.via,
                     label=identity.label, client=_client())


def _only_page(body, title: str) -> NoReturn:
    """Run `body` as the app's single page, then stop: no page of the app is reachable."""
    st.navigation([st.Page(body, title=title, icon=":material/lock:", url_path="signin")],
                  position="hidden").run()
    st.stop()


def _refuse(err: GexError) -> None:
    st.title("GexScope")
    st.error(str(err))


def _esc(text: str) -> str:
    # ui.common imports this module at its top
    from ui.common import esc

    return esc(text)
