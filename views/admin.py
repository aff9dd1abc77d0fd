"""Admin page (listed only for admins): every user's jobs (cancel any), the server's audit log
and its built-in accounts. An admin reads no one's cohorts here: job names and states only."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from gexcore.workspace import all_jobs, audit, cancel_job
from gexcore.workspace.accounts import ACCOUNTS_FILE, Accounts
from gexcore.workspace.audit import AUDIT_FILE
from ui.auth import current_identity
from ui.common import esc, workspace_base

st.title("Admin")
admin = current_identity()
if not admin.admin:                             # never listed for others; a guard all the same
    st.error("This page is for admins.")
    st.stop()
base = workspace_base()


def _when(seconds: float | None) -> str:
    return "" if seconds is None else pd.Timestamp(seconds, unit="s").strftime("%Y-%m-%d %H:%M")


st.subheader("Jobs")
jobs = all_jobs(base)
active = [e for e in jobs if e.active]
st.caption(f"The server's one queue, every user's jobs, oldest first: {len(active)} queued or "
           f"running, {len(jobs) - len(active)} ended.")
if not jobs:
    st.info("No jobs yet.")
else:
    recent = active + [e for e in reversed(jobs) if not e.active][:200]
    st.dataframe(pd.DataFrame(
        [{"user": e.user, "job": e.name or e.kind, "kind": e.kind, "from": e.origin,
          "state": e.state, "submitted": _when(e.submitted), "started": _when(e.started),
          "finished": _when(e.finished), "reason": e.reason} for e in recent]),
        hide_index=True)
    if active:
        by_seq = {e.seq: e for e in active}
        cells = st.columns([4, 1], vertical_alignment="bottom")
        seq = cells[0].selectbox("Cancel a job", list(by_seq),
                                 format_func=lambda s: by_seq[s].label, key="admin_cancel_pick")
        if cells[1].button("Cancel job", key="admin_cancel", icon=":material/cancel:"):
            picked = by_seq[seq]
            asked = cancel_job(base, picked.user, picked.run_id, by=admin.user)
            st.session_state["admin_cancelled"] = (
                f"Cancelled {esc(picked.label)}." if asked else
                f"{esc(picked.label)} had already ended.")
            st.rerun()
if note := st.session_state.pop("admin_cancelled", None):
    st.success(note)

st.subheader("Audit log")
st.caption(f"Sign-ins, failed sign-ins, sign-outs, account changes, shares, revocations and "
           f"job submissions and cancellations, newest first, from "
           f"{esc(base / AUDIT_FILE)} (one JSON object a line).")    # escapes show in code
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
