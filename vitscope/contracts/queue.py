"""The message the API and the workers exchange through the Celery queue. Torch-free.

One task, `run_job(job_id)`, sent by name: the API holds its own small Celery client and never
imports worker code, and the message carries the job id only (the spec is in the job record).
"""

from __future__ import annotations

TASK_NAME = "vitscope.run_job"
"""The name the worker registers `run_job` under and the API sends it by."""

INTERACTIVE_SUFFIX = ".interactive"
"""Added to the queue name for the jobs of interactive kinds (a page's per-click work)."""


def queue_for(base: str, interactive: bool) -> str:
    """The queue a job goes to: `base`, or `base.interactive` for an interactive kind's job, so a
    worker kept for clicks never waits behind a dataset-wide job."""
    return base + INTERACTIVE_SUFFIX if interactive else base


def worker_queues(base: str, interactive_only: bool = False) -> str:
    """The `-Q` value of a worker: both queues (interactive ones first), or the interactive queue only."""
    return queue_for(base, True) if interactive_only else f"{queue_for(base, True)},{base}"
