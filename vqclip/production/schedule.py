"""Animation schedules: one number per frame, from keyframes (``0:(1.0), 30:(1.05)``) or a song's beats.

A keyframe's value may be an arithmetic expression of the frame index ``t`` (``0:(1 + 0.01*sin(t))``).
Expressions are parsed with :mod:`ast` (which never evaluates anything), checked node by node against
a whitelist with types (numbers vs. true/false conditions) and bounds (literal size, node count, no
exponent towers), and only then evaluated with numexpr, vectorized over the frames: never ``eval``.
Between two keyframes both expressions are evaluated at ``t`` and blended linearly, so constant values
give plain linear ramps and expressions fade into each other; before the first keyframe its value
holds, after the last keyframe the last expression keeps running. Every value must be finite and, for
the animation keys, inside :data:`RANGES`.

A beat schedule is a mapping ``{beats: song.wav, base: 1.0, pulse: 1.08, decay: 4}``: librosa finds
the beats (or onsets) and each one lifts the value from ``base`` to ``pulse`` on its frame, falling
back linearly over ``decay`` frames (see :mod:`vqclip.production.beats`).
"""

from __future__ import annotations

import ast
import math
import re
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vqclip.errors import ConfigError

__all__ = ["Schedule", "KeyframeSchedule", "parse_schedule", "ScheduleError", "ALLOWED_NAMES", "RANGES"]

#: numexpr functions a schedule may call, with their number of arguments.
FUNCTIONS = {
    **{f: 1 for f in ("sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "exp", "expm1",
                      "log", "log10", "log1p", "sqrt", "abs", "floor", "ceil")},
    "arctan2": 2,
    "where": 3,
}
CONSTANTS = {"pi": math.pi, "e": math.e}
ALLOWED_NAMES = ("t", *CONSTANTS, *FUNCTIONS)

#: Allowed per-frame values of the animation schedules (the warp's own limits: a zoom of 0 or a
#: translation beyond the largest frame side only ever gives a blank or smeared frame).
RANGES: dict[str, tuple[float, float, str]] = {
    "animation.zoom": (0.01, 100.0, "1 = no zoom"),
    "animation.angle": (-360.0, 360.0, "degrees per frame"),
    "animation.translation_x": (-4096.0, 4096.0, "pixels per frame"),
    "animation.translation_y": (-4096.0, 4096.0, "pixels per frame"),
}
DEFAULT_RANGE = (-1e9, 1e9, "")  # any other schedule: finite and of a sane magnitude

MAX_TEXT = 20_000  # characters in one schedule string: a few thousand keyframes
MAX_NODES = 64  # syntax nodes in one keyframe's expression: a formula, not a program
MAX_LITERAL = 1e9  # largest number written in an expression
MAX_FRAME = 10_000_000  # largest keyframe index (animation.frames is capped far below)

_HINT = "; a schedule is 'FRAME:(VALUE), FRAME:(VALUE), ...' with VALUE a number or an expression of t"
_ODD_CHAR = re.compile(r"[^0-9A-Za-z_ .+\-*/%()<>=!&|~,]")  # outside what any allowed expression uses
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%", ast.Pow: "**"}
_BOOL_OPS = {ast.BitAnd: "&", ast.BitOr: "|"}
_COMPARE = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)


class ScheduleError(ConfigError):
    """A schedule string that cannot be used; the message shows the string with a caret under the fault."""

    def __init__(self, key: str, text: str, column: int, problem: str):
        self.key, self.text, self.column, self.problem = key, text, column, problem
        shown, col = text, column
        if len(text) > 120:  # show a window around the fault, not 20 000 characters
            lo = max(0, column - 60)
            shown, col = text[lo : lo + 120], column - lo
        caret = " " * col + "^"
        super().__init__(f"{key}={_short(text)!r}: {problem} (column {column + 1}){_HINT}\n    {shown}\n    {caret}")


def _short(text: str) -> str:
    return text if len(text) <= 120 else text[:100] + " ... " + text[-15:]


def _range_problem(key: str, t: int, v: float, where: str) -> str | None:
    """What is wrong with value ``v`` at frame ``t`` (non-finite, or outside the key's range), or None."""
    lo, hi, note = RANGES.get(key, DEFAULT_RANGE)
    if not math.isfinite(v):
        return f"{where} gives {v} at frame {t}; a value must be a finite number"
    if not lo <= v <= hi:
        return f"{where} gives {v:g} at frame {t}; allowed: {lo:g} .. {hi:g}" + (f" ({note})" if note else "")
    return None


