"""Screenshots of the viewer for docs/visualization.md and the README, taken with the same
headless Chromium the tests drive (Debian's /usr/bin/chromium, through Playwright).

    python docs/make_viewer_images.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def shoot(browser, page_path: Path, picture: str, actions: list[str]) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 860})
    page.goto(page_path.resolve().as_uri())
    page.wait_for_function("window.tgViewer && window.tgViewer.ready")
    for action in actions:
        page.evaluate(action)
    page.screenshot(path=str(IMAGES / picture))
    page.close()


def main() -> int:
    from playwright.sync_api import sync_playwright
    folder = Path(tempfile.mkdtemp())
    lenet, check = folder / "lenet5.html", folder / "check.html"
    command = [sys.executable, "-m", "tinygrad_cnn.cli"]
    subprocess.run(command + ["view", "--model", "lenet5", "-o", str(lenet)], check=True)
    subprocess.run(command + ["gradcheck", "--demo", "--graph", str(folder / "c.svg"),
                              "--html", str(check)], check=True, capture_output=True)
    first_conv = "tgViewer.select(tgViewer.nodes().find(n => n.op === 'conv2d').id)"
    failed = "tgViewer.select(tgViewer.nodes().find(n => n.check === 'failed').id)"
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        shoot(browser, lenet, "viewer_lenet5.png", [first_conv])
        shoot(browser, check, "viewer_check.png", [failed])
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
