"""The API's Celery client: jobs sent by task name, ids only, JSON, no result backend.

That the API imports no worker code is an import-linter contract (pyproject.toml).
"""

import json

from backend.queue import JobQueue


def test_send_puts_a_json_message_with_the_job_id_on_the_queue(redis_url, redis):
    JobQueue(redis_url, "q-send", ping_timeout_s=0.1, cache_s=0).send("abc123")
    [raw] = redis.lrange("q-send", 0, -1)
    message = json.loads(raw)
    assert message["content-type"] == "application/json"
    assert message["headers"]["task"] == "vitscope.run_job" and message["headers"]["argsrepr"] == "['abc123']"


def test_worker_count_is_zero_without_workers_and_cached(redis_url):
    queue = JobQueue(redis_url, "q-ping", ping_timeout_s=0.1, cache_s=60)
    assert queue.workers() == 0
    queue._workers = (queue._workers[0], 7)  # a cached answer is reused within cache_s
    assert queue.workers() == 7


def test_the_client_reads_no_results_and_redelivers_no_sooner_than_the_workers():
    celery = JobQueue("redis://127.0.0.1:1/0", "q", 0.1, 0, visibility_timeout_s=7200).celery
    assert celery.conf.task_ignore_result and not celery.conf.result_backend
    assert celery.conf.broker_transport_options == {"visibility_timeout": 7200}
