"""Streamlit helpers shared by the pages (widgets and layout only; computations live in
`gexcore.explore`). Kept out of `pages/`, where Streamlit lists every file as a page."""
