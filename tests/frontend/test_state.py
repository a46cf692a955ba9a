"""URL state: parse, serialize, and read user events, without a browser."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from frontend.state import (
    CamState,
    HeadsState,
    HeadState,
    JobState,
    ScanpathState,
    apply_box_edits,
    data_to_inputs,
    head_from_click,
    inputs_to_data,
    patch_from_click,
    patch_of,
    view_of,
    with_source,
)

HI, AP, PAT = "a" * 24, "b" * 24, "c" * 24
IMG = "d" * 64


def test_heads_state_round_trips_through_its_url():
    state = HeadsState(
        hi=HI,
        ap=AP,
        pat=PAT,
        layer=3,
        head=7,
        metric="prob_drop",
        image=12,
        q="cls",
        model="demo",
        data="synthscenes:64:seed=0",
    )
    again = HeadsState.from_search(state.search())
    assert again == state
    assert not again.problems


def test_search_keeps_specs_readable_and_orders_keys_stably():
    state = HeadsState(hi=HI, layer=1, head=2, model="random:vit-micro", data="synthscenes:8:seed=3")
    search = state.search()
    assert search.startswith(f"?hi={HI}&layer=1&head=2")
    assert "model=random:vit-micro" in search and "data=synthscenes:8:seed=3" in search
    assert "ap=" not in search  # absent jobs stay out of the link


def test_bad_values_fall_back_to_defaults_and_are_reported():
    state = HeadsState.from_query(
        {"hi": "not-a-job", "layer": "x", "head": "-3", "metric": "magic", "q": "both"}
    )
    assert (state.hi, state.layer, state.head, state.metric, state.q) == (
        None,
        0,
        0,
        "accuracy_drop",
        "patch",
    )
    assert len(state.problems) == 5
    assert any("magic" in p for p in state.problems)


def test_repeated_keys_take_the_last_value():
    assert HeadsState.from_query({"layer": ["1", "4"]}).layer == 4


def test_head_state_defaults_to_the_cls_query():
    state = HeadState.from_query({"pat": PAT, "layer": "2", "head": "5", "query": "17"})
    assert (state.layer, state.head, state.query, state.mode) == (2, 5, 17, 0)
    assert HeadState.from_query({}).query == -1
    assert HeadState.from_query({"query": "-5"}).query == -1  # below -1 is refused


def test_cam_state_clamps_opacity_and_checks_the_colormap():
    state = CamState.from_query({"job": HI, "opacity": "1.7", "cmap": "rainbow", "layer": "3"})
    assert (state.opacity, state.cmap, state.layer) == (1.0, "jet", 3)
    assert CamState.from_query({}).layer is None
    assert CamState.from_search(CamState(job=HI, opacity=0.35).search()).opacity == 0.35


def test_store_round_trip_drops_unknown_keys():
    state = ScanpathState(job=HI, image=2, target=5)
    assert ScanpathState.from_store({**state.to_store(), "junk": 1}) == state


def test_job_ids_names_only_the_jobs_present():
    assert HeadsState(hi=HI, pat=PAT).job_ids() == {"hi": HI, "pat": PAT}
    assert CamState(job=HI).job_ids() == {"job": HI}


@pytest.mark.parametrize(
    ("data", "inputs"),
    [
        ("synthscenes:64:seed=0", {"dataset": "synthscenes:64:seed=0"}),
        ("synthsearch:4:seed=1:layout=grid:6x14", {"dataset": "synthsearch:4:seed=1:layout=grid:6x14"}),
        (f"images:{IMG},{IMG}", {"images": [IMG, IMG]}),
        (f"zip:{IMG}", {"zip": IMG}),
    ],
)
def test_data_values_stand_for_job_inputs_both_ways(data, inputs):
    assert data_to_inputs(data) == inputs
    assert inputs_to_data(inputs) == data


@pytest.mark.parametrize("data", ["imagenet:5", "images:xyz", "zip:", "images:", "synthscenes:abc"])
def test_malformed_data_is_refused(data):
    assert data_to_inputs(data) is None
    assert HeadsState.from_query({"data": data}).data is None


def test_long_image_lists_are_left_out_of_links():
    assert inputs_to_data({"images": [IMG] * 100}) is None


def test_with_source_fills_model_and_data_from_a_job_record():
    record = {"model": "demo", "inputs": {"dataset": "synthscenes:16:seed=0"}}
    state = with_source(HeadsState(hi=HI), record)
    assert (state.model, state.data) == ("demo", "synthscenes:16:seed=0")
    kept = with_source(HeadsState(hi=HI, model="random:vit-micro"), record)
    assert kept.model == "random:vit-micro"


def test_head_from_click_reads_heatmap_cells_and_customdata():
    assert head_from_click({"points": [{"x": 4, "y": 9, "z": 0.1}]}) == (9, 4)
    assert head_from_click({"points": [{"x": 0.3, "y": 2.1, "customdata": [5, 3]}]}) == (5, 3)
    assert head_from_click({"points": []}) is None
    assert head_from_click(None) is None


def test_patch_from_click_maps_patch_coordinates_to_an_index():
    assert patch_from_click({"points": [{"x": 3, "y": 2}]}, (14, 14)) == 2 * 14 + 3
    assert patch_from_click({"points": [{"x": 3.4, "y": 1.6}]}, (4, 4)) == 2 * 4 + 3
    assert patch_from_click({"points": [{"x": 20, "y": 0}]}, (14, 14)) is None


def test_patch_of_is_none_for_cls():
    assert patch_of(-1, (14, 14)) is None
    assert patch_of(15, (14, 14)) == (1, 1)


def test_box_edits_from_a_drag_and_from_a_full_redraw():
    boxes = [[0, 0, 10, 10], [20, 20, 30, 30]]
    dragged = apply_box_edits(boxes, {"shapes[1].x0": 25.0, "shapes[1].y1": 40.0})
    assert dragged == [[0, 0, 10, 10], [25, 20, 30, 40]]
    redrawn = apply_box_edits(boxes, {"shapes": [{"x0": 5, "y0": 5, "x1": 1, "y1": 2}]})
    assert redrawn[0] == [1, 2, 5, 5]  # corners put back in order
    assert apply_box_edits(boxes, {"xaxis.range[0]": 3}) == [[0, 0, 10, 10], [20, 20, 30, 30]]


def test_urls_name_their_page():
    assert HeadState(pat=PAT).url().startswith("/head?pat=")
    assert dict(parse_qsl(ScanpathState(job=HI, target=2).url().split("?", 1)[1])) == {
        "job": HI,
        "image": "0",
        "target": "2",
    }


def test_page_states_show_the_kinds_declared_for_their_page():
    import dataclasses

    from vitscope.contracts import kinds

    for state_cls in (HeadsState, HeadState, CamState, ScanpathState):
        declared = {k.url_key: k.name for k in kinds.all_kinds().values() if k.page == state_cls.path}
        assert declared.items() <= state_cls.jobs.items() and declared
        assert set(state_cls.jobs) <= {f.name for f in dataclasses.fields(state_cls)}
    assert HeadState.jobs == {**HeadsState.jobs, "hd": "head-detail", "hp": "head-pruning"}
    assert view_of("head-detail", HI).url().startswith(f"/head?hd={HI}")
    assert view_of("eigencam", HI).url() == f"/cam?job={HI}&image=0&opacity=0.5&cmap=jet"
    assert isinstance(view_of("no-such-kind", HI), JobState)


def test_job_state_round_trips_and_names_its_kind():
    state = JobState(job=HI, kind="token-norms", model="demo", data="synthscenes:4:seed=0")
    assert JobState.from_search(state.search()) == state
    assert state.kind_of("job") == "token-norms" and state.job_ids() == {"job": HI}
    assert CamState(job=HI).kind_of("job") == "eigencam"


def test_cam_state_draws_on_the_original_unless_the_link_asks_for_the_crop():
    assert CamState.from_query({"job": HI}).picture is None  # old links: the original, the default
    crop = CamState(job=HI, picture="crop")
    assert "picture=crop" in crop.search()
    assert CamState.from_search(crop.search()) == crop
    assert "picture" not in CamState(job=HI).search()
    assert CamState.from_query({"picture": "original"}).picture is None
    odd = CamState.from_query({"picture": "negative"})
    assert odd.picture is None and any("negative" in p for p in odd.problems)


def test_the_task_free_metrics_are_valid_in_links():
    assert HeadsState.from_query({"metric": "cls_cosine_drop"}).metric == "cls_cosine_drop"
    assert HeadsState.from_query({"metric": "patch_change"}).problems == ()
