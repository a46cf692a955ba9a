"""The load benchmark's own arithmetic and HTTP reading."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from vitscope.bench.api_load import read_response, summarize


def test_summary_reports_percentiles_in_ms_and_throughput():
    report = summarize([i / 1000 for i in range(1, 101)], errors=2, seconds=4.0)
    assert report["requests"] == 100 and report["errors"] == 2 and report["rps"] == 25.0
    assert report["p50_ms"] == pytest.approx(50.5) and report["p95_ms"] == pytest.approx(95.05)
    assert report["p99_ms"] == pytest.approx(99.01) and report["max_ms"] == 100.0


def test_read_response_consumes_exactly_one_response():
    async def read_two():
        reader = asyncio.StreamReader()
        reader.feed_data(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
        )
        return await read_response(reader), await read_response(reader)

    # a fresh thread: Playwright's sync API may have left an event loop running in this one
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(lambda: asyncio.run(read_two())).result() == (200, 404)
