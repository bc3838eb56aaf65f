"""GenAI Playground: the entry point. Declares the pages and renders the navigation.

`st.navigation` turns off automatic discovery of pages/, so every page is listed here.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="GenAI Playground", page_icon="🧪", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/data.py", title="Data", icon="📚"),
    st.Page("pages/train.py", title="Train", icon="🏋️"),
    st.Page("pages/runs.py", title="Runs", icon="📈"),
    st.Page("pages/evaluate.py", title="Evaluate", icon="🎯"),
    st.Page("pages/chat.py", title="Chat", icon="💬"),
]
st.navigation(pages).run()
