"""GexScope dashboard: navigation, workspace and sidebar job status only; pages hold the rest."""

import streamlit as st

from ui.common import cohort_picker, current_workspace, esc, job_sidebar

st.set_page_config(page_title="GexScope", page_icon=":material/genetics:", layout="wide")

PAGES = [
    st.Page("pages/data.py", title="Data", icon=":material/table_view:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
    st.Page("pages/predictions.py", title="Predictions", icon=":material/target:"),
    st.Page("pages/importance.py", title="Gene importance", icon=":material/bar_chart:"),
    st.Page("pages/survival.py", title="Survival", icon=":material/monitor_heart:"),
]
navigation = st.navigation(PAGES)
with st.sidebar:
    st.markdown("**GexScope**  \nself-supervised learning on bulk expression")
    ws = current_workspace()
    st.caption(f"Workspace **{esc(ws.user)}** (another: add `?user=NAME` to the address)")
    cohort_picker(ws)
    job_sidebar(ws)
navigation.run()
