"""Terminal presentation of progress events, for the CLI only (the core emits events, never draws).

Render, download and export report through a ``callback(dict)``; :class:`ConsoleProgress` is such a
callback that turns the events into tqdm bars. tqdm redraws its bar with a carriage return up to ten
times a second: on a terminal that is the bar; in a file (``> log 2>&1``, CI) every redraw is kept, so
a render would flood its log. When the stream is not a terminal the bars refresh only every
:data:`LOG_INTERVAL_S` seconds, which leaves a progress line now and then.

Events shown (other events, e.g. ``preview``, are ignored):

- ``{"event": "iteration", "frame", "frames", "total_iteration", "total_iterations", "losses"}``: the render bar;
- ``{"event": "frame", "frame", "frames", "path"}``: one line per finished frame;
- ``{"event": "download", "name", "file", "bytes", "total"}``: a byte bar per file;
- ``{"event": "export", "path", "stage", "done", "total"}``: a frame bar per output file and stage.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

__all__ = ["LOG_INTERVAL_S", "TERMINAL_INTERVAL_S", "is_terminal", "bar_interval", "console_bar", "ConsoleProgress"]

TERMINAL_INTERVAL_S = 0.1  # tqdm's own default: a smooth bar on a terminal
LOG_INTERVAL_S = 20.0  # a line every 20 s in a log: enough to see it move, few enough to read


def is_terminal(stream: Any) -> bool:
    """True when ``stream`` is an interactive terminal (not a file, a pipe or a captured stream)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def bar_interval(file: TextIO | None = None) -> float:
    """tqdm's ``mininterval`` for a bar written to ``file`` (default stderr): 0.1 s on a terminal, LOG_INTERVAL_S otherwise."""
    return TERMINAL_INTERVAL_S if is_terminal(sys.stderr if file is None else file) else LOG_INTERVAL_S


def console_bar(**kwargs: Any):
    """A tqdm bar (stderr unless ``file`` is given) that refreshes at :func:`bar_interval`; takes tqdm's arguments."""
    from tqdm import tqdm

    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("mininterval", bar_interval(kwargs["file"]))
    return tqdm(**kwargs)


class ConsoleProgress:
    """A ``callback(dict)`` that draws render, download and export events as console bars; use it as a context manager."""

    def __init__(self, file: TextIO | None = None):
        self.file = file if file is not None else sys.stderr
        self.bars: dict[tuple, Any] = {}

    def __enter__(self) -> "ConsoleProgress":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def __call__(self, event: dict) -> None:
        """Show one event (unknown kinds are ignored, so new events never break the CLI)."""
        handler = getattr(self, f"_on_{event.get('event')}", None)
        if handler is not None:
            handler(event)

    def close(self) -> None:
        """Close every open bar (their last state stays on screen / in the log)."""
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()

    def _bar(self, key: tuple, **kwargs: Any):
        if key not in self.bars:
            self.bars[key] = console_bar(file=self.file, dynamic_ncols=True, **kwargs)
        return self.bars[key]

    def _advance(self, key: tuple, done: int, total: int | None) -> None:
        bar = self.bars[key]
        if done > bar.n:
            bar.update(done - bar.n)
        if total is not None and done >= total:
            self.bars.pop(key).close()

    def _on_iteration(self, e: dict) -> None:
        # A resumed render starts its bar where the saved state left off.
        bar = self._bar(("render",), total=e["total_iterations"], initial=e["total_iteration"] - 1, unit="it", desc="render")
        losses = e.get("losses") or {}
        post = {"frame": f"{e['frame'] + 1}/{e['frames']}"}
        if "total" in losses:
            post["loss"] = f"{losses['total']:.3f}"
        bar.set_postfix(post, refresh=False)
        self._advance(("render",), e["total_iteration"], None)

    def _on_frame(self, e: dict) -> None:
        line = f"frame {e['frame'] + 1}/{e['frames']}: {e['path']}"
        bar = self.bars.get(("render",))
        if bar is not None and is_terminal(self.file):
            bar.write(line, file=self.file)  # above the live bar
        else:
            print(line, flush=True)  # bar.write would clear and redraw the bar in a log for every frame

    def _on_download(self, e: dict) -> None:
        key = ("download", e.get("name"), e.get("file"))
        label = e.get("file") or e.get("name") or "download"
        self._bar(key, total=e.get("total"), unit="B", unit_scale=True, unit_divisor=1024, desc=f"download {label}")
        self._advance(key, int(e.get("bytes") or 0), e.get("total"))

    def _on_export(self, e: dict) -> None:
        from pathlib import Path

        key = ("export", e.get("path"), e.get("stage"))
        name = Path(str(e.get("path") or "")).name
        self._bar(key, total=e.get("total"), unit="frame" if e.get("stage") != "audio" else "chunk",
                  desc=f"{e.get('stage', 'export')} {name}".strip())
        self._advance(key, int(e.get("done") or 0), e.get("total"))