class Schedule(ABC):
    """One number per frame: the common face of keyframe and beat schedules."""

    key: str

    @abstractmethod
    def values(self, frames: int, fps: float | None = None) -> list[float]:
        """The finite, in-range values of frames ``0 .. frames-1`` (beat schedules need ``fps``)."""

    @abstractmethod
    def to_preset(self) -> Any:
        """What settings.yaml writes for this schedule: the keyframe text or the beat mapping."""


@dataclass(frozen=True)
class Keyframe:
    """One ``FRAME:(EXPR)`` entry: ``expr`` is the checked numexpr text, ``column`` where it starts in the schedule."""

    frame: int
    expr: str
    constant: float | None
    column: int = 0
    source: str = ""  # the value as the preset wrote it, for messages


@dataclass(frozen=True)
class KeyframeSchedule(Schedule):
    """A parsed keyframe schedule: call ``values(n)`` (or ``value(t)``) for the per-frame numbers."""

    text: str
    keyframes: tuple[Keyframe, ...]
    key: str = "schedule"

    def value(self, t: int) -> float:
        """The schedule's value at frame ``t`` (keyframes blended linearly)."""
        return float(self._values(np.array([float(t)]))[0])

    def values(self, frames: int, fps: float | None = None) -> list[float]:
        """The values of frames ``0 .. frames-1``; ``fps`` is not needed by keyframes."""
        return [float(v) for v in self._values(np.arange(frames, dtype=np.float64))]

    def to_preset(self) -> str:
        """The keyframe text, as given."""
        return self.text

    def _values(self, t: np.ndarray) -> np.ndarray:
        if t.size > MAX_FRAME:
            raise ConfigError(f"{self.key}: {t.size} frames asked for; a schedule gives at most {MAX_FRAME}")
        kfs = self.keyframes
        out = np.empty_like(t)
        frames = np.array([k.frame for k in kfs], dtype=np.float64)
        # Segment i covers frames in [kfs[i-1].frame, kfs[i].frame); 0 is before the first, len is after the last.
        seg = np.searchsorted(frames, t, side="right")
        for i in np.unique(seg):
            sel = seg == i
            ts = t[sel]
            if i == 0:
                out[sel] = self._eval(kfs[0], ts)
            elif i == len(kfs):
                out[sel] = self._eval(kfs[-1], ts)
            else:
                a, b = kfs[i - 1], kfs[i]
                w = (ts - a.frame) / (b.frame - a.frame)
                va, vb = self._eval(a, ts), self._eval(b, ts)
                with np.errstate(all="ignore"):
                    out[sel] = np.where(w == 0, va, np.where(w == 1, vb, va + (vb - va) * w))
        lo, hi, _ = RANGES.get(self.key, DEFAULT_RANGE)
        bad = ~(np.isfinite(out) & (out >= lo) & (out <= hi))
        if bad.any():
            i = int(np.argmax(bad))
            kf = next((k for k in reversed(kfs) if k.frame <= t[i]), kfs[0])
            _check_range_at(self, kf, int(t[i]), float(out[i]))
        return out

    def _eval(self, kf: Keyframe, t: np.ndarray) -> np.ndarray:
        if kf.constant is not None:
            return np.full_like(t, kf.constant)
        import numexpr  # lazily: only expressions of t need it

        try:
            with np.errstate(all="ignore"):
                v = numexpr.evaluate(kf.expr, local_dict={"t": t, **CONSTANTS}, global_dict={})
        except OverflowError:
            raise ScheduleError(self.key, self.text, kf.column, f"{kf.source!r} overflows (its result is too large for a number)") from None
        except Exception as exc:  # numexpr's own errors are of many types; each is one bad expression
            raise ScheduleError(self.key, self.text, kf.column, f"cannot evaluate {kf.source!r} ({exc})") from None
        return np.broadcast_to(np.asarray(v, dtype=np.float64), t.shape)


def _check_range_at(s: KeyframeSchedule, kf: Keyframe, t: int, v: float) -> None:
    """Raise the range error for frame ``t`` with a caret under the keyframe that produced it."""
    problem = _range_problem(s.key, t, v, repr(kf.source))
    if problem:
        raise ScheduleError(s.key, s.text, kf.column, problem)


# ----------------------------------------------------------------------------------------------
# Expressions


