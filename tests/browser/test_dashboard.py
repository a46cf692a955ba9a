"""The dashboard in headless Chromium against the real stack (Redis, worker, API, frontend)."""

from __future__ import annotations

import io
import os
import statistics
from typing import Any

import pytest
from PIL import Image, ImageDraw

from frontend import ids
from tests.browser.live import DATASET, MODEL, SMALL_PARAMS, LiveStack, record_timing, screenshot
from tests.browser.plotly_page import (
    click_until,
    clipboard_text,
    figure,
    graph_selector,
    query_of,
    wait_drawn,
    wait_graph,
    wait_query,
)
from tests.utils.uploads import truncated_png
from vitscope.bench.head_clicks import pick, wait_selection

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TARGET_S = 2.0


def heads_url(jobs: dict[str, str], **extra: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in {**jobs, **extra}.items())
    return f"/heads?{query}"


def shape_image() -> bytes:
    """A PNG of a filled circle on grey, the kind of picture the demo model knows."""
    image = Image.new("RGB", (96, 96), (128, 128, 128))
    ImageDraw.Draw(image).ellipse((24, 24, 72, 72), fill=(220, 40, 40))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_every_page_loads(page: Any, overview_jobs: dict[str, str]) -> None:
    for path, title in (
        ("/", "Explore a Vision Transformer"),
        ("/head", "Head detail"),
        ("/cam", "Eigen-CAM"),
        ("/scanpath", "Scanpath"),
        (heads_url(overview_jobs), "Heads overview"),
    ):
        page.goto(path)
        page.wait_for_selector("h1")
        assert title in page.inner_text("h1")
        assert page.locator(".topbar .nav-link.active").count() == 1
    wait_drawn(page, 2 * len(overview_jobs) + 1)
    # the modebar's camera exports SVG once the format menu says so
    page.click(f"#{ids.EXPORT_FORMAT}")
    page.get_by_role("option", name="SVG").click()
    page.wait_for_function(
        "(sel) => document.querySelector(sel)._context.toImageButtonOptions.format === 'svg'",
        arg=graph_selector(ids.HEADS_IMPORTANCE),
    )
    page.click("#nav-home")
    page.wait_for_selector("#home-jobs")
    # the nav bar leads back to the overview just seen
    assert f"hi={overview_jobs['hi']}" in (page.get_attribute("#nav-heads", "href") or "")


def test_heads_overview_draws_fast_from_cached_results(
    context: Any, browser: Any, live_stack: LiveStack, overview_jobs: dict[str, str]
) -> None:
    url = heads_url(overview_jobs, layer=1, head=2)
    n_graphs = 7 if "pat" in overview_jobs else 5
    page = context.new_page()
    page.goto(url)  # the first visit warms the caches (results in the dashboard, scripts in the browser)
    wait_drawn(page, n_graphs)
    runs = []
    for _ in range(3):
        page.goto(url)
        wait_drawn(page, n_graphs)
        runs.append(page.evaluate("performance.now()") / 1000)  # since this navigation started
    fresh = browser.new_context(viewport={"width": 1440, "height": 1000}, base_url=live_stack.web_url)
    cold_page = fresh.new_page()
    cold_page.goto(url)
    wait_drawn(cold_page, n_graphs)
    cold = cold_page.evaluate("performance.now()") / 1000
    fresh.close()
    median = statistics.median(runs)
    print(
        f"\nheads overview, results cached: {median:.2f} s (runs {', '.join(f'{r:.2f}' for r in runs)}); "
        f"new browser profile: {cold:.2f} s; {n_graphs} graphs; target {TARGET_S} s"
    )
    record_timing(
        "heads_overview_cached",
        {
            "seconds": round(median, 3),
            "runs": [round(r, 3) for r in runs],
            "new_browser_profile_s": round(cold, 3),
            "graphs": n_graphs,
            "target_s": TARGET_S,
            "met": median <= TARGET_S,
            "model": MODEL,
            "dataset": DATASET,
        },
    )
    screenshot(page, "heads", for_docs=True)
    limit = TARGET_S if os.environ.get("VITSCOPE_STRICT_TIMING") else 3 * TARGET_S
    assert median <= limit


