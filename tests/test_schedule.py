"""Keyframe schedules: linear ramps, expressions of t, and errors that point at the character."""

import pytest

from vqclip.errors import ConfigError
from vqclip.production.schedule import ScheduleError, parse_schedule


def test_linear_between_keyframes_and_holds_outside():
    s = parse_schedule("0:(1.0), 30:(1.06)", "animation.zoom")
    assert s.value(0) == 1.0
    assert s.value(15) == pytest.approx(1.03)
    assert s.value(30) == pytest.approx(1.06)
    assert s.value(99) == pytest.approx(1.06)
    late = parse_schedule("10:(2), 20:(4)")
    assert late.values(12)[:11] == [2.0] * 11 and late.value(15) == pytest.approx(3.0)


def test_numbers_bare_values_and_unordered_keyframes():
    assert parse_schedule(1.5).values(3) == [1.5, 1.5, 1.5]
    assert parse_schedule("1.02").value(7) == pytest.approx(1.02)
    assert parse_schedule("10: 3, 0: 1").value(5) == pytest.approx(2.0)


def test_expressions_of_t_use_numexpr_functions():
    s = parse_schedule("0:(1 + 0.1*sin(t*pi/2))")
    assert s.values(3) == pytest.approx([1.0, 1.1, 1.0])
    assert parse_schedule("where(t > 1, 5, 1)").values(3) == [1.0, 1.0, 5.0]
    # two expressions blend linearly between their keyframes
    assert parse_schedule("0:(t), 10:(2*t)").value(5) == pytest.approx(7.5)


@pytest.mark.parametrize(
    "text, column, words",
    [
        ("0:(1.0), 30:(1.05", 12, "never closed"),
        ("0:(1.0) 30:(1)", 8, "expected ','"),
        ("0:(foo(t))", 3, "unknown name 'foo'"),
        ("0:(__import__('os'))", 3, "unknown name '__import__'"),
        ("0:(1), 0:(2)", 7, "given twice"),
        ("0:(1),", 5, "trailing ','"),
        ("0:(1$2)", 4, "unexpected character '$'"),
        ("a:(1)", 0, "expected a frame number"),
        ("0:()", 3, "empty value"),
        ("0:(1/0)", 3, "cannot evaluate"),
    ],
)
def test_errors_name_the_key_and_point_at_the_character(text, column, words):
    with pytest.raises(ScheduleError) as info:
        parse_schedule(text, "animation.zoom")
    err = info.value
    assert err.column == column, str(err)
    msg = str(err)
    assert msg.startswith(f"animation.zoom={text!r}") and words in msg
    src, caret = msg.splitlines()[1:3]
    assert src.strip() == text and caret.index("^") - 4 == column


def test_non_schedules_are_config_errors():
    for bad in (True, [1, 2], float("inf")):
        with pytest.raises(ConfigError, match="animation.angle"):
            parse_schedule(bad, "animation.angle")