class _Checker:
    """Walks an expression's syntax tree: whitelisted nodes only, typed ``num`` or ``bool``, bounded."""

    def __init__(self, key: str, text: str, start: int):
        self.key, self.text, self.start = key, text, start
        self.nodes = 0
        self.uses_t = False

    def fail(self, node: ast.AST, problem: str):
        raise ScheduleError(self.key, self.text, self.start + getattr(node, "col_offset", 0), problem)

    def check(self, node: ast.AST) -> str:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.fail(node, f"the expression is too long (more than {MAX_NODES} parts); a schedule value is a short formula")
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                self.fail(node, f"{v!r} is not a number")
            if abs(v) > MAX_LITERAL:
                self.fail(node, f"the number {v:g} is too large; numbers in an expression lie within ±{MAX_LITERAL:g}")
            return "num"
        if isinstance(node, ast.Name):
            if node.id not in ("t", *CONSTANTS):
                what = "a function: call it, e.g. sin(t)" if node.id in FUNCTIONS else f"allowed: t, pi, e and {', '.join(FUNCTIONS)}"
                self.fail(node, f"unknown name {node.id!r} ({what})")
            self.uses_t |= node.id == "t"
            return "num"
        if isinstance(node, ast.UnaryOp):
            kind = self.check(node.operand)
            if isinstance(node.op, (ast.USub, ast.UAdd)):
                return self.expect(node.operand, kind, "num", "'-'")
            if isinstance(node.op, ast.Invert):
                return self.expect(node.operand, kind, "bool", "'~' (not)")
            self.fail(node, "'not' is not allowed; use '~(condition)' inside where(...)")
        if isinstance(node, ast.BinOp):
            if type(node.op) in _OPS:
                if isinstance(node.op, ast.Pow) and (self._has_pow(node.left) or self._has_pow(node.right)):
                    self.fail(node, "exponent towers (a**b**c) are not allowed; use one '**' per term")
                self.expect(node.left, self.check(node.left), "num", f"'{_OPS[type(node.op)]}'")
                return self.expect(node.right, self.check(node.right), "num", f"'{_OPS[type(node.op)]}'")
            if type(node.op) in _BOOL_OPS:
                sym = _BOOL_OPS[type(node.op)]
                self.expect(node.left, self.check(node.left), "bool", f"'{sym}'")
                self.expect(node.right, self.check(node.right), "bool", f"'{sym}'")
                return "bool"
            self.fail(node, "this operator is not allowed (allowed: + - * / % ** and, inside where, < <= > >= == != & | ~)")
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1 or not isinstance(node.ops[0], _COMPARE):
                self.fail(node, "use one comparison at a time, e.g. (t > 1) & (t < 5)")
            self.expect(node.left, self.check(node.left), "num", "a comparison")
            self.expect(node.comparators[0], self.check(node.comparators[0]), "num", "a comparison")
            return "bool"
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name not in FUNCTIONS:
                self.fail(node, f"unknown name {name or ast.unparse(node.func)!r} (allowed functions: {', '.join(FUNCTIONS)})")
            if node.keywords or len(node.args) != FUNCTIONS[name]:
                n = FUNCTIONS[name]
                self.fail(node, f"{name} takes {n} argument{'s' * (n > 1)}, given {len(node.args) + len(node.keywords)}")
            kinds = [self.check(a) for a in node.args]
            wanted = ["bool", "num", "num"] if name == "where" else ["num"] * len(kinds)
            for a, k, w in zip(node.args, kinds, wanted):
                self.expect(a, k, w, f"{name}(...)")
            return "num"
        self.fail(node, "this is not allowed in a schedule value (numbers, t, pi, e, + - * / % **, functions)")

    def expect(self, node: ast.AST, kind: str, wanted: str, where: str) -> str:
        if kind != wanted:
            if wanted == "num":
                self.fail(node, f"{where} needs a number here, not a condition; use where(condition, a, b)")
            self.fail(node, f"{where} needs a condition here, e.g. (t > 5)")
        return kind

    @staticmethod
    def _has_pow(node: ast.AST) -> bool:
        return any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow) for n in ast.walk(node))


class _Floats(ast.NodeTransformer):
    """Every literal becomes a float, so numexpr never computes with Python's unbounded integers."""

    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        return ast.copy_location(ast.Constant(float(node.value)), node)


