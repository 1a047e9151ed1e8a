"""Background work for the panels: results and errors come back, rapid changes make one estimate."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from vqclip.errors import ConfigError
from vqclip.ui.jobs import Debouncer, Job


def test_job_returns_the_result_and_reraises_the_error_in_the_caller():
    assert Job(lambda a, b: a + b, 2, b=3).wait(10) == 5
    job = Job(lambda: (_ for _ in ()).throw(ConfigError("size.width: 7 is not allowed")))
    with pytest.raises(ConfigError, match="size.width"):
        job.wait(10)


def test_job_wait_async_outside_a_kernel_and_interrupt_asks_to_stop():
    release = threading.Event()
    job = Job(lambda: release.wait(10) and "done")
    asked = []

    async def main():
        task = asyncio.ensure_future(job.wait_async(on_interrupt=lambda: (asked.append(1), release.set())))
        await asyncio.sleep(0.1)
        assert not task.done()  # still waiting for the job
        release.set()
        return await task

    assert asyncio.run(main()) == "done" and not asked


def test_debouncer_runs_once_after_a_burst_and_again_for_a_change_during_a_run():
    calls = []
    gate = threading.Event()

    def check():
        calls.append(time.monotonic())
        gate.wait(5)

    d = Debouncer(check, delay=0.05)
    for _ in range(10):  # typing "4096" into a width box: many changes, one check
        d.trigger()
    time.sleep(0.3)
    assert len(calls) == 1
    d.trigger()  # a change while the check runs: one more check after it, not a second one at once
    time.sleep(0.3)
    assert len(calls) == 1
    gate.set()
    d.wait(5)
    assert len(calls) == 2
