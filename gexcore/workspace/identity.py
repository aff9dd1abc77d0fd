"""Who is using the app: the sign-in mode (`GEX_AUTH`), the signed-in `Identity`, and the
mapping from an identity provider's claim or a proxy header to a safe workspace name.

```
GEX_AUTH=none       one local user, workspace "default"; the server binds to 127.0.0.1
GEX_AUTH=password   built-in accounts (gexcore.workspace.accounts, `gex user add NAME`)
GEX_AUTH=oidc       Streamlit's st.login() against the lab's identity provider ([auth] secrets)
GEX_AUTH=proxy      a trusted reverse proxy's header (GEX_AUTH_HEADER, e.g. X-Forwarded-Email);
                    only while the app listens on loopback
```
No Streamlit here: the dashboard (`ui/auth.py`) reads `st.user` / `st.context.headers` and calls
these functions with plain dicts.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from gexcore.errors import GexError

__all__ = [
    "LOCAL",
    "AuthMode",
    "ConfigError",
    "Identity",
    "admins",
    "auth_mode",
    "check_server",
    "default_base",
    "from_claims",
    "from_headers",
    "is_loopback",
    "session_hours",
    "workspace_name",
]

AuthMode = Literal["none", "password", "oidc", "proxy"]
_ROOT = Path(__file__).resolve().parents[2]
_SLUG = re.compile(r"[^a-z0-9]+")
_MAX_CLAIM = 320                                   # an e-mail address's longest legal form


class ConfigError(GexError, RuntimeError):
    """The server is configured in a way that would expose users' data; the message says how to
    fix it."""


@dataclass(frozen=True)
class Identity:
    """The signed-in user: `user` names their workspace (a `check_name`-safe string), `admin`
    lists the admin page, `via` is the sign-in mode, `label` is what the sidebar shows."""

    user: str
    admin: bool = False
    via: AuthMode = "none"
    label: str = ""


LOCAL = Identity("default", admin=True, via="none", label="local mode, no sign-in")


def default_base() -> Path:
    """Where workspaces live: $GEX_WORKSPACE, else ./workspace beside app.py."""
    return Path(os.environ.get("GEX_WORKSPACE", _ROOT / "workspace"))


def auth_mode(env: Mapping[str, str] | None = None) -> AuthMode:
    """`GEX_AUTH` (default "none"); anything else than the four modes is refused."""
    value = (os.environ if env is None else env).get("GEX_AUTH", "none").strip().lower() or "none"
    if value not in get_args(AuthMode):
        raise ConfigError(f"GEX_AUTH={value!r} is not a sign-in mode; use one of "
                          f"{', '.join(get_args(AuthMode))}.")
    return value  # type: ignore[return-value]


def session_hours(env: Mapping[str, str] | None = None) -> float:
    """`GEX_SESSION_HOURS` (default 12): how long a sign-in lasts."""
    raw = (os.environ if env is None else env).get("GEX_SESSION_HOURS", "12")
    try:
        hours = float(raw)
    except ValueError:
        raise ConfigError(f"GEX_SESSION_HOURS={raw!r} is not a number of hours.") from None
    if not hours > 0:
        raise ConfigError(f"GEX_SESSION_HOURS={raw!r} must be more than 0.")
    return hours


def admins(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """`GEX_ADMINS`: comma-separated e-mails / claims (oidc, proxy) that see the admin page;
    password accounts carry their own admin flag (`gex user add NAME --admin`)."""
    raw = (os.environ if env is None else env).get("GEX_ADMINS", "")
    return frozenset(a.strip().lower() for a in raw.split(",") if a.strip())


def workspace_name(claim: str) -> str:
    """A stable, collision-free workspace name for an identity claim: a readable slug and 10 hex
    of the claim's SHA-256 (`Alice.Smith@lab.org` -> `alice-smith-lab-org-5d41c0a3e9`).
    E-mails compare case-insensitively, so the claim is lower-cased first; the slug never holds
    a dot, so no name can clash with a file beside the workspaces or a password account name."""
    key = claim.strip().lower()
    if not key or len(key) > _MAX_CLAIM or any(ord(c) < 32 for c in key):
        raise ValueError(f"identity claim {claim[:40]!r} is empty, too long or has control "
                         "characters.")
    slug = _SLUG.sub("-", key).strip("-")[:40].strip("-") or "user"
    return f"{slug}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def from_claims(claims: Mapping[str, object], *, claim: str = "email",
                admin_ids: frozenset[str] = frozenset()) -> Identity | None:
    """The identity in an OIDC provider's claims (`st.user`): `claim` (default "email"), else
    "sub"; None when neither is there. `via` is "oidc"."""
    value = claims.get(claim) or claims.get("sub")
    if not isinstance(value, str) or not value.strip():
        return None
    label = value.strip()
    user = workspace_name(label)
    return Identity(user, admin=bool({label.lower(), user} & admin_ids), via="oidc", label=label)


def from_headers(headers: Mapping[str, str], header: str, *,
                 admin_ids: frozenset[str] = frozenset()) -> Identity | None:
    """The identity a trusted proxy put in `header` (looked up case-insensitively); None when the
    header is absent or empty. Call only when `check_server` accepted proxy mode."""
    wanted = header.strip().lower()
    value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    if not isinstance(value, str) or not value.strip():
        return None
    label = value.strip()
    try:
        user = workspace_name(label)
    except ValueError:
        return None
    return Identity(user, admin=bool({label.lower(), user} & admin_ids), via="proxy", label=label)


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"; False for "" / None (all interfaces)."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_server(mode: AuthMode, address: str | None,
                 env: Mapping[str, str] | None = None) -> None:
    """Refuse settings that would let anyone read anyone's data: proxy mode needs
    `GEX_AUTH_HEADER` and a loopback address (else a client could send the header itself)."""
    env = os.environ if env is None else env
    if mode != "proxy":
        return
    if not env.get("GEX_AUTH_HEADER", "").strip():
        raise ConfigError("GEX_AUTH=proxy needs GEX_AUTH_HEADER, the header your proxy sets "
                          "(e.g. GEX_AUTH_HEADER=X-Forwarded-Email for oauth2-proxy).")
    if not is_loopback(address):
        raise ConfigError(f"GEX_AUTH=proxy trusts the {env['GEX_AUTH_HEADER']} header, so the "
                          f"app must listen on loopback only (--server.address 127.0.0.1), "
                          f"behind the proxy; it is set to listen on {address or 'all interfaces'}"
                          ". Refusing to serve.")


if __name__ == "__main__":                          # scripts/app.sh: `python -m ... ADDRESS`
    import sys

    try:
        check_server(auth_mode(), sys.argv[1] if len(sys.argv) > 1 else None)
        session_hours()
    except ConfigError as err:
        print(f"gexscope: {err}", file=sys.stderr)
        sys.exit(2)
