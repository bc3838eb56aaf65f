"""A benchmark's plotly HTML as a PNG for the docs, drawn by the Debian chromium through Playwright.

    python benchmarks/html_to_png.py /tmp/swbench/best_so_far.html assets/screenshots/sweep_best_so_far.png

(plotly's own image export needs kaleido, which this project does not install.)
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = Path("/usr/bin/chromium")


def main(html: str, png: str, width: int = 920, height: int = 520) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(Path(html).resolve().as_uri())
        page.wait_for_selector(".main-svg")
        page.screenshot(path=png)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
