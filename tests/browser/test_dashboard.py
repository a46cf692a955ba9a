"""The dashboard in headless Chromium against the real stack (Redis, worker, API, frontend)."""

from __future__ import annotations

import io
import os
import statistics
from typing import Any

import pytest
from PIL import Image, ImageDraw

from frontend import ids
from tests.browser.live import DATASET, MODEL, LiveStack, record_timing, screenshot
from tests.browser.plotly_page import (
    click_data,
    clipboard_text,
    figure,
    graph_selector,
    query_of,
    wait_drawn,
    wait_graph,
    wait_query,
)
from tests.utils.uploads import truncated_png

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
    click_data(page, ids.HEADS_IMPORTANCE, 3, 2)
    wait_query(page, layer="2", head="3")
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
    click_data(page, ids.HEADS_ENTROPY, point["x"][1], point["y"][1])
    wait_query(page, layer="0", head="1")
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


def test_head_detail_follows_the_selection_and_the_query_patch(
    page: Any, overview_jobs: dict[str, str]
) -> None:
    if "pat" not in overview_jobs:
        pytest.skip("this checkout's worker has no attention-patterns analysis yet")
    page.goto(heads_url(overview_jobs, layer=1, head=2))
    wait_drawn(page, 7)
    page.click(f"#{ids.HEADS_DETAIL_LINK}")
    page.wait_for_url("**/head?**")
    # the page points `pat` at a job computed for this head (the overview's holds head 0 of layer 0)
    page.wait_for_function(
        "(base) => { const q = new URL(location.href).searchParams;"
        " return q.get('layer') === '1' && q.get('pat') && q.get('pat') !== base; }",
        arg=overview_jobs["pat"],
    )
    wait_graph(page, ids.HEAD_OVERLAY, timeout_s=300)
    wait_graph(page, ids.HEAD_MODES, timeout_s=300)
    heat = next(t for t in figure(page, ids.HEAD_OVERLAY)["data"] if t["type"] == "heatmap")
    width = len(heat["z"][0])
    click_data(page, ids.HEAD_OVERLAY, 3, 2)
    wait_query(page, query=str(2 * width + 3))
    page.wait_for_function(
        "(sel) => (document.querySelector(sel).layout.title.text || '').includes('row 2, col 3')",
        arg=graph_selector(ids.HEAD_OVERLAY),
    )
    screenshot(page, "head", for_docs=True)


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
    click_data(page, ids.SCAN_FIGURE, handles["x"][0], handles["y"][0])
    wait_query(page, target="0")
    wait_graph(page, ids.SCAN_FIGURE, timeout_s=300)
    screenshot(page, "scanpath", for_docs=True)
