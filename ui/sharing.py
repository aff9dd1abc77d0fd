"""The share panel: let named users or the whole lab read an own cohort or finished run, and
revoke it. The rules (who may share what, read-only access) live in `Workspace.share`."""

from __future__ import annotations

import streamlit as st

from gexcore.errors import GexError
from gexcore.workspace import Workspace
from gexcore.workspace.sharing import LAB, split_qualified
from ui.common import esc


def share_panel(ws: Workspace, kind: str, item: str, what: str) -> None:
    """An expander under an own item; nothing for an item someone else shared with `ws`."""
    if split_qualified(item) is not None:
        st.caption(f"Shared with you read-only: {esc(what)}.")
        return
    granted = ws.shares.granted(ws.user, kind, item)
    title = f"Share this {kind}" + (f" ({len(granted)})" if granted else "")
    with st.expander(title, icon=":material/share:"):
        with st.form(f"share_{kind}_{item}", border=False, clear_on_submit=True):
            names = st.text_input("User names (comma-separated)", key=f"share_users_{item}")
            lab = st.checkbox("Everyone on this server (the whole lab)", key=f"share_lab_{item}")
            if st.form_submit_button("Share read-only", icon=":material/share:"):
                grantees = [n.strip() for n in names.split(",") if n.strip()] + [LAB] * lab
                try:
                    ws.share(kind, item, grantees)
                except GexError as err:
                    st.error(esc(err))
                else:
                    st.rerun()
        if granted:
            st.caption(f"Can read this {kind}:")
        for grantee in granted:
            cells = st.columns([4, 1])
            cells[0].markdown("the whole lab" if grantee == LAB else esc(grantee))
            cells[1].button("Revoke", key=f"revoke_{kind}_{item}_{grantee}",
                            on_click=ws.unshare, args=(kind, item, grantee))