def test_clicking_a_head_selects_it_in_every_view(page: Any, overview_jobs: dict[str, str]) -> None:
    page.goto(heads_url(overview_jobs))
    wait_drawn(page, 2 * len(overview_jobs) + 1)
    heads = len(figure(page, ids.HEADS_IMPORTANCE)["data"][0]["z"][0])
    click_until(page, ids.HEADS_IMPORTANCE, 3, 2, layer="2", head="3")
    page.wait_for_function(
        f"() => document.querySelector('#{ids.HEADS_SELECTED_TEXT}').innerText === 'L2 H3'"
    )
    page.wait_for_function(
        "(sel) => (document.querySelector(sel).layout.title.text || '').includes('L2 H3')",
        arg=graph_selector(ids.HEADS_RINGS),
    )
    [outline] = figure(page, ids.HEADS_IMPORTANCE)["layout"]["shapes"]
    assert (outline["x0"], outline["y0"]) == (2.5, 1.5)
    ring = figure(page, ids.HEADS_PROB_AFTER)["data"][-1]
    assert ring["x"] == [2 * heads + 3]
    assert "L2 H3" in figure(page, ids.HEADS_ENTROPY_HIST)["layout"]["title"]["text"]
    # a click on another view selects there too
    entropy = figure(page, ids.HEADS_ENTROPY)["data"]
    point = entropy[0]  # layer 0's dots
    click_until(page, ids.HEADS_ENTROPY, point["x"][1], point["y"][1], layer="0", head="1")
    page.wait_for_function(
        "(sel) => document.querySelector(sel).getAttribute('href').includes('layer=0&head=1')",
        arg=f"#{ids.HEADS_DETAIL_LINK}",
    )


def test_copied_link_restores_the_same_view(
    page: Any, browser: Any, live_stack: LiveStack, overview_jobs: dict[str, str]
) -> None:
    page.goto(heads_url(overview_jobs, layer=1, head=4))
    wait_drawn(page, 2 * len(overview_jobs) + 1)
    page.click(f"#{ids.HEADS_METRIC}")
    page.get_by_role("option", name="Probability drop").click()
    wait_query(page, metric="prob_drop")
    page.click(f"#{ids.COPY_LINK}")
    page.wait_for_function("() => document.querySelector('#copied-url').innerText.startsWith('Copied')")
    link = clipboard_text(page)
    assert link == page.url
    other = browser.new_context(viewport={"width": 1440, "height": 1000})
    try:
        tab = other.new_page()
        tab.goto(link)
        wait_drawn(tab, 2 * len(overview_jobs) + 1)
        assert query_of(tab.url) == query_of(link)
        assert tab.inner_text(f"#{ids.HEADS_SELECTED_TEXT}") == "L1 H4"
        heatmap = figure(tab, ids.HEADS_IMPORTANCE)
        assert "Probability drop" in heatmap["layout"]["title"]["text"]
        assert (heatmap["layout"]["shapes"][0]["x0"], heatmap["layout"]["shapes"][0]["y0"]) == (3.5, 0.5)
    finally:
        other.close()


def test_head_clicks_read_stored_arrays_and_submit_no_dataset_wide_job(
    page: Any, browser: Any, live_stack: LiveStack, overview_jobs: dict[str, str]
) -> None:
    before = live_stack.computations()
    page.goto(heads_url(overview_jobs, layer=1, head=2))
    wait_drawn(page, 2 * len(overview_jobs) + 1)
    for layer, head in ((0, 1), (0, 3), (1, 0), (1, 2), (1, 3)):  # the overview: 5 heads, 2 layers
        click_until(page, ids.HEADS_IMPORTANCE, head, layer, layer=str(layer), head=str(head))
        page.wait_for_function(
            "([sel, head]) => (document.querySelector(sel).layout.title.text || '').includes(head)",
            arg=[graph_selector(ids.HEADS_RINGS), f"L{layer} H{head}"],
        )
    page.click(f"#{ids.HEADS_DETAIL_LINK}")
    page.wait_for_url("**/head?**")
    wait_selection(page, "L1 H3 · image #0", 300)
    for head in (0, 1, 2, 3, 1):  # the detail page: 5 heads, 2 layers, 3 query patches
        pick(page, ids.HEAD_HEAD, head, f"L1 H{head} · image #0", 300)
    pick(page, ids.HEAD_LAYER, 0, "L0 H1 · image #0", 300)
    heat = next(t for t in figure(page, ids.HEAD_OVERLAY)["data"] if t["type"] == "heatmap")
    width = len(heat["z"][0])
    for col, row in ((3, 2), (0, 0), (width - 1, 1)):
        click_until(page, ids.HEAD_OVERLAY, col, row, query=str(row * width + col))
        page.wait_for_function(
            "([sel, cell]) => (document.querySelector(sel).layout.title.text || '').includes(cell)",
            arg=[graph_selector(ids.HEAD_OVERLAY), f"row {row}, col {col}"],
        )
    after = live_stack.computations()
    for kind in ("head-importance", "attention-profile", "attention-patterns"):
        assert after[kind] == before[kind], kind
    assert after["head-detail"] - before["head-detail"] <= 1  # one image: one forward serves every click
    assert after["head-pruning"] > before["head-pruning"]
    screenshot(page, "head", for_docs=True)
    # a collaborator's link shows the same view, with or without the light jobs' ids in it
    shown = {name: figure(page, name) for name in (ids.HEAD_OVERLAY, ids.HEAD_MATRIX, ids.HEAD_MODES)}
    query = query_of(page.url)
    bare = "&".join(f"{k}={v}" for k, v in query.items() if k not in ("hd", "hp"))
    other = browser.new_context(viewport={"width": 1440, "height": 1000}, base_url=live_stack.web_url)
    try:
        for link in (page.url, f"/head?{bare}"):
            tab = other.new_page()
            tab.goto(link)
            wait_selection(tab, "L0 H1 · image #0", 300)
            assert query_of(tab.url)["query"] == query["query"]
            assert {name: figure(tab, name) for name in shown} == shown
    finally:
        other.close()


