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
        # numexpr operators that crashed or hung inside numexpr now end here, at the right character
        ("0:(9**9**9)", 3, "exponent towers"),
        ("0:((2**t)**2)", 3, "exponent towers"),
        ("0:(t&1)", 3, "'&' needs a condition"),
        ("~t", 1, "needs a condition"),
        ("0:(arctan2(t))", 3, "arctan2 takes 2 arguments, given 1"),
        ("0:(10**400)", 3, "overflows"),
        ("0:(1 +)", 3, "not a valid expression"),
        ("0:(t > 3)", 3, "a condition is not a value"),
        ("0:(t.real)", 3, "not allowed in a schedule value"),
        ("0:(1//2)", 3, "operator is not allowed"),
        ("0:(t*1e300)", 5, "too large"),
        ("0:(sin)", 3, "unknown name 'sin' (a function"),
        ("5:(1), 20000000:(2)", 7, "frame numbers go up to"),
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


def test_expression_towers_and_huge_values_end_fast():
    """The old evaluator computed 9**9**9 with Python integers and never returned."""
    import time

    t0 = time.perf_counter()
    for text in ("0:(9**9**9)", "0:(9**(9**9))", "0:(" + "(" * 300 + "1" + ")" * 300 + ")", "0:(" + "t+" * 5000 + "1)"):
        with pytest.raises(ConfigError, match="animation.angle"):
            parse_schedule(text, "animation.angle")
    assert time.perf_counter() - t0 < 2
    with pytest.raises(ConfigError, match="at most 20000"):
        parse_schedule("0:(1), " * 5000 + "1:(1)", "animation.angle")


@pytest.mark.parametrize(
    "key, raw, words",
    [
        ("animation.translation_x", 1e300, "allowed: -4096 .. 4096 (pixels per frame)"),
        ("animation.translation_x", "1e300", "allowed: -4096 .. 4096 (pixels per frame)"),  # as --set gives it
        ("animation.angle", "0:(0), 5:(1e999)", "'1e999' is inf; a value must be finite"),
        ("animation.translation_y", "0:(-5000)", "allowed: -4096 .. 4096"),
        ("animation.angle", "0:(0), 10:(720)", "allowed: -360 .. 360 (degrees per frame)"),
        ("animation.zoom", 0, "allowed: 0.01 .. 100"),
    ],
)
def test_animation_values_outside_their_range_name_the_range(key, raw, words):
    with pytest.raises(ConfigError) as info:
        parse_schedule(raw, key).values(20)
    assert str(info.value).startswith(key) and words in str(info.value)


def test_expression_values_are_checked_on_every_frame():
    s = parse_schedule("0:(2**t)", "animation.angle")  # fine at parse time (t = 0 gives 1)
    assert s.values(9)[-1] == 256.0
    with pytest.raises(ConfigError) as info:
        s.values(10)
    msg = str(info.value)
    assert "'2**t' gives 512 at frame 9" in msg and "-360 .. 360" in msg
    assert msg.splitlines()[2].index("^") - 4 == 3  # the caret is under the keyframe's value
    with pytest.raises(ConfigError, match="gives inf at frame 0; a value must be a finite number"):
        parse_schedule("0:(1/t)", "animation.zoom").values(3)
    with pytest.raises(ConfigError, match="nan"):
        parse_schedule("log(t - 5)", "animation.angle").values(3)


def test_conditions_work_inside_where():
    s = parse_schedule("0:(where((t > 1) & ~(t > 3), 1.1, 1.0))", "animation.zoom")
    assert s.values(6) == pytest.approx([1.0, 1.0, 1.1, 1.1, 1.0, 1.0])
    assert parse_schedule("arctan2(t, 1) + floor(t/2) + ceil(0.5)").values(3) == pytest.approx(
        [1.0, 1.0 + 0.7853981633974483, 2.0 + 1.1071487177940904])


def test_to_preset_gives_the_text():
    assert parse_schedule("0:(1.0), 30:(1.05)", "animation.zoom").to_preset() == "0:(1.0), 30:(1.05)"
    assert parse_schedule(1.5, "animation.zoom").values(2) == [1.5, 1.5]


def test_non_schedules_are_config_errors():
    for bad in (True, [1, 2], float("inf")):
        with pytest.raises(ConfigError, match="animation.angle"):
            parse_schedule(bad, "animation.angle")


def test_fuzzed_schedules_end_as_config_errors_quickly():
    """Seeded random strings from the grammar's pieces: each parses or is one ConfigError, none is slow."""
    import random
    import time
    import warnings

    pieces = ["t", "1", "0", "9", "1e300", "-", "+", "*", "/", "**", "%", "&", "|", "~", "(", ")", ",", ":",
              "sin(", "arctan2(", "where(", "<", ">", "==", "pi", ".", " ", "'", "$", "\n", "not", "lambda",
              "[", "{", "x", "__class__", "1.5", "10**400", "9**9**9"]
    rng = random.Random(0)
    outcomes = {"ok": 0, "error": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning leaking out of the parser is a failure too
        for _ in range(500):
            text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 25)))
            if rng.random() < 0.5:
                text = f"{rng.randint(0, 20)}:({text})"
            t0 = time.perf_counter()
            try:
                values = parse_schedule(text, "animation.angle").values(50)
                assert all(-360 <= v <= 360 for v in values)
                outcomes["ok"] += 1
            except ConfigError as exc:
                assert str(exc).startswith("animation.angle")
                outcomes["error"] += 1
            assert time.perf_counter() - t0 < 1.0, text
    assert outcomes["ok"] >= 1 and outcomes["error"] > 400  # both paths taken
