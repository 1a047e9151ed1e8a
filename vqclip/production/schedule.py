"""Keyframe schedules such as ``0:(1.0), 30:(1.05)``: one number per frame, linear between keyframes.

A keyframe's value may be an arithmetic expression of the frame index ``t`` (``0:(1 + 0.01*sin(t))``).
Expressions are checked against a whitelist of names here and evaluated with numexpr: never ``eval``.
Between two keyframes both expressions are evaluated at ``t`` and blended linearly, so constant
values give plain linear ramps and expressions fade into each other; before the first keyframe its
value holds, after the last keyframe the last expression keeps running.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from vqclip.errors import ConfigError

__all__ = ["Schedule", "parse_schedule", "ScheduleError", "ALLOWED_NAMES"]

#: numexpr functions a schedule may call, plus the variable ``t`` and the constants ``pi`` and ``e``.
FUNCTIONS = (
    "sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh", "tanh",
    "exp", "expm1", "log", "log10", "log1p", "sqrt", "abs", "where", "floor", "ceil",
)
CONSTANTS = {"pi": math.pi, "e": math.e}
ALLOWED_NAMES = ("t", *CONSTANTS, *FUNCTIONS)

# One token of an expression: a number, a name, or an operator numexpr understands.
_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_]\w*)"
    r"|(?P<op>\*\*|<=|>=|==|!=|[-+*/%()<>,&|~]))"
)


_HINT = "; a schedule is 'FRAME:(VALUE), FRAME:(VALUE), ...' with VALUE a number or an expression of t"


class ScheduleError(ConfigError):
    """A schedule string that cannot be parsed; the message shows the string with a caret under the fault."""

    def __init__(self, key: str, text: str, column: int, problem: str):
        self.key, self.text, self.column, self.problem = key, text, column, problem
        caret = " " * column + "^"
        super().__init__(f"{key}={text!r}: {problem} (column {column + 1}){_HINT}\n    {text}\n    {caret}")


@dataclass(frozen=True)
class Keyframe:
    """One ``FRAME:(EXPR)`` entry; ``constant`` is its value when EXPR does not use ``t``."""

    frame: int
    expr: str
    constant: float | None


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: call ``value(t)`` or ``values(n)`` for the per-frame numbers."""

    text: str
    keyframes: tuple[Keyframe, ...]
    key: str = "schedule"

    def value(self, t: int) -> float:
        """The schedule's value at frame ``t`` (keyframes blended linearly)."""
        kfs = self.keyframes
        if t <= kfs[0].frame:
            return self._eval(kfs[0], t)
        for a, b in zip(kfs, kfs[1:]):
            if a.frame <= t <= b.frame:
                w = (t - a.frame) / (b.frame - a.frame)
                va = self._eval(a, t)
                vb = self._eval(b, t)
                return va if w == 0 else vb if w == 1 else va + (vb - va) * w
        return self._eval(kfs[-1], t)

    def values(self, n: int) -> list[float]:
        """The values of frames ``0 .. n-1``."""
        return [self.value(t) for t in range(n)]

    def _eval(self, kf: Keyframe, t: int) -> float:
        if kf.constant is not None:
            return kf.constant
        import numexpr  # lazily: only expressions of t need it

        v = float(numexpr.evaluate(kf.expr, local_dict={"t": float(t), **CONSTANTS}, global_dict={}))
        if not math.isfinite(v):
            raise ConfigError(f"{self.key}: {kf.expr!r} gives {v} at frame {t}; it must be a finite number")
        return v


def _check_expr(key: str, text: str, start: int, expr: str) -> bool:
    """Validate one expression's tokens against the whitelist; return True when it uses ``t``."""
    pos, depth, uses_t, last = 0, 0, False, None
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        m = _TOKEN.match(expr, pos)
        if not m:
            col = start + pos + (len(expr[pos:]) - len(expr[pos:].lstrip()))
            raise ScheduleError(key, text, col, f"unexpected character {text[col]!r}")
        col = start + m.start(m.lastgroup)
        if m.group("name"):
            name = m.group("name")
            if name not in ALLOWED_NAMES:
                raise ScheduleError(key, text, col, f"unknown name {name!r} (allowed: {', '.join(ALLOWED_NAMES)})")
            uses_t |= name == "t"
        elif m.group("op") == "(":
            depth += 1
        elif m.group("op") == ")":
            depth -= 1
            if depth < 0:
                raise ScheduleError(key, text, col, "unmatched ')'")
        last = m
        pos = m.end()
    if last is None:
        raise ScheduleError(key, text, start, "empty value")
    if depth:
        raise ScheduleError(key, text, start + len(expr.rstrip()), "missing ')'")
    return uses_t


