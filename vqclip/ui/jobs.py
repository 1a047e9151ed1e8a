"""Long work off the kernel's main thread, so clicks (Stop, Save) act at once, in "Run all" too.

A :class:`Job` runs a function in a daemon thread. A cell that must wait for it ("Run all" goes on to
the next cell) awaits :meth:`Job.wait_async`, which keeps the widgets live and holds the cells queued
after it back until the job is done. How depends on the kernel: ipykernel 7 hands widget messages to
a cell that awaits; ipykernel 6 (Colab's) queues them behind the cell, so jupyter-ui-poll handles them.
A plain :meth:`Job.wait` keeps widgets live only on ipykernel 6 (the kernel is busy on 7).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable

__all__ = ["Job", "Debouncer"]


def _kernel():
    from IPython import get_ipython  # ipywidgets depends on IPython

    return getattr(get_ipython(), "kernel", None)


def _queues_ui_messages() -> bool:
    """True on kernels that hold widget messages behind a running cell (ipykernel < 7 has do_one_iteration)."""
    return hasattr(_kernel(), "do_one_iteration")


class Job:
    """``fn(*args, **kwargs)`` in a daemon thread; ``result`` or ``error`` when it ends."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any):
        self.result: Any = None
        self.error: BaseException | None = None

        def target() -> None:
            try:
                self.result = fn(*args, **kwargs)
            except BaseException as exc:  # kept for wait() to re-raise in the caller's thread
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    @property
    def running(self) -> bool:
        """True until the function returns or raises."""
        return self.thread.is_alive()

    def wait(self, timeout: float | None = None, on_interrupt: Callable[[], None] | None = None) -> Any:
        """Wait for the end (handling widget events meanwhile inside a kernel); return the result or raise its error.

        A keyboard interrupt (the notebook's stop button) calls ``on_interrupt`` (e.g. "stop after this
        step") and keeps waiting, so the job ends cleanly instead of being abandoned mid-write.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running and (deadline is None or time.monotonic() < deadline):
            try:
                if _queues_ui_messages():
                    self._wait_polling(deadline)
                else:
                    self.thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            except KeyboardInterrupt:
                if on_interrupt is None:
                    raise
                on_interrupt()
                on_interrupt = None  # a second interrupt abandons the wait
        if self.error is not None and not self.running:
            raise self.error
        return self.result

    async def wait_async(self, on_interrupt: Callable[[], None] | None = None) -> Any:
        """Await the end with the widgets live and later cells held back; return the result or raise its error."""
        while self.running:
            try:
                if _queues_ui_messages():
                    from jupyter_ui_poll import ui_events

                    async with ui_events() as poll:
                        while self.running:
                            await poll(20)
                            await asyncio.sleep(0.05)
                else:
                    while self.running:
                        await asyncio.sleep(0.05)
            except (KeyboardInterrupt, asyncio.CancelledError):
                if on_interrupt is None:
                    raise
                on_interrupt()
                on_interrupt = None
        if self.error is not None:
            raise self.error
        return self.result

    def _wait_polling(self, deadline: float | None) -> None:
        from jupyter_ui_poll import ui_events

        with ui_events() as poll:
            while self.running and (deadline is None or time.monotonic() < deadline):
                poll(20)  # up to 20 queued UI messages (clicks, value changes) per round
                self.thread.join(0.05)


class Debouncer:
    """Call ``fn`` in a background thread ``delay`` seconds after the last :meth:`trigger`; one run at a time."""

    def __init__(self, fn: Callable[[], Any], delay: float = 0.4):
        self.fn, self.delay = fn, delay
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._job: Job | None = None
        self._again = False

    def trigger(self) -> None:
        """(Re)start the countdown; a change during a run starts one more run after it."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.delay, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            if self._job is not None and self._job.running:
                self._again = True
                return
            self._job = Job(self._run)

    def _run(self) -> None:
        while True:
            self.fn()
            with self._lock:
                if not self._again:
                    return
                self._again = False

    def wait(self, timeout: float = 60.0) -> None:
        """Block until no run is pending or going (for tests and cells that need the answer)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                timer, job = self._timer, self._job
            if timer is None and (job is None or not job.running):
                return
            time.sleep(0.02)
