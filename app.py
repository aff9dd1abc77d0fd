"""GexScope dashboard: navigation frame only; each page lives in pages/."""

import streamlit as st

st.set_page_config(page_title="GexScope", page_icon=":material/genetics:", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/data.py", title="Data", icon=":material/table_view:", default=True),
    ]
)
with st.sidebar:
    st.markdown("**GexScope**  \nself-supervised learning on bulk expression")
navigation.run()
