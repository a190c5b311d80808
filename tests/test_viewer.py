"""The viewer in a real browser (Debian's Chromium through Playwright): every op of a
LeNet-5 is on the page with its details and pictures, folding and search work, a planted
bug is the one failed op, a 3,000-op chain opens folded, the notebook's iframe shows the
same page, hostile names stay text, and no page makes a request or logs an error."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, models, trace

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)",
                allow_module_level=True)

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as driver:
        instance = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield instance
        instance.close()


class Page:
    """A page with every error, console error and outside request recorded."""

    def __init__(self, browser, url: str | None = None, html: str | None = None) -> None:
        self.page = browser.new_page(viewport={"width": 1300, "height": 850})
        self.problems: list[str] = []
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("console", lambda message: self.problems.append(
            f"console: {message.text}") if message.type == "error" else None)
        self.page.on("request", self._request)
        self.url = url
        if url:
            self.page.goto(url)
        else:
            self.page.set_content(html)

    def _request(self, request) -> None:
        if request.url != self.url and not request.url.startswith(("data:", "about:")):
            self.problems.append(f"request: {request.url}")

    def ready(self, frame=None) -> None:
        (frame or self.page).wait_for_function("window.tgViewer && window.tgViewer.ready",
                                               timeout=30000)

    def js(self, expression: str):
        return self.page.evaluate(expression)

    def close(self) -> None:
        self.page.close()
        assert not self.problems, self.problems


def open_page(browser, viewer, tmp_path: Path, name: str = "page.html") -> Page:
    path = viewer.save(tmp_path / name)
    page = Page(browser, url=path.resolve().as_uri())
    page.ready()
    return page


def lenet_page(tmp_path: Path):
    model, init_model = models.get_model("lenet5")
    params = {k: Tensor(v.data, requires_grad=True) for k, v in
              init_model(np.random.default_rng(0)).items()}
    x = np.random.default_rng(1).standard_normal((2, 1, 28, 28)).astype(np.float32)
    with trace.tracing():
        loss = F.cross_entropy(model(params, x), np.array([3, 7]))
    return loss, tg.view(loss, params=params, title="LeNet-5")


def pixel_spread(uri: str) -> float:
    """The standard deviation of a PNG heatmap's pixels (0 for a blank picture)."""
    from matplotlib.image import imread
    return float(imread(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).std())


def test_a_lenet_page_holds_every_op_with_its_details_and_pictures(browser, tmp_path):
    loss, viewer = lenet_page(tmp_path)
    page = open_page(browser, viewer, tmp_path)
    forward = [n for n in page.js("tgViewer.nodes()") if n["side"] == "forward"]
    recorded = tg.autograd.topological_nodes([loss])
    assert sorted(n["op"] for n in forward if n["kind"] == "op") == \
        sorted(node.name for node in recorded)
    assert any(n["side"] == "backward" for n in page.js("tgViewer.nodes()"))
    conv = next(n for n in forward if n["op"] == "conv2d")
    page.page.click(f'[data-node-id="{conv["id"]}"]')
    details = page.page.inner_text("#tg-details")
    assert "(2, 1, 28, 28)" in details and "(2, 6, 28, 28)" in details
    assert "models.py:" in details and "235,200" in details   # the line, the MACs
    uris = page.js("[...document.querySelectorAll('#tg-details .tg-heatmaps img')]"
                   ".map(i => i.src)")
    assert len(uris) == 6 and all(pixel_spread(uri) > 0.01 for uri in uris)
    assert page.js(f"tgViewer.partners('{conv['id']}').length") >= 1
    page.close()


def test_the_backward_side_links_back_to_the_forward_op(browser, tmp_path):
    _, viewer = lenet_page(tmp_path)
    page = open_page(browser, viewer, tmp_path)
    nodes = page.js("tgViewer.nodes()")
    conv = next(n for n in nodes if n["op"] == "conv2d" and n["side"] == "forward")
    partner = page.js(f"tgViewer.partners('{conv['id']}')")[0]
    page.page.click("#tg-backward")
    assert partner in page.js("tgViewer.visible()")
    assert conv["id"] in page.js(f"tgViewer.partners('{partner}')")
    page.close()


def twelve_blocks():
    rng = np.random.default_rng(2)
    params = {f"conv{k}.weight": Tensor(rng.standard_normal((4, 4, 3, 3)) * 0.2,
                                        requires_grad=True) for k in range(12)}
    x = rng.standard_normal((1, 4, 8, 8))
    out = Tensor(x)
    for k in range(12):
        out = F.relu(F.conv2d(out, params[f"conv{k}.weight"], padding=1))
    return tg.view(F.max_pool2d(out, 2).sum(), params=params)   # a head of its own


