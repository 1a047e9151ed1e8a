"""Progress bars for the CLI paths (render, post export, downloads) that stay readable in a log.

tqdm redraws its bar with a carriage return up to ten times a second. On a terminal that is the
bar; in a file (``> log 2>&1``, CI) every redraw is kept, so a render floods its log. When the bar's
stream is not a terminal the bars here refresh only every :data:`LOG_INTERVAL_S` seconds, which
leaves a progress line now and then. Notebook widget bars (``tqdm.auto`` in Jupyter) are left as
they are: they redraw in place.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

__all__ = ["LOG_INTERVAL_S", "TERMINAL_INTERVAL_S", "is_terminal", "bar_interval", "console_bar", "auto_bar", "log_friendly"]

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


def _is_notebook_bar(cls: type) -> bool:
    return any(c.__module__ == "tqdm.notebook" for c in cls.__mro__)


def log_friendly(cls: type) -> type:
    """A subclass of the tqdm class ``cls`` whose bars refresh at :func:`bar_interval` unless told otherwise (notebook bars unchanged)."""
    if _is_notebook_bar(cls):
        return cls

    class LogFriendly(cls):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("mininterval", bar_interval(kwargs.get("file")))
            super().__init__(*args, **kwargs)

    LogFriendly.__name__ = LogFriendly.__qualname__ = f"LogFriendly{cls.__name__}"
    return LogFriendly


def console_bar(**kwargs: Any):
    """A console tqdm bar (stderr unless ``file`` is given) that refreshes at :func:`bar_interval`; takes tqdm's arguments."""
    from tqdm import tqdm

    kwargs.setdefault("file", sys.stderr)
    return log_friendly(tqdm)(**kwargs)


def auto_bar(**kwargs: Any):
    """Like :func:`console_bar`, but a widget bar inside a notebook (``tqdm.auto``)."""
    from tqdm.auto import tqdm

    return log_friendly(tqdm)(**kwargs)
