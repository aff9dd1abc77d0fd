"""GexScope dashboard: sign-in, navigation, workspace and sidebar job status; pages hold the
rest."""

import streamlit as st

from ui.auth import gate, identity_sidebar, sign_in
from ui.common import cohort_picker, current_workspace, job_sidebar

st.set_page_config(page_title="GexScope", page_icon=":material/genetics:", layout="wide")
identity = gate()                       # None until someone signs in

PAGES = [
    st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("views/data.py", title="Data", icon=":material/table_view:"),
    st.Page("views/train.py", title="Train", icon=":material/model_training:"),
    st.Page("views/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
    st.Page("views/predictions.py", title="Predictions", icon=":material/target:"),
    st.Page("views/importance.py", title="Gene importance", icon=":material/bar_chart:"),
    st.Page("views/survival.py", title="Survival", icon=":material/monitor_heart:"),
]
if identity is None or identity.admin:  # signed out, no page runs: the list only keeps the URL
    PAGES.append(st.Page("views/admin.py", title="Admin", icon=":material/shield_person:"))
navigation = st.navigation(PAGES, position="sidebar" if identity else "hidden")
if identity is None:
    sign_in()                           # the sign-in form instead of the page; stops the run
with st.sidebar:
    st.markdown("**GexScope**  \nself-supervised learning on bulk expression")
    identity_sidebar(identity)
    ws = current_workspace()
    cohort_picker(ws)
    job_sidebar(ws)
navigation.run()