def _find_value_end(text: str, pos: int, parens: bool) -> int:
    """Index just past a keyframe's value: its closing ')' or the next top-level ','."""
    depth = 0
    for i in range(pos, len(text)):
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if parens and depth == 0:
                return i + 1
        elif c == "," and depth == 0 and not parens:
            return i
    return len(text)


def parse_schedule(value: str | int | float, key: str = "schedule") -> Schedule:
    """Parse ``'0:(1.0), 30:(1.05)'`` (or a bare number: a constant) into a :class:`Schedule`."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: {value!r} is not a schedule; use a number or 'FRAME:(VALUE), ...'")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ConfigError(f"{key}: {value!r} is not allowed; a schedule value must be finite")
        return Schedule(f"0:({value})", (Keyframe(0, repr(float(value)), float(value)),), key)
    if not isinstance(value, str):
        raise ConfigError(f"{key}: {value!r} is not a schedule; use a number or 'FRAME:(VALUE), ...'")
    text = value
    if text.strip() == "":
        raise ScheduleError(key, text, 0, "empty schedule")
    if ":" not in text:
        # a bare value such as "1.05" or "1 + 0.1*t" holds from frame 0 on
        uses_t = _check_expr(key, text, 0, text)
        return Schedule(text, (_keyframe(key, text, 0, 0, text.strip(), uses_t),), key)
    keyframes: dict[int, Keyframe] = {}
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        m = re.compile(r"-?\d+").match(text, pos)
        if not m:
            raise ScheduleError(key, text, min(pos, len(text) - 1) if text else 0, "expected a frame number")
        frame = int(m.group())
        if frame < 0:
            raise ScheduleError(key, text, pos, "frame numbers start at 0")
        if frame in keyframes:
            raise ScheduleError(key, text, pos, f"frame {frame} is given twice")
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text) or text[pos] != ":":
            raise ScheduleError(key, text, min(pos, len(text) - 1), "expected ':' after the frame number")
        pos += 1
        while pos < len(text) and text[pos].isspace():
            pos += 1
        parens = pos < len(text) and text[pos] == "("
        end = _find_value_end(text, pos, parens)
        if parens:
            if text[end - 1] != ")" or end > len(text):
                raise ScheduleError(key, text, pos, "this '(' is never closed")
            expr_start, expr = pos + 1, text[pos + 1 : end - 1]
        else:
            expr_start, expr = pos, text[pos:end]
        uses_t = _check_expr(key, text, expr_start, expr)
        keyframes[frame] = _keyframe(key, text, frame, expr_start, expr.strip(), uses_t)
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        if text[pos] != ",":
            raise ScheduleError(key, text, pos, "expected ',' between keyframes")
        pos += 1
        if text[pos:].strip() == "":
            raise ScheduleError(key, text, pos - 1, "a trailing ',' without a keyframe after it")
    return Schedule(text, tuple(keyframes[f] for f in sorted(keyframes)), key)


def _keyframe(key: str, text: str, frame: int, col: int, expr: str, uses_t: bool) -> Keyframe:
    """Build a keyframe, evaluating constants once so typos in numbers surface at parse time."""
    import warnings

    import numexpr

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # "1 2" would warn before it raises
            v = float(numexpr.evaluate(expr, local_dict={"t": 0.0, **CONSTANTS}, global_dict={}))
    except (SyntaxError, ValueError, TypeError, KeyError, ZeroDivisionError) as exc:
        raise ScheduleError(key, text, col, f"cannot evaluate {expr!r} ({exc})") from None
    if not uses_t and not math.isfinite(v):
        raise ScheduleError(key, text, col, f"{expr!r} is {v}; a value must be finite")
    return Keyframe(frame, expr, None if uses_t else v)
