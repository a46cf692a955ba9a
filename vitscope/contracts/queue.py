"""The message the API and the workers exchange through the Celery queue. Torch-free.

One task, `run_job(job_id)`, sent by name: the API holds its own small Celery client and never
imports worker code, and the message carries the job id only (the spec is in the job record).
"""

from __future__ import annotations

TASK_NAME = "vitscope.run_job"
"""The name the worker registers `run_job` under and the API sends it by."""
