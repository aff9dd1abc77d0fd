"""Admin page (listed only for admins): the server's audit log and its built-in accounts."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from gexcore.workspace import audit
from gexcore.workspace.accounts import ACCOUNTS_FILE, Accounts
from gexcore.workspace.audit import AUDIT_FILE
from ui.auth import current_identity
from ui.common import esc, workspace_base

st.title("Admin")
if not current_identity().admin:                # never listed for others; a guard all the same
    st.error("This page is for admins.")
    st.stop()
base = workspace_base()

st.subheader("Audit log")
st.caption(f"Sign-ins, failed sign-ins, sign-outs and account changes, newest first, from "
           f"`{esc(base / AUDIT_FILE)}` (one JSON object a line).")
events = pd.DataFrame(audit.read(base, limit=2000))
if events.empty:
    st.info("No events yet.")
else:
    cells = st.columns([2, 2, 1])
    kinds = cells[0].multiselect("Events", sorted(events["event"].unique()), key="audit_events")
    who = cells[1].text_input("User contains", key="audit_user").strip().lower()
    shown = events.iloc[::-1]
    if kinds:
        shown = shown[shown["event"].isin(kinds)]
    if who:
        shown = shown[shown["user"].astype(str).str.lower().str.contains(who, regex=False)]
    cells[2].metric("Events", f"{len(shown):,}")
    st.dataframe(shown, hide_index=True, height=420)
    if (path := base / AUDIT_FILE).exists():
        st.download_button("Download audit.log", path.read_bytes(), file_name=AUDIT_FILE,
                           mime="application/x-ndjson", icon=":material/download:")

st.subheader("Accounts")
if (base / ACCOUNTS_FILE).exists():
    rows = [{"user": a.name, "admin": a.admin,
             "created": pd.Timestamp(a.created, unit="s").strftime("%Y-%m-%d %H:%M"),
             "password set": pd.Timestamp(a.changed, unit="s").strftime("%Y-%m-%d %H:%M")}
            for a in Accounts(base).list()]
    st.dataframe(pd.DataFrame(rows, columns=["user", "admin", "created", "password set"]),
                 hide_index=True)
else:
    st.info("No built-in accounts (GEX_AUTH=password uses them).")
st.caption("Manage accounts on the server: `gex user add NAME [--admin]`, `gex user passwd NAME`, "
           "`gex user remove NAME`, `gex user list`.")
