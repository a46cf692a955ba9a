"""The API's Celery client: jobs sent by task name, ids only, JSON, and no worker code imported."""

import json
import subprocess
import sys

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


def test_sending_and_pinging_import_no_worker_code(redis_url):
    code = (
        "import sys; from backend.queue import JobQueue; "
        f"q = JobQueue({redis_url!r}, 'q-imports', 0.1, 0); q.send('x'); q.workers(); "
        "print(sorted(m for m in ('torch', 'worker.tasks', 'vitscope.vit.models') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