def test_twelve_identical_blocks_fold_expand_and_are_found(browser, tmp_path):
    page = open_page(browser, twelve_blocks(), tmp_path)
    group = next(b for b in page.js("tgViewer.blocks()") if b["repeats"] == 12)
    expanded = len(page.js("tgViewer.visible()"))
    assert page.js(f"tgViewer.collapse('{group['id']}')")
    folded = page.js("tgViewer.visible()")
    assert group["id"] in folded and len(folded) < expanded - 20
    assert "\u00d712" in page.page.text_content(f'[data-node-id="{group["id"]}"]')
    page.page.click(f'[data-node-id="{group["id"]}"]')          # a click expands it
    assert len(page.js("tgViewer.visible()")) == expanded
    matches = page.js("tgViewer.search('conv2d')")
    assert len([m for m in matches if m.startswith("op")]) == 12
    page.close()


def test_the_check_overlay_marks_exactly_the_planted_bug(browser, tmp_path):
    from tinygrad_cnn.demo import demo_inputs, demo_loss
    params, images, labels = demo_inputs()
    keys = list(params)
    report = tg.locate_gradient_error(
        lambda *values: demo_loss(dict(zip(keys, values)), images, labels),
        [params[k] for k in keys])
    page = open_page(browser, tg.view(report.output, check=report), tmp_path)
    failed = [n for n in page.js("tgViewer.nodes()") if n["check"] == "failed"]
    assert [n["op"] for n in failed] == [report.culprit.node.name]
    drawn = page.page.query_selector_all('[data-check="failed"]')
    assert len(drawn) == 1
    page.page.check("#tg-failures")
    dimmed = page.js("document.querySelectorAll('.tg-node.tg-dim').length")
    assert dimmed == len(page.page.query_selector_all(".tg-op")) - 1
    page.close()


def chain(length: int = 1000) -> Tensor:
    rng = np.random.default_rng(3)
    w = Tensor(rng.standard_normal((4, 4)) * 0.3, requires_grad=True)
    b = Tensor(rng.standard_normal(4) * 0.1, requires_grad=True)
    x = Tensor(rng.standard_normal((2, 4)))
    for _ in range(length):            # 3 ops per step: matmul, add, relu
        x = F.relu(x @ w + b)
    return x.sum()


def test_a_3000_op_chain_opens_folded(browser, tmp_path):
    viewer = tg.view(chain())
    assert sum(n["kind"] == "op" and n["side"] == "forward" for n in viewer.data["nodes"]) \
        >= 3000
    page = open_page(browser, viewer, tmp_path)
    assert len(page.js("tgViewer.visible()")) <= 300
    assert any(b["repeats"] >= 900 and not b["expanded"] for b in page.js("tgViewer.blocks()"))
    page.close()


def test_the_notebook_iframe_shows_the_same_page(browser, tmp_path):
    _, viewer = lenet_page(tmp_path)
    page = Page(browser, html=f"<html><body>{viewer._repr_html_()}</body></html>")
    frame = page.page.frames[1]
    page.ready(frame)
    assert frame.evaluate("tgViewer.nodes().length") == len(viewer.data["nodes"])
    page.close()


HOSTILE = ["<script>alert(1)</script>", "</script><b>x</b>", "\"&amp;'<>", "{{data}}"]


def test_hostile_names_stay_text(browser, tmp_path):
    params = {name: Tensor(np.ones(3) * (k + 1), requires_grad=True)
              for k, name in enumerate(HOSTILE)}
    out = sum((p for p in params.values()), Tensor(np.zeros(3))).sum()
    page = open_page(browser, tg.view(out, params=params, title=HOSTILE[0]), tmp_path)
    names = {n["name"] for n in page.js("tgViewer.nodes()")}
    assert set(HOSTILE) <= names
    drawn = page.page.text_content("#tg-scene")
    assert all(name in drawn for name in HOSTILE)
    assert page.js("document.querySelectorAll('script').length") == 2
    assert page.page.title() == HOSTILE[0]
    page.close()


def test_the_cli_page(browser, tmp_path, capsys):
    from tinygrad_cnn.cli import main
    path = tmp_path / "lenet5.html"
    assert main(["view", "--model", "lenet5", "-o", str(path)]) == 0
    page = Page(browser, url=path.resolve().as_uri())
    page.ready()
    assert any(n["op"] == "max_pool2d" for n in page.js("tgViewer.nodes()"))
    page.close()


def test_hovering_an_op_names_its_backward_nodes(browser, tmp_path):
    _, viewer = lenet_page(tmp_path)
    page = open_page(browser, viewer, tmp_path)
    conv = next(n for n in page.js("tgViewer.nodes()")
                if n["op"] == "conv2d" and n["side"] == "forward")
    page.page.hover(f'[data-node-id="{conv["id"]}"]')
    status = page.page.inner_text("#tg-status")
    assert status.startswith("conv2d: ") and "conv2d_weight_grad" in status
    page.close()


