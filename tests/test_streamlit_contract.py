"""The one private Streamlit detail the app leans on, checked without a browser so an upgrade fails loudly here.

The design fixes the page folder's name, `pages/`, which makes Streamlit 1.67 start a fresh server in its legacy
folder mode when the first request is a page URL (every file of pages/ in the sidebar, app.py's navigation
skipped). `pages/ui.py` clears `PagesManager.uses_pages_directory` and reruns, handing control back to
`st.navigation`. The browser test checks the behaviour end to end; this checks that the switch still exists
and still decides that mode, with no chromium needed.
"""

from __future__ import annotations

import inspect

from streamlit.runtime import pages_manager
from streamlit.runtime.scriptrunner import script_runner


def test_the_legacy_pages_flag_that_ui_clears_still_decides_the_mode() -> None:
    assert "uses_pages_directory" in vars(pages_manager.PagesManager), (
        "Streamlit no longer has PagesManager.uses_pages_directory: revisit pages/ui.py's _leave_legacy_pages_mode")
    assert "PagesManager.uses_pages_directory" in inspect.getsource(script_runner), (
        "Streamlit's script runner no longer reads the legacy pages flag: revisit pages/ui.py")
    from pages import ui

    before = pages_manager.PagesManager.uses_pages_directory
    pages_manager.PagesManager.uses_pages_directory = True  # as a fresh server whose first request is /train
    try:
        try:
            ui._leave_legacy_pages_mode()
        except Exception:  # its st.rerun() has no script run to restart here
            pass
        assert pages_manager.PagesManager.uses_pages_directory is False
    finally:
        pages_manager.PagesManager.uses_pages_directory = before