def test_uploaded_image_gets_an_eigencam_overlay(page: Any) -> None:
    page.goto("/cam")
    page.set_input_files(
        f"#{ids.CAM_UPLOAD} input[type=file]",
        files=[{"name": "circle.png", "mimeType": "image/png", "buffer": shape_image()}],
    )
    page.wait_for_selector(f"#{ids.CAM_UPLOAD_NOTICE} .notice-ok")
    job = wait_query(page, image="0")["job"]
    assert job
    wait_graph(page, ids.CAM_OVERLAY, timeout_s=300)
    overlay = figure(page, ids.CAM_OVERLAY)
    assert [trace["type"] for trace in overlay["data"]] == ["image", "heatmap"]
    wait_graph(page, ids.CAM_TOP5)
    assert len(figure(page, ids.CAM_TOP5)["data"][0]["y"]) == 5
    screenshot(page, "cam", for_docs=True)
    page.goto(f"/cam?job={job}&layer=0&opacity=0.8&cmap=viridis")
    wait_graph(page, ids.CAM_OVERLAY)
    heat = figure(page, ids.CAM_OVERLAY)["data"][1]
    assert heat["opacity"] == 0.8 and "layer 0" in figure(page, ids.CAM_OVERLAY)["layout"]["title"]["text"]


def test_a_bad_upload_shows_the_api_error(page: Any) -> None:
    page.goto("/cam")
    page.set_input_files(
        f"#{ids.CAM_UPLOAD} input[type=file]",
        files=[{"name": "broken.png", "mimeType": "image/png", "buffer": truncated_png()}],
    )
    notice = page.wait_for_selector(f"#{ids.CAM_UPLOAD_NOTICE} .notice-error")
    text = notice.inner_text()
    assert "broken.png" in text and ("truncated" in text or "not an image" in text)
    assert "Traceback" not in page.content()
    assert "job" not in query_of(page.url)
    screenshot(page, "cam-bad-upload")


def test_an_unknown_job_offers_to_compute_it_or_go_home(page: Any) -> None:
    page.goto(f"/heads?hi={'f' * 24}&model={MODEL}&data={DATASET}")
    notice = page.wait_for_selector(".notice-warn")
    assert "Unknown job ffffffffffff" in notice.inner_text()
    assert page.locator("a:has-text('Go home')").count() == 1
    page.click(f"#{ids.HEADS.compute}")
    wait_query(page, model=MODEL)
    page.wait_for_function("() => !new URL(location.href).searchParams.get('hi').startsWith('ffff')")
    assert query_of(page.url)["hi"] != "f" * 24
    page.goto(f"/cam?job={'e' * 24}")
    page.wait_for_selector(".notice-warn")
    assert not page.is_visible(f"#{ids.CAM.compute}")  # nothing in this link says how to rebuild it


def test_home_launches_jobs_with_live_progress(page: Any) -> None:
    page.goto(f"/?model={MODEL}")
    page.fill(f"#{ids.HOME_SYNTH_N}", "4")
    page.fill(f"#{ids.HOME_SYNTH_SEED}", "21")
    for kind in ("head-importance", "attention-patterns"):
        page.locator(f"#{ids.HOME_KINDS} label:has-text('{kind}')").click()
    page.click(f"#{ids.HOME_LAUNCH}")
    page.wait_for_selector(f"#{ids.HOME_LAUNCH_NOTICE} .notice-ok")
    page.wait_for_function("() => document.querySelectorAll('#home-jobs .job-row').length === 2")
    screenshot(page, "home", for_docs=True)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#home-jobs .badge')].every(b => b.innerText === 'done')",
        timeout=300_000,
    )
    assert "synthscenes:4:seed=21" in query_of(page.url)["data"]
    page.click("#home-jobs a:has-text('Open →') >> nth=1")
    page.wait_for_url("**/cam?**")
    wait_graph(page, ids.CAM_OVERLAY, timeout_s=120)


