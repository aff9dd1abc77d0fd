"""Streamlit helpers shared by the pages (widgets and layout only; computations live in
`gexcore.explore`). Kept out of `views/`, which holds pages only."""
