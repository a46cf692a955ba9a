"""The dashboard on a real pretrained backbone (the offline DINOv2-S/14) and real photos: maps on the
uploaded picture, and notes instead of any number a classifier would have given."""

from __future__ import annotations

from typing import Any

import pytest

from frontend import ids
from tests.browser.live import LiveStack, screenshot
from tests.browser.plotly_page import figure, wait_graph
from tests.utils import photos

pytestmark = [pytest.mark.browser, pytest.mark.slow]
REAL = "imgfocus:dinov2-s"


@pytest.fixture(scope="module")
def real_jobs(live_stack: LiveStack) -> dict[str, str]:
    """A finished Eigen-CAM job and a head-importance job of the real backbone on uploaded photos."""
    uploads = [live_stack.upload(f"{n}.png", photos.png(photos.load(n))) for n in ("coffee", "rocket")]
    jobs = {
        "cam": live_stack.submit(
            "eigencam", {"images": uploads[:1]}, {"sanity_images": 1, "faithfulness_steps": 2}, model=REAL
        ),
        "hi": live_stack.submit("head-importance", {"images": uploads}, {"batch_size": 2}, model=REAL),
    }
    for job_id in jobs.values():
        live_stack.wait(job_id, timeout=900)
    return jobs


def test_cam_page_of_a_backbone_has_the_no_classifier_note_and_no_top5(page: Any, real_jobs: dict[str, str]):
    page.goto(f"/cam?job={real_jobs['cam']}")
    wait_graph(page, ids.CAM_OVERLAY, timeout_s=120)
    note = page.locator(f"#{ids.CAM_NO_CLASSIFIER}")
    note.wait_for(state="visible")
    assert "No classifier" in note.inner_text()
    assert not page.locator(f"#{ids.CAM_TOP5}").is_visible()
    traces = figure(page, ids.CAM_OVERLAY)["data"]
    assert "heatmap" in [trace["type"] for trace in traces]
    screenshot(page, "cam-real", for_docs=True)


def test_heads_page_of_a_backbone_shows_task_free_metrics_with_a_note(page: Any, real_jobs: dict[str, str]):
    page.goto(f"/heads?hi={real_jobs['hi']}")
    note = page.locator(f"#{ids.HEADS_NO_CLASSIFIER}")
    note.wait_for(state="visible", timeout=120_000)
    assert "No classifier" in note.inner_text() and "backbone" in note.inner_text()
    wait_graph(page, ids.HEADS_IMPORTANCE, timeout_s=120)
    heatmap = figure(page, ids.HEADS_IMPORTANCE)
    title = (
        str(heatmap["layout"].get("title", {}).get("text", ""))
        + page.locator(f"#{ids.HEADS_METRIC}").inner_text()
    )
    assert "accuracy" not in title.lower(), title
    assert "CLS embedding change" in title, title
    screenshot(page, "heads-real")
