"""GenAI Playground: the entry point. Declares the pages and renders the navigation.

`st.navigation` turns off automatic discovery of pages/, so every page is listed here.
"""

from __future__ import annotations

import streamlit as st

from pages import ui

st.set_page_config(page_title="GenAI Playground", page_icon=":material/science:", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/menu_book:"),
    st.Page("pages/train.py", title="Train", icon=":material/fitness_center:"),
    st.Page("pages/explore.py", title="Explore", icon=":material/travel_explore:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/monitoring:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/target:"),
    st.Page("pages/chat.py", title="Chat", icon=":material/chat:"),
]
# .streamlit/config.toml hides the navigation Streamlit would build from pages/ on a fresh server's first paint;
# the one declared here is shown.
st.set_option("client.showSidebarNavigation", True)
page = st.navigation(pages)
ui.narrow_screen_style()
ui.presenter_sidebar()
page.run()
