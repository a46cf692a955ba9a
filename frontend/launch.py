"""Starting analyses from the dashboard, and the dashboard URL of each job.

The same request always gets the same job id from the API, so launching something that was
computed before is free: the page opens straight on its results.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dash import no_update

from frontend.api import ApiClient, ApiError, JobRecord, get_client, upload_bytes
from frontend.components import notice
from frontend.settings import get_settings
from frontend.state import CamState, HeadsState, ScanpathState, inputs_to_data, view_of
from vitscope.contracts import kinds


def upload_inputs(
    api: ApiClient, contents: str | list[str], filenames: str | list[str] | None
) -> dict[str, Any]:
    """Upload one or more dcc.Upload files as images; returns job inputs {"images": [ids]}."""
    items = contents if isinstance(contents, list) else [contents]
    names = filenames if isinstance(filenames, list) else [filenames or "upload"] * len(items)
    ids = []
    for content, name in zip(items, names, strict=False):
        try:
            ids.append(str(api.upload_image(name or "upload", upload_bytes(content))["id"]))
        except ApiError as exc:
            raise ApiError(f"{name}: {exc}", exc.status, exc.problems) from exc
    return {"images": ids}


def upload_zip(api: ApiClient, contents: str, filename: str | None) -> dict[str, Any]:
    """Upload an ImageFolder zip; returns job inputs {"zip": id} and the image count."""
    record = api.upload_archive(filename or "images.zip", upload_bytes(contents))
    return {"zip": str(record["id"]), "count": int(record.get("images") or 0)}


def dataset_spec(n: int | None, seed: int | None, name: str = "synthscenes") -> str:
    """`synthscenes:N:seed=S` from the form's numbers."""
    return f"{name}:{max(1, int(n or 1))}:seed={int(seed or 0)}"


def kind_inputs(kind: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs one kind gets from the launch form.

    A kind that reads inputs of its own (`Kind.open_source`, e.g. scanpath's search scenes) gets
    the built-in family of its `example_inputs` in place of SynthScenes: the same seed, at most 8.
    """
    declared = kinds.all_kinds().get(kind)
    family = own_family(declared) if declared else None
    dataset = str(inputs.get("dataset") or "")
    if family is None or not dataset.startswith("synthscenes:"):
        return inputs
    _, n, *rest = dataset.split(":")
    seed = next((part for part in rest if part.startswith("seed=")), "seed=0")
    return {"dataset": f"{family}:{min(int(n), 8)}:{seed}"}


def own_family(kind: kinds.Kind) -> str | None:
    """The built-in dataset family a kind with inputs of its own runs on (None for image kinds)."""
    if kind.open_source is None:
        return None
    family = str(kind.example_inputs.get("dataset") or "").partition(":")[0]
    return family if family and family != "synthscenes" else None


def launch(api: ApiClient, names: Iterable[str], model: str, inputs: dict[str, Any]) -> list[JobRecord]:
    """Submit one job per kind in `names` on the same model and inputs (default params); returns their records."""
    return [api.submit(name, model, kind_inputs(name, inputs), {}) for name in names]


def dashboard_url(record: JobRecord) -> str:
    """The view that shows one job: its kind's declared page (`Kind.page` and `url_key`), or the
    generic `/job` page for a kind this dashboard has no page for."""
    return view_of(
        str(record.get("kind")), str(record["id"]), record.get("model"), inputs_to_data(record.get("inputs"))
    ).url()


def overview_url(records: Iterable[JobRecord]) -> str | None:
    """One heads-overview link for a batch's jobs of the kinds the overview shows (None without any)."""
    key_of = {kind: key for key, kind in HeadsState.jobs.items()}
    keys: dict[str, Any] = {}
    first: JobRecord | None = None
    for record in records:
        key = key_of.get(str(record.get("kind")))
        if key:
            keys[key] = record["id"]
            first = first or record
    if first is None:
        return None
    return HeadsState(**keys, model=first.get("model"), data=inputs_to_data(first.get("inputs"))).url()


def start_from_launcher(
    kind: str,
    state_type: type[CamState] | type[ScanpathState],
    labels: tuple[str, str],
    *,
    uploaded: bool,
    contents: str | None,
    filename: str | None,
    model: str | None,
    dataset: str | None,
    default_dataset: str,
) -> tuple[Any, Any]:
    """Start a `kind` job from a page's image launcher: the uploaded file, else the built-in dataset.

    `labels` name the analysis in the failure and success notices. Returns (new page state for
    the store, notice), or no_update for an upload event without a file.
    """
    api = get_client()
    model = (model or get_settings().default_model).strip()
    failed, started = labels
    try:
        if uploaded:
            if not contents:
                return no_update, no_update
            inputs = upload_inputs(api, contents, filename)
        else:
            inputs = {"dataset": (dataset or default_dataset).strip()}
        record = api.submit(kind, model, inputs, {})
    except ApiError as exc:
        return no_update, notice(f"Could not start {failed}: {exc}")
    job = str(record["id"])
    state = state_type(job=job, model=model, data=inputs_to_data(inputs))
    return state.to_store(), notice(f"{started} job {job[:12]} started.", "ok")