# ----------------------------------------------------------------------------- drawn nets
def drawn_nets():
    """The ONNX fuzz's net generator (convs, pools, elementwise, norms, shape ops...)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "export_fuzz", Path(__file__).with_name("test_export_fuzz.py"))
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    return fuzz.nets()


def drawn_page(net, seed: int):
    """A drawn net's loss, its page, and the oracle: the recorded graph and gradients."""
    rng = np.random.default_rng(seed)
    params = {k: Tensor(v.astype(np.float64), requires_grad=True)
              for k, v in net.params.items()}
    x = rng.standard_normal((2,) + net.shape_in)
    loss = (net(params, Tensor(x, requires_grad=True)) ** 2).sum()   # always a graph
    return loss, params, tg.view(loss, params=params)


def check_page_against_graph(loss, params, viewer) -> None:
    import json
    import re

    from tinygrad_cnn.ops import spec_of
    data = viewer.data
    forward = [n for n in data["nodes"] if n["kind"] == "op" and n["side"] == "forward"]
    recorded = tg.autograd.topological_nodes([loss])
    assert sorted(n["op"] for n in forward) == sorted(node.name for node in recorded)
    by_output = {tuple(n["shape"]): n for n in forward}
    for node in recorded:
        entry = by_output[tuple(node.output.shape)]
        assert entry["shape"] == list(node.output.shape)
    assert sum(n["macs"] for n in forward) == sum(spec_of(node).macs_of(node)
                                                  for node in recorded)
    members = [m for block in data["blocks"] for m in block["members"]]
    assert sorted(members) == sorted(n["id"] for n in forward)     # a partition
    ops = {n["id"] for n in data["nodes"] if n["kind"] == "op"}   # (a composite's backward
    assert all(n["partner"] in ops for n in data["nodes"]         # links to inner nodes)
               if n["kind"] == "op" and n["side"] == "backward" and n["partner"])
    grads = tg.grad_of(loss, list(params.values()), allow_unused=True)
    by_name = {n["name"]: n for n in data["nodes"] if n["kind"] == "tensor"}
    for key, grad in zip(params, grads):
        if grad is not None:
            stats = by_name[key]["grad_stats"]
            assert np.isclose(stats["max"], grad.data.max(), rtol=1e-5, atol=1e-12)
            assert np.isclose(stats["min"], grad.data.min(), rtol=1e-5, atol=1e-12)
    payload = re.search(r'<script type="application/json" id="tg-data">(.*?)</script>',
                        viewer.html, re.S).group(1)
    assert json.loads(payload.replace("<\\/", "</")) == json.loads(json.dumps(data))


EXAMPLES = [pytest.param(25, id="ci"), pytest.param(300, id="slow", marks=pytest.mark.slow)]


@pytest.mark.parametrize("examples", EXAMPLES)
def test_drawn_nets_give_pages_that_hold_their_graph(examples):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    pytest.importorskip("onnx")

    @given(net=drawn_nets(), seed=st.integers(0, 2 ** 32 - 1))
    def prop(net, seed: int) -> None:
        check_page_against_graph(*drawn_page(net, seed))

    settings(max_examples=examples, deadline=None,
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])(prop)()


def test_drawn_nets_open_in_the_browser_without_errors(browser, tmp_path):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    pytest.importorskip("onnx")

    @given(net=drawn_nets(), seed=st.integers(0, 2 ** 32 - 1))
    def prop(net, seed: int) -> None:
        _, _, viewer = drawn_page(net, seed)
        page = open_page(browser, viewer, tmp_path)
        shown = page.js("tgViewer.nodes()")
        assert len(shown) == len(viewer.data["nodes"])
        visible = page.js("tgViewer.visible()")
        assert visible and set(visible) <= {n["id"] for n in shown} | \
            {b["id"] for b in viewer.data["blocks"]}
        page.close()

    settings(max_examples=6, deadline=None,
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                    HealthCheck.data_too_large])(prop)()


def test_the_report_of_a_localizing_gradcheck_colours_the_page():
    from tinygrad_cnn.demo import demo_inputs, demo_loss
    params, images, labels = demo_inputs()
    keys = list(params)
    with pytest.raises(tg.GradcheckError) as failure:
        tg.gradcheck(lambda *values: demo_loss(dict(zip(keys, values)), images, labels),
                     [params[k] for k in keys], localize=True)
    page = tg.view(failure.value.report.output, check=failure.value.report)
    assert [n["op"] for n in page.data["nodes"] if n["check"] == "failed"] == ["leakyscale"]
