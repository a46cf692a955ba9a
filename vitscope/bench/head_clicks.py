"""`vitscope bench head-clicks`: how long a click on the head-detail page takes to draw, in a browser.

    vitscope up &                                   # or any running stack
    vitscope bench head-clicks --web http://127.0.0.1:8050 --model demo --images 3 --heads 5

Headless Chromium (Playwright, the system `chromium` by default) opens `/head` for the model and
dataset, then, per image, picks the image in the page's menu (the first head of a new image: one
forward for the image's attention and one pruning batch) and clicks through `--heads` other
heads, one of them in another layer (a head of an image already seen: the attention is read
from stored arrays, only the head's pruning batch runs). A click's time runs from the menu pick
to every graph of the page having drawn the new selection (each graph's title names layer, head
and image). Nothing else is submitted: the page needs no dataset-wide job. Prints one JSON object
with the median and every sample of both kinds of click. Run it against a quiet machine: a
worker busy with another job makes the clicks wait.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from vitscope.contracts.errors import UserError

GRAPHS = ("head-overlay", "head-matrix", "head-values", "head-bipartite", "head-modes")
"""The graphs a click redraws (the top-5 panel follows the modes graph and is hidden for a backbone)."""

TITLED = ("head-overlay", "head-modes")
"""The graphs whose titles name the selection: one per job the page reads (the matrix, histogram and
links are drawn by the same update as the overlay, the top-5 by the one of the modes)."""

DRAWN = """([names, titled, wanted]) => names.every(name => {
    const dom = JSON.stringify({name: name, type: "graph"});
    const g = document.querySelector(`[id='${dom}'] .js-plotly-plot`);
    if (!g || !g._fullData || !g._fullData.length) return false;
    const title = (g._fullLayout.title && g._fullLayout.title.text) || "";
    return !titled.includes(name) || title.endsWith(wanted);
})"""
"""True once every graph has data and the titled ones name the wanted selection."""


def register(sub: Any) -> None:
    """Add the `head-clicks` benchmark."""
    p = sub.add_parser(
        "head-clicks", help="click-to-drawn latency of the head-detail page in headless Chromium"
    )
    p.add_argument("--web", default="http://127.0.0.1:8050", help="the dashboard's base URL")
    p.add_argument("--model", default="demo", help="model spec")
    p.add_argument("--dataset", default="synthscenes:16:seed=7", help="dataset spec the images come from")
    p.add_argument("--images", type=int, default=3, help="new images to open (first-head clicks)")
    p.add_argument("--heads", type=int, default=5, help="head clicks per image after its first")
    p.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds one click may take")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Drive the page, print the JSON report; return 0."""
    if args.images < 1 or args.heads < 1:
        raise UserError("need --images >= 1 and --heads >= 1")
    if not Path(args.chromium).exists():
        raise UserError(
            f"no Chromium at {args.chromium}: install it (apt-get install chromium) or give --chromium"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            report = _clicks(page, args)
        finally:
            browser.close()
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


def _clicks(page: Any, args: argparse.Namespace) -> dict[str, Any]:
    query = {"model": args.model, "data": args.dataset, "layer": 0, "head": 0, "image": 0}
    page.goto(f"{args.web.rstrip('/')}/head?{urlencode(query, safe=':,=')}")
    wait_selection(
        page, "L0 H0 · image #0", args.timeout
    )  # the page's first load: scripts, model, first jobs
    layers, heads = _size(page, "head-layer"), _size(page, "head-head")
    first, seen = [], []
    layer, head = 0, 0
    for image in range(1, args.images + 1):
        first.append(pick(page, "head-image", image, f"L{layer} H{head} · image #{image}", args.timeout))
        for click in range(args.heads):
            if click == args.heads // 2 and layers > 1:  # one click in another layer
                layer = (layer + 1) % layers
                seen.append(
                    pick(page, "head-layer", layer, f"L{layer} H{head} · image #{image}", args.timeout)
                )
                continue
            head = (head + 1) % heads
            seen.append(pick(page, "head-head", head, f"L{layer} H{head} · image #{image}", args.timeout))
    return {
        "bench": "head-clicks",
        "model": args.model,
        "dataset": args.dataset,
        "layers": layers,
        "heads": heads,
        "first_head_of_new_image_s": _stats(first),
        "head_of_seen_image_s": _stats(seen),
    }


def _size(page: Any, menu: str) -> int:
    """How many options the menu `menu` offers (layers or heads of the model)."""
    page.click(f"#{menu}")
    count = int(page.locator(".Select-option, [role=option]").count())
    page.keyboard.press("Escape")
    return count


def pick(page: Any, menu: str, value: int, wanted: str, timeout_s: float) -> float:
    """Choose `value` in the menu `menu`; return the seconds until every graph shows `wanted`."""
    page.click(f"#{menu}")
    # image options read `#3` or `#3 circle`; layer and head options are the bare number
    name = re.compile(rf"^#{value}(\s|$)") if menu == "head-image" else re.compile(rf"^{value}$")
    option = page.get_by_role("option", name=name)
    start = time.perf_counter()
    option.first.click()
    wait_selection(page, wanted, timeout_s)
    return time.perf_counter() - start


def wait_selection(page: Any, wanted: str, timeout_s: float) -> None:
    page.wait_for_function(
        DRAWN, arg=[list(GRAPHS), list(TITLED), wanted], timeout=timeout_s * 1000, polling="raf"
    )


def _stats(samples: list[float]) -> dict[str, Any]:
    return {
        "median": round(statistics.median(samples), 3),
        "max": round(max(samples), 3),
        "samples": [round(s, 3) for s in samples],
    }