def test_scanpath_target_follows_a_click(page: Any, live_stack: LiveStack) -> None:
    if not live_stack.has_kind("scanpath"):
        pytest.skip("this checkout's worker has no scanpath job yet")
    job = live_stack.submit("scanpath", {"dataset": "synthsearch:2:seed=3"}, {"samples": 20})
    live_stack.wait(job)
    page.goto(f"/scanpath?job={job}")
    wait_graph(page, ids.SCAN_FIGURE)
    handles = next(t for t in figure(page, ids.SCAN_FIGURE)["data"] if t.get("customdata") is not None)
    click_until(page, ids.SCAN_FIGURE, handles["x"][0], handles["y"][0], target="0")
    wait_graph(page, ids.SCAN_FIGURE, timeout_s=300)
    screenshot(page, "scanpath", for_docs=True)


def test_head_pages_show_the_analyses_own_values(
    page: Any, live_stack: LiveStack, overview_jobs: dict[str, str]
) -> None:
    """What the two pages draw equals what the analysis functions compute in this process."""
    import numpy as np

    from vitscope.contracts.jobs import Inputs
    from vitscope.contracts.kinds.head_detail import HeadDetailParams
    from vitscope.contracts.kinds.head_importance import HeadImportanceParams
    from vitscope.contracts.kinds.head_pruning import HeadPruningParams
    from vitscope.vit.analysis import head_detail, head_importance
    from vitscope.vit.data.inputs import open_source
    from vitscope.vit.models import load_model

    lm = load_model(MODEL)
    source = open_source(Inputs(dataset=DATASET), lambda _id: b"", lm.labels)
    image, layer, head, query = 2, 1, 3, 5
    page.goto(heads_url(overview_jobs, layer=layer, head=head, image=image))
    wait_drawn(page, 2 * len(overview_jobs) + 1)
    importance = head_importance.run(lm, source, HeadImportanceParams(**SMALL_PARAMS["head-importance"]))
    line = figure(page, ids.HEADS_PROB_AFTER)["data"][0]["y"]
    np.testing.assert_allclose(line, importance.arrays["prob_after"][image].ravel(), atol=1e-5)

    page.goto(f"/head?layer={layer}&head={head}&image={image}&query={query}&model={MODEL}&data={DATASET}")
    wait_selection(page, f"L{layer} H{head} · image #{image}", 300)
    detail = head_detail.run(lm, source, HeadDetailParams(image=image))
    matrix = detail.arrays["attention"][layer, head].astype(np.float32)
    # float16 matrices: the worker's float32 sums (its own thread count) may round the other way
    ulp = {"rtol": 2**-10, "atol": 1e-7}
    np.testing.assert_allclose(figure(page, ids.HEAD_MATRIX)["data"][0]["z"], matrix, **ulp)
    overlay = next(t for t in figure(page, ids.HEAD_OVERLAY)["data"] if t["type"] == "heatmap")
    prefix = matrix.shape[0] - np.asarray(overlay["z"]).size
    np.testing.assert_allclose(np.ravel(overlay["z"]), matrix[prefix + query, prefix:], **ulp)
    pruning = head_pruning_values(lm, source, HeadPruningParams(image=image, layer=layer, head=head))
    np.testing.assert_allclose(figure(page, ids.HEAD_MODES)["data"][0]["y"], pruning, atol=1e-6)


def head_pruning_values(lm: Any, source: Any, params: Any) -> Any:
    """The value the modes graph draws per mode: the class probability, a backbone's CLS cosine."""
    from vitscope.vit.analysis import head_detail

    arrays = head_detail.run_pruning(lm, source, params).arrays
    return arrays["target_prob"] if "target_prob" in arrays else arrays["cls_cosine"]


def test_a_running_job_is_cancelled_from_its_progress_row(page: Any, live_stack: LiveStack) -> None:
    params = {"batch_size": 1, "baselines": False, "sanity_check": False, "faithfulness": False}
    inputs = {"dataset": "synthscenes:4000:seed=99"}  # minutes of work: surely running when clicked
    job_id = live_stack.submit("eigencam", inputs, params, model="random:vit-micro")
    try:
        page.goto(f"/cam?job={job_id}")
        page.locator(".job-row .job-cancel").click(timeout=60_000)
        # the worker stops at its next batch; on a loaded machine its first one may take a while
        page.wait_for_selector(".job-row .badge-cancelled", timeout=120_000)
        assert page.locator(".job-row .job-cancel").count() == 0
        with live_stack.http as http:
            assert http.get(f"/jobs/{job_id}").json()["status"] == "cancelled"
    finally:
        with live_stack.http as http:
            http.delete(f"/jobs/{job_id}")  # never leave the shared worker busy