def _check_expr(key: str, text: str, start: int, expr: str) -> tuple[str, bool]:
    """Check one keyframe value; return its numexpr text and whether it uses ``t``."""
    lead = len(expr) - len(expr.lstrip())
    body = expr.strip().replace("\n", " ").replace("\r", " ").replace("\t", " ")
    start += lead
    if not body:
        raise ScheduleError(key, text, start, "empty value")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # "1t" warns before it fails: the error says it
            tree = ast.parse(body, mode="eval")
    except SyntaxError as exc:
        odd = _ODD_CHAR.search(body)
        if odd:
            raise ScheduleError(key, text, start + odd.start(), f"unexpected character {odd.group()!r}") from None
        col = start + max(0, min(len(body), (exc.offset or 1) - 1))
        raise ScheduleError(key, text, col, f"not a valid expression ({exc.msg})") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ScheduleError(key, text, start, f"not a valid expression ({type(exc).__name__})") from None
    checker = _Checker(key, text, start)
    if checker.check(tree.body) != "num":
        checker.fail(tree.body, "a condition is not a value; use where(condition, a, b)")
    return ast.unparse(_Floats().visit(tree)), checker.uses_t


def _keyframe(key: str, text: str, frame: int, col: int, raw: str) -> Keyframe:
    """Build a keyframe, evaluating constants once so typos and bad values surface at parse time."""
    plain = _PLAIN_NUMBER.fullmatch(raw.strip())
    if plain:  # a plain number (1e300 included) is judged by the key's range, not the expression limits
        expr, uses_t = repr(float(raw)), False
    else:
        expr, uses_t = _check_expr(key, text, col, raw)
    col += len(raw) - len(raw.lstrip())
    kf = Keyframe(frame, expr, None, col, raw.strip())
    if uses_t:
        return kf
    v = float(raw) if plain else float(KeyframeSchedule(text, (kf,), key)._eval(kf, np.zeros(1))[0])
    if not math.isfinite(v):
        raise ScheduleError(key, text, col, f"{raw.strip()!r} is {v}; a value must be finite")
    lo, hi, note = RANGES.get(key, DEFAULT_RANGE)
    if not lo <= v <= hi:
        raise ScheduleError(key, text, col, f"{v:g} is out of range; allowed: {lo:g} .. {hi:g}" + (f" ({note})" if note else ""))
    return Keyframe(frame, expr, v, col, raw.strip())


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


_FRAME = re.compile(r"-?\d+")
_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _parse_text(text: str, key: str) -> KeyframeSchedule:
    if text.strip() == "":
        raise ScheduleError(key, text, 0, "empty schedule")
    if len(text) > MAX_TEXT:
        raise ConfigError(f"{key}: the schedule is {len(text)} characters long; at most {MAX_TEXT} are allowed")
    if ":" not in text:
        # a bare value such as "1.05" or "1 + 0.1*t" holds from frame 0 on
        return KeyframeSchedule(text, (_keyframe(key, text, 0, 0, text),), key)
    keyframes: dict[int, Keyframe] = {}
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        m = _FRAME.match(text, pos)
        if not m or len(m.group()) > 9:
            problem = "expected a frame number" if not m else f"frame numbers go up to {MAX_FRAME}"
            raise ScheduleError(key, text, min(pos, len(text) - 1), problem)
        frame = int(m.group())
        if frame < 0:
            raise ScheduleError(key, text, pos, "frame numbers start at 0")
        if frame > MAX_FRAME:
            raise ScheduleError(key, text, pos, f"frame numbers go up to {MAX_FRAME}")
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
        keyframes[frame] = _keyframe(key, text, frame, expr_start, expr)
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
    return KeyframeSchedule(text, tuple(keyframes[f] for f in sorted(keyframes)), key)


# ----------------------------------------------------------------------------------------------
# The entry


def parse_schedule(raw: Any, key: str = "schedule", base_dir: str | Path | None = None) -> Schedule:
    """Parse a number, keyframe text ``'0:(1.0), 30:(1.05)'`` or beat mapping ``{beats: song.wav, ...}``."""
    if isinstance(raw, Schedule):
        return raw
    if isinstance(raw, bool):
        raise ConfigError(f"{key}: {raw!r} is not a schedule; use a number, 'FRAME:(VALUE), ...' or {{beats: song.wav, pulse: ...}}")
    if isinstance(raw, (int, float)):
        v = float(raw)
        problem = _range_problem(key, 0, v, repr(raw))
        if problem:
            raise ConfigError(f"{key}: {problem}")
        return KeyframeSchedule(f"0:({v!r})", (Keyframe(0, repr(v), v, 3, repr(v)),), key)
    if isinstance(raw, dict):
        from vqclip.production.beats import parse_beats  # beats build on Schedule and RANGES defined here

        return parse_beats(raw, key, base_dir)
    if not isinstance(raw, str):
        raise ConfigError(f"{key}: {raw!r} is not a schedule; use a number, 'FRAME:(VALUE), ...' or {{beats: song.wav, pulse: ...}}")
    return _parse_text(raw, key)
