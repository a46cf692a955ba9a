"""Launching from the dashboard: which inputs each kind gets, and where each job is shown."""

from __future__ import annotations

from frontend.api import ApiClient
from frontend.launch import dashboard_url, kind_inputs, launch, overview_url
from vitscope.contracts import kinds

JOB = "a" * 24
DATA = {"dataset": "synthscenes:6:seed=0"}


def record(kind: str, job_id: str = JOB) -> dict[str, object]:
    return {"id": job_id, "kind": kind, "model": "demo", "inputs": DATA}


def test_each_built_in_kind_opens_on_its_declared_page() -> None:
    for kind in kinds.all_kinds().values():
        url = dashboard_url(record(kind.name))
        assert url.startswith(kind.dashboard_path(JOB)), (kind.name, url)
        assert "model=demo" in url and "data=synthscenes:6:seed=0" in url


def test_a_kind_without_a_dashboard_page_opens_on_the_generic_job_page(extra_kind: kinds.Kind) -> None:
    assert extra_kind.page not in ("/heads", "/cam", "/scanpath", "/job")
    assert dashboard_url(record("token-norms")).startswith(f"/job?job={JOB}&kind=token-norms&model=demo")


def test_overview_url_gathers_the_kinds_the_overview_shows() -> None:
    records = [record("eigencam", "c" * 24), record("attention-profile", "b" * 24), record("head-importance")]
    url = overview_url(records) or ""
    assert url.startswith(f"/heads?hi={JOB}&ap={'b' * 24}&layer=0")
    assert overview_url([record("eigencam")]) is None


def test_a_kind_with_inputs_of_its_own_gets_its_built_in_family() -> None:
    assert kind_inputs("scanpath", {"dataset": "synthscenes:64:seed=3"}) == {
        "dataset": "synthsearch:8:seed=3"
    }
    assert kind_inputs("scanpath", {"images": ["d" * 64]}) == {"images": ["d" * 64]}
    assert kind_inputs("eigencam", {"dataset": "synthscenes:64:seed=3"}) == {
        "dataset": "synthscenes:64:seed=3"
    }


def test_a_new_kind_is_launchable(extra_kind: kinds.Kind, api: ApiClient) -> None:
    [launched] = launch(api, ["token-norms"], "demo", DATA)
    assert launched["kind"] == "token-norms" and launched["params"]["scale"] == "linear"
    assert dashboard_url(launched).startswith(f"/job?job={launched['id']}&kind=token-norms")
