"""The cost budget of one job: its estimate (`vitscope.contracts.cost`) against `max_job_gflop`."""

from __future__ import annotations

from backend.errors import ApiError
from vitscope.contracts.cost import JobCost, estimate_cost
from vitscope.contracts.jobs import JobSpec
from vitscope.contracts.store import Store


def check_cost(spec: JobSpec, store: Store, max_gflop: float) -> JobCost:
    """Return the job's estimated cost; raise `ApiError` 422 naming the limit and its setting past it."""
    zip_images = None
    if spec.inputs.zip is not None:
        [meta] = store.blob_metas([spec.inputs.zip])
        zip_images = int(meta["images"]) if meta and "images" in meta else None
    cost = estimate_cost(spec, zip_images)
    if cost.gflop > max_gflop:
        raise ApiError(
            422,
            f"this job is estimated at {cost.gflop:,.0f} GFLOP ({cost.images} images x {cost.passes:,.1f} "
            f"passes x {cost.gflop_per_pass:,.2f} GFLOP, plus {cost.extra_gflop:,.0f}); the limit is "
            f"{max_gflop:,.0f} GFLOP per job (the setting VITSCOPE_MAX_JOB_GFLOP raises it): use fewer "
            "images, a smaller model or fewer options",
            [{"loc": ["inputs"], "msg": f"estimated {cost.gflop:,.0f} GFLOP > {max_gflop:,.0f}"}],
        )
    return cost
