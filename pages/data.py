"""Data page: pick a demo cohort or upload expression (+ clinical) files; see the validation report."""

import streamlit as st

from gexcore.data import list_demos
from gexcore.data.upload import read_uploaded
from gexcore.errors import GexError
from pages._ui import demo_cohort, show_report

st.title("Data")
source = st.radio("Cohort source", ["Demo cohort", "Upload files"], horizontal=True,
                  key="data_source")

if source == "Demo cohort":
    demos = {d.name: d for d in list_demos()}
    name = st.selectbox("Demo cohort", list(demos), key="demo_name",
                        format_func=lambda n: demos[n].label)
    st.caption(demos[name].description)
    show_report(demo_cohort(name))
else:
    expression = st.file_uploader(
        "Expression matrix (CSV/TSV/TXT, gzip, Parquet, h5ad, GCT, GEO series matrix)",
        key="upload_expression")
    clinical = st.file_uploader("Clinical table (optional: CSV/TSV, cBioPortal, Xena)",
                                key="upload_clinical")
    with st.expander("Reader options"):
        orientation = st.selectbox("Orientation", ["auto", "genes_by_samples", "samples_by_genes"])
        sample_column = st.text_input("Clinical id column (blank: detect)") or None
        time_column = st.text_input("Survival time column (blank: detect)") or None
        event_column = st.text_input("Survival event column (blank: detect)") or None
    if expression is None:
        st.info("Upload an expression file to see its validation report.")
    else:
        try:
            adata = read_uploaded(
                (expression.name, expression.getvalue()),
                (clinical.name, clinical.getvalue()) if clinical is not None else None,
                orientation=orientation, sample_column=sample_column,
                time_column=time_column, event_column=event_column)
        except GexError as err:
            st.error(str(err))
        else:
            show_report(adata)
