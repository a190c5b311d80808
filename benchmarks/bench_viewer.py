"""How big the viewer's pages are and how soon they become interactive, in headless
Chromium (Debian's, /usr/bin/chromium, through Playwright).

    python benchmarks/bench_viewer.py

Prints the size of the LeNet-5 page (the graph, its loss and backward graph, pictures of
every tensor) and, for it and a 3,000-op chain, the seconds from navigation to
`tgViewer.ready` (the first layout drawn) and how many boxes are drawn then; medians of 5
loads, each in a fresh page.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, models, trace

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def lenet5() -> tg.Viewer:
    model, init_model = models.get_model("lenet5")
    params = {k: Tensor(v.data, requires_grad=True) for k, v in
              init_model(np.random.default_rng(0)).items()}
    x = np.random.default_rng(1).standard_normal((2, 1, 28, 28)).astype(np.float32)
    with trace.tracing():
        loss = F.cross_entropy(model(params, x), np.array([3, 7]))
    return tg.view(loss, params=params, title="LeNet-5")


def chain(steps: int = 1000) -> tg.Viewer:
    rng = np.random.default_rng(3)
    w = Tensor(rng.standard_normal((4, 4)) * 0.3, requires_grad=True)
    b = Tensor(rng.standard_normal(4) * 0.1, requires_grad=True)
    x = Tensor(rng.standard_normal((2, 4)))
    for _ in range(steps):
        x = F.relu(x @ w + b)
    return tg.view(x.sum(), title="3,000-op chain")


def load(browser, path: Path) -> tuple[float, int]:
    page = browser.new_page(viewport={"width": 1300, "height": 850})
    start = time.perf_counter()
    page.goto(path.resolve().as_uri())
    page.wait_for_function("window.tgViewer && window.tgViewer.ready", timeout=60000)
    seconds = time.perf_counter() - start
    drawn = page.evaluate("tgViewer.visible().length")
    page.close()
    return seconds, drawn


def main() -> int:
    from playwright.sync_api import sync_playwright
    folder = Path(tempfile.mkdtemp())
    pages = {}
    for name, make in (("LeNet-5", lenet5), ("3,000-op chain", chain)):
        start = time.perf_counter()
        path = make().save(folder / f"{name[:5]}.html")
        pages[name] = (path, time.perf_counter() - start)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        print(f"{'page':<16} {'size':>9} {'written in':>11} {'ready in':>9} {'boxes drawn':>12}")
        for name, (path, written) in pages.items():
            loads = [load(browser, path) for _ in range(5)]
            ready = statistics.median(seconds for seconds, _ in loads)
            print(f"{name:<16} {path.stat().st_size / 1e6:>7.2f} MB {written:>9.2f} s "
                  f"{ready:>7.2f} s {loads[0][1]:>12}")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
