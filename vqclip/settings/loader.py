"""The one typed settings loader: YAML in, validated dataclasses out, for render and post presets alike.

- :func:`read_yaml` reads a preset file: UTF-8 only, duplicate keys refused, aliases bounded.
- :func:`build` turns a mapping into a dataclass from its fields' type hints; a field's
  ``metadata`` may add ``range: (lo, hi)`` (either side None; a zero lower bound is open for numbers
  unless ``open_low: False``), ``also: (-1,)`` (values allowed outside the range), ``choices: (...)``
  (or a function returning them) and ``fold: True`` (choices match in any case, stored lower-case);
  unknown keys get a did-you-mean, at this level or, through ``elsewhere``, in another section. A bare
  string may stand for one field of a dataclass (``shorthand``) and list fields name their item type
  (``list_items``), so the loader itself knows no schema.
- :func:`apply_override` applies one ``a.b=value`` (the value read as YAML) to a preset dict.

Every error is one :class:`ConfigError` naming the setting, the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml

from vqclip.errors import ConfigError

__all__ = ["did_you_mean", "read_yaml", "build", "parse_override_value", "apply_override", "MAX_ALIASES"]

MAX_ALIASES = 100  # anchors and aliases a preset may use: far above real presets, far below a "billion laughs"
MAX_DEPTH = 40  # nesting a preset may use: real ones need 5; thousands of "[" would exhaust Python's stack

# Numbers as YAML 1.2 (and JSON, and Python) read them: 1e-3 is a number, 1:30 is text (YAML 1.1 read it
# as 90, base 60), 010 is ten. One table for preset files and --set values alike.
_INT_RE = re.compile(r"^(?:[-+]?[0-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+)$")
_FLOAT_RE = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


def did_you_mean(word: Any, choices) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, counts aliases, bounds nesting and reads numbers as YAML 1.2."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream):
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases (*name) at line {mark.line + 1}")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"nested more than {MAX_DEPTH} levels deep at line {mark.line + 1}")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_yaml_int(self, node):
        text = str(self.construct_scalar(node)).replace("_", "")
        try:
            if text[:2] in ("0x", "0o"):
                return int(text, 16 if text[1] == "x" else 8)
            return int(text, 10)
        except ValueError:
            raise yaml.YAMLError(f"{text!r} at line {node.start_mark.line + 1} is tagged !!int but is not a whole number") from None

    def construct_yaml_float(self, node):
        text = str(self.construct_scalar(node)).replace("_", "").lower()
        try:
            return float({".inf": "inf", "+.inf": "inf", "-.inf": "-inf", ".nan": "nan"}.get(text, text))
        except ValueError:
            raise yaml.YAMLError(f"{text!r} at line {node.start_mark.line + 1} is tagged !!float but is not a number") from None


    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.YAMLError(f"the key {key!r} appears twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1}); keep one")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


for _first in "-+0123456789":
    _StrictLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT_RE, [_first])
for _first in "-+.0123456789":
    _StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, [_first])
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)


def _check_text(value: Any, what: str, path: str = "") -> None:
    """Refuse text that cannot be written as UTF-8 (a lone surrogate such as "\\ud800"): settings.yaml and PNG metadata need it."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigError(f"{path or what}: the text has a lone surrogate {value[exc.start]!r} at character {exc.start} "
                              f"(not a real character); use plain UTF-8 text") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(k, what, path)
            _check_text(v, what, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_text(v, what, f"{path}.{i}" if path else str(i))


def read_yaml(source: str | Path, what: str) -> Any:
    """Parse a YAML file (a Path) or text (a str); ``what`` names it in the one-line error."""
    if isinstance(source, Path):
        try:
            text = source.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{what}: not UTF-8 text (byte {exc.start} is {source.read_bytes()[exc.start]:#04x}); "
                              "save the file as UTF-8") from None
    else:
        text = source
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{what}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}{_colon_hint(exc, text)}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a constructor refusing a tagged value (!!timestamp x, !!binary ...)
        raise ConfigError(f"{what}: a value cannot be read ({exc}); remove the !!tag or fix the value") from None
    _check_text(data, what)
    return data


def _colon_hint(exc: yaml.YAMLError, text: str) -> str:
    """For an unquoted value with ": " in it (a prompt like ``a fox: at dawn``): how to quote it."""
    mark = getattr(exc, "problem_mark", None)
    if mark is None or getattr(exc, "problem", "") != "mapping values are not allowed here":
        return ""
    line = text.splitlines()[mark.line] if mark.line < len(text.splitlines()) else ""
    key, sep, value = line.partition(": ")
    if not sep or not value.strip() or value.lstrip()[:1] in "\"'":
        return ""
    quoted = value.strip().replace('"', '\\"')
    return f'; a colon inside a value needs quotes: {key.strip()}: "{quoted}"'



# ---------------------------------------------------------------------------------------------- build


def _type_name(tp: Any) -> str:
    return {float: "a number", int: "a whole number", str: "text", bool: "true or false", list: "a list"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _span(meta: typing.Mapping, whole: bool) -> str:
    """``1..1024``, ``> 0 and <= 10``, ``>= 1 or -1``: what a field's ``range`` (and ``also``) metadata allows, in words."""
    lo, hi = meta["range"]
    open_low = _open_low(meta, whole)
    if lo is not None and hi is not None:
        text = f"{lo}..{hi}" if whole else f"> {lo} and <= {hi}" if open_low else f"from {lo} to {hi}"
    else:
        text = f"{'>' if open_low else '>='} {lo}" if lo is not None else f"<= {hi}"
    return text + "".join(f" or {a}" for a in meta.get("also", ()))


def _open_low(meta: typing.Mapping, whole: bool) -> bool:
    """A zero lower bound excludes zero for numbers (a step size, a weight), unless the field says otherwise."""
    return not whole and meta["range"][0] == 0 and meta.get("open_low", True)


def _allowed(meta: typing.Mapping, whole: bool) -> str:
    return f"use {'a whole number' if whole else 'a number'} {_span(meta, whole)}"


def _check_meta(where: str, value: Any, meta: typing.Mapping, shown: Any) -> Any:
    """Apply a field's ``choices``/``fold`` and ``range``/``also`` metadata; ``shown`` is the value as the user wrote it."""
    choices = meta.get("choices")
    if choices is not None and value is not None:
        choices = list(choices() if callable(choices) else choices)
        if meta.get("fold") and isinstance(value, str):
            value = value.lower()
        if value not in choices:
            raise ConfigError(f"{where}: {shown!r} is not allowed; use one of {', '.join(map(str, choices))}{did_you_mean(value, choices)}")
    bounds = meta.get("range")
    if bounds is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and value not in meta.get("also", ()):
        lo, hi = bounds
        whole = isinstance(value, int)
        if (lo is not None and (value < lo or (value == lo and _open_low(meta, whole)))) or (hi is not None and value > hi):
            raise ConfigError(f"{where}: {shown!r} is not allowed; {_allowed(meta, whole)}")
    return value


def _convert(value: Any, tp: Any, where: str, shorthand: dict, list_items: dict, owner: type | None = None, name: str = "",
             elsewhere=None) -> Any:
    """Check and convert one YAML value to the annotated type; ConfigError naming ``where`` if it does not fit."""
    conv = lambda v, t, w, o=None, n="": _convert(v, t, w, shorthand, list_items, o, n, elsewhere)  # noqa: E731
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            if type(None) in typing.get_args(tp):
                return None
            raise ConfigError(f"{where}: a value is required here")
        for arg in args:  # list before str so [x, y] is not taken for text; str before numbers for quality
            try:
                return conv(value, arg, where, owner, name)
            except ConfigError as exc:
                # A list given for a list type (a mapping for a dataclass) failed inside: that error is the one to see.
                if len(args) == 1 or (isinstance(value, list) and (arg is list or typing.get_origin(arg) is list)) \
                        or (isinstance(value, dict) and dataclasses.is_dataclass(arg)):
                    raise exc from None
        raise ConfigError(f"{where}: {value!r} is not allowed; expected {' or '.join(_type_name(a) for a in args)}")
    if value is None:
        raise ConfigError(f"{where}: a value is required here (expected {_type_name(tp)})")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, str) and tp in shorthand:
            value = {shorthand[tp]: value}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of settings, got {value!r}")
        return build(tp, value, where, shorthand=shorthand, list_items=list_items, elsewhere=elsewhere)
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {value!r} is not allowed; this section is a mapping of settings (key: value)")
        return value
    if tp is list or origin is list:
        item_tp = (typing.get_args(tp) or [list_items.get((owner, name), Any)])[0]
        if not isinstance(value, (list, tuple)):
            if item_tp in shorthand or item_tp is str:  # one item given without a list
                value = [value]
            else:
                raise ConfigError(f"{where}: {value!r} is not allowed; expected a list")
        return list(value) if item_tp is Any else [conv(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: {value!r} is not allowed; use true or false")
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{where}: {value!r} is not allowed; expected a whole number")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}: {value!r} is not allowed; expected a number")
        return float(value)
    if tp is str:
        if isinstance(value, (bool, list, dict)):
            raise ConfigError(f"{where}: {value!r} is not allowed; expected text")
        return str(value)
    return value


def build(cls: type, data: dict, where: str = "", *, shorthand: dict | None = None, list_items: dict | None = None,
          skip: typing.Collection[str] = (), elsewhere=None) -> Any:
    """A dataclass from a mapping: unknown keys rejected with a did-you-mean, each value converted and range-checked.

    Keys in ``skip`` are allowed here but built by the caller; ``elsewhere(key)`` names the full path of a
    setting of that name in another section (``generation.width`` -> ``size.width``) for the did-you-mean.
    """
    shorthand, list_items = shorthand or {}, list_items or {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {data!r} is not allowed; this section is a mapping of settings (key: value)")
    kwargs = {}
    for key, value in data.items():
        key_s = str(key)
        sub = f"{where}.{key_s}" if where else key_s
        if key_s in skip:
            continue
        if key_s not in fields:
            allowed = [*fields, *skip]
            close = difflib.get_close_matches(key_s, allowed, n=1, cutoff=0.6)
            other = (f"{where}.{close[0]}" if where else close[0]) if close else elsewhere(key_s) if elsewhere else None
            hint = f"; did you mean {other!r}?" if other else ""
            raise ConfigError(f"{sub}: unknown setting{hint} (allowed here: {', '.join(allowed)})")
        meta = fields[key_s].metadata
        try:
            converted = _convert(value, hints[key_s], sub, shorthand, list_items, cls, key_s, elsewhere)
        except ConfigError:
            base = [a for a in typing.get_args(hints[key_s]) if a is not type(None)] or [hints[key_s]]
            if meta.get("range") is None or base[0] not in (int, float):
                raise
            raise ConfigError(f"{sub}: {value!r} is not allowed; {_allowed(meta, base[0] is int)}") from None
        kwargs[key_s] = _check_meta(sub, converted, meta, value)
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------------- overrides


def parse_override_value(raw: str) -> Any:
    """The value of a ``key=value`` override, read as YAML; text that only looks like a mapping stays text."""
    _check_text(raw, "--set value")
    try:
        value = yaml.load(raw, Loader=_StrictLoader) if raw.strip() else ""  # noqa: S506 - the same reader as preset files
    except yaml.YAMLError as exc:
        if "tagged" in str(exc) or "nested more" in str(exc) or "aliases" in str(exc):
            raise ConfigError(f"--set value {raw[:60]!r}: {exc}") from None
        return raw
    except (ValueError, TypeError, OverflowError) as exc:
        raise ConfigError(f"--set value {raw[:60]!r} cannot be read ({exc}); remove the !!tag or fix the value") from None
    # "a cat: 2" reads as a YAML mapping; a prompt or a title is what was meant unless a mapping was written.
    if isinstance(value, dict) and not raw.strip().startswith("{"):
        return raw
    return value


def apply_override(data: dict, item: str, shorthand: dict[str, str] | None = None, strip_prefix: str | None = None) -> dict:
    """Apply one ``key.sub=value`` in place (list items by index: ``scenes.0.speed=0.5``); returns ``data``.

    ``shorthand`` maps a list or key name to the field a bare string entry stands for (``clip: spec``), so
    ``models.clip.0.weight=2`` works on ``clip: [toy]``; ``strip_prefix`` drops a leading section name.
    """
    shorthand = shorthand or {}
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"--set {item!r}: not allowed; write KEY=VALUE, e.g. generation.seed=3 (key.sub=value)")
    key, _, raw = item.partition("=")
    parts = key.strip().split(".")
    if strip_prefix and len(parts) > 1 and parts[0] == strip_prefix:
        parts = parts[1:]
    if not key.strip() or any(not p for p in parts):
        raise ConfigError(f"--set {item!r}: {key.strip()!r} is not a key; write section.key=value, e.g. generation.seed=3")
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            idx = _index(node, part, where)
            parent = parts[depth - 1] if depth else ""
            if isinstance(node[idx], str) and parent in shorthand:  # a bare entry becomes {field: entry}
                node[idx] = {shorthand[parent]: node[idx]}
            node = node[idx]
        else:
            nxt = node.get(part)
            if nxt is None:
                if parts[depth + 1].isdigit():
                    raise ConfigError(f"--set {item!r}: there is no list {where} to index; set the whole list, e.g. {where}='[...]'")
                nxt = node[part] = {}
            elif isinstance(nxt, str) and part in shorthand:
                nxt = node[part] = {shorthand[part]: nxt}
            node = nxt
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"--set {item!r}: {where} is a value, not a section")
    value = parse_override_value(raw)
    if isinstance(node, list):
        node[_index(node, parts[-1], key.strip())] = value
    else:
        node[parts[-1]] = value
    return data


def _index(node: list, part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--set {where}: {part!r} is not an index of this list; use 0..{len(node) - 1}")
    return int(part)
