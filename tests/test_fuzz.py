"""Fuzz: >= 500 seeded bad presets, overrides, schedules, post files, media and resume files through the loaders.

Every case must end in ONE clear line (a VqclipError: ConfigError / ModelError) within its time limit: not a
traceback, not silently accepted, not a hang. A sample goes through the real CLI (exit 2, one stderr line).
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vqclip.errors import VqclipError

LIMIT_S = 5.0  # per case: the slowest loader call (a beat file analysed) takes well under a second
BASE = {"prompts": {"texts": "a cat"}, "size": {"width": 64, "height": 64}, "models": {"vqgan": "toy", "clip": ["toy"]},
        "generation": {"device": "cpu", "seed": 1}, "animation": {"frames": 4}}

DEEP = "[" * 60 + "]" * 60
BAD_NUMBERS = ["abc", "[1, 2]", "{a: 1}", "nan", "inf", "-inf", "1e400", "-7", "1:30", "!!int abc", "!!float x",
               DEEP, "\ud800", "0x", "1e-400x", "'12'", "true", "1_000_000_000_000"]
NUMBER_KEYS = ["size.width", "size.height", "generation.seed", "generation.lr", "generation.iterations_first_frame",
               "generation.iterations_per_frame", "animation.frames", "output.fps", "output.images_interval",
               "generation.cutouts.cutn", "generation.cutouts.cut_pow"]
BAD_CHOICES = ["nope", "5", "[a]", "{a: 1}", "\ud800", DEEP, "!!int x", "ADAMX", "gpu"]
CHOICE_KEYS = ["generation.engine", "generation.optimizer", "generation.device", "generation.precision",
               "animation.border_mode", "generation.objective"]
BAD_SCHEDULES = ["0:(", "0:(1e308)", "0:(nan)", "0:(1/0)", "0:(9**9**9)", "0:(__import__('os').getcwd())", "x:(1)",
                 "0:(" + "(" * 400 + "1" + ")" * 400 + ")", "-5:(1)", "0:(t" + "*t" * 5000 + ")", "0:(1e9)", "{beats: 3}",
                 "{beats: missing.wav, base: 1}", "[1, 2]", "0:(1)) 3:(", "\ud800"]
SCHEDULE_KEYS = ["animation.zoom", "animation.angle", "animation.translation_x", "animation.translation_y"]
BAD_KEYS = ["generation.lrr=0.1", "foo=1", "generation.cutn=4", "size.depth=3", "prompts.text=a", "animation.frame=3",
            "generation=3", "output.fps.x=1", "prompts.scenes.5.frames=2", "models.clip.9.weight=1", "=3", "size..width=3"]
BAD_FILES = [b"\xff\xfe\x00bad", b"prompts: [unclosed", b"a: &a [*a, *a]\n" + b"b: &b [*a, *a]\n" * 200,
             b"- just\n- a list\n", b"42\n", DEEP.encode(), b"prompts: !!python/object/apply:os.getcwd []\n",
             b"prompts:\n\ttexts: a\n", b"size: {width: 64, width: 32}\n", b"prompts: {texts: \"\\ud800\"}\n",
             b"prompts: {texts: a fox: at dawn}\n", b"generation: {seed: !!int abc}\n", b"\x00\x00\x00", b"prompts: {texts: a}\n" * 3]
BAD_POST = [{"post": {"fps": -1}}, {"post": {"aspect": "0:9"}}, {"post": {"aspect": "a:b"}}, {"post": {"output": {"quality": 99}}},
            {"post": {"transition": "nope"}}, {"post": {"scenes": [{"speed": -1}]}},
            {"post": {"width": 10**9}}, {"post": {"titles": [{"text": "a", "size": -1}]}}, {"post": {"fade_in": "nan"}},
            {"post": {"music": {"path": "missing.mp3"}}},
            {"post": {"titles": [{"text": "\ud800"}]}}, {"post": {"unknown_key": 1}}, {"post": []}, {"post": {"fit": 3}}]


def _classify(fn) -> tuple[str, str]:
    """Run ``fn`` under a SIGALRM limit: clear | traceback | accepted | hang, with the message."""
    def alarm(signum, frame):
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, LIMIT_S)
    try:
        fn()
    except TimeoutError:
        return "hang", ""
    except VqclipError as exc:
        msg = str(exc)
        # a schedule error adds the text with a caret under the column: still one error, no traceback
        return ("clear" if msg.strip() and "Traceback" not in msg else "traceback"), msg
    except BaseException as exc:  # noqa: BLE001 - the point is to see what escapes
        return "traceback", f"{type(exc).__name__}: {exc}"[:300]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return "accepted", ""


def _cases(tmp: Path) -> list[tuple[str, object]]:
    """The seeded bad inputs, each a (label, zero-argument call)."""
    from vqclip.production.resume import load_state
    from vqclip.production.schedule import parse_schedule
    from vqclip.settings.post import load_post_config
    from vqclip.settings.render import load_config

    rng = random.Random(15)
    cases: list[tuple[str, object]] = []

    def override(items):
        cases.append((f"--set {items}", lambda: load_config(dict(BASE), list(items))))

    for key in NUMBER_KEYS:
        for v in BAD_NUMBERS:
            override([f"{key}={v}"])
    for key in CHOICE_KEYS:
        for v in BAD_CHOICES:
            override([f"{key}={v}"])
    for key in SCHEDULE_KEYS:
        for v in BAD_SCHEDULES:
            override([f"{key}={v}"])
    for item in BAD_KEYS:
        override([item])
    for _ in range(60):  # a good override or two around one bad one: the bad one is still found
        key = rng.choice(NUMBER_KEYS)
        good = rng.sample([g for g in ["generation.seed=3", "animation.frames=2", "output.fps=24", "size.width=96"]
                           if not g.startswith(key + "=")], 2)
        bad = f"{key}={rng.choice(BAD_NUMBERS)}"
        override(good[:1] + [bad] + good[1:])
    for i, raw in enumerate(BAD_SCHEDULES):
        cases.append((f"schedule {raw[:40]!r}", lambda raw=raw: parse_schedule(yaml.safe_load(raw) if raw.startswith("{") else raw, "animation.zoom", tmp)))
    for i, data in enumerate(BAD_FILES):
        path = tmp / f"bad{i}.yaml"
        path.write_bytes(data)
        cases.append((f"preset file {data[:40]!r}", lambda path=path: load_config(path)))
    for _ in range(80):  # random byte flips and cuts of a good preset file
        text = bytearray(yaml.safe_dump(BASE).encode())
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(text))
            text[at:at + 1] = bytes([rng.choice(b"{}[]:&*!\t\xff\x00\"'%@`|>")])
        path = tmp / f"flip{len(cases)}.yaml"
        path.write_bytes(bytes(text))
        cases.append((f"flipped file {bytes(text)[:50]!r}", lambda path=path: _expect_rejected_or_same(load_config, path)))
    for data in BAD_POST:
        cases.append((f"post {data!r}"[:80], lambda data=data: load_post_config(data, base_dir=tmp)))
    # media: the files a preset points at, broken
    broken = {"empty.png": b"", "text.png": b"not an image", "half.png": b"\x89PNG\r\n\x1a\n\x00\x00", "empty.wav": b"",
              "noise.wav": b"RIFF\x10\x00\x00\x00WAVEfmt ", "text.mp3": b"hello"}
    for name, data in broken.items():
        (tmp / name).write_bytes(data)
    from vqclip.production.prompts import load_image01

    for name in ["empty.png", "text.png", "half.png", "missing.png"]:  # read before the run folder changes (render's models phase)
        cases.append((f"image {name}", lambda name=name: load_image01(tmp / name, (16, 16))))
    cases.append(("init_image missing", lambda: load_config(dict(BASE), [f"prompts.init_image={tmp / 'missing.png'}"])))
    for name in ["empty.wav", "noise.wav", "text.mp3", "missing.wav"]:
        cases.append((f"beats {name}", lambda name=name: parse_schedule({"beats": str(tmp / name), "base": 1.0, "pulse": 1.1}, "animation.zoom", tmp).values(8, 12.0)))
    # resume files: valid pickles/torch files of the wrong shape, and garbage
    import torch

    for i, obj in enumerate([{"x": 1}, [1, 2], torch.zeros(3), {"seed": "abc", "config_hash": 1}, {"seed": 1}, None, "text"]):
        folder = tmp / f"resume{i}"
        folder.mkdir()
        torch.save(obj, folder / "resume.pt")
        cases.append((f"resume.pt {obj!r}"[:60], lambda folder=folder: load_state(folder)))
    for i, data in enumerate([b"", b"garbage", b"PK\x03\x04" + b"\x00" * 30]):
        folder = tmp / f"resume_raw{i}"
        folder.mkdir()
        (folder / "resume.pt").write_bytes(data)
        cases.append((f"resume.pt bytes {data[:10]!r}", lambda folder=folder: load_state(folder)))
    return cases


def _expect_rejected_or_same(load, path):
    """A flipped byte may leave a valid preset (a comment, a quoted letter): then it must equal what it says."""
    import yaml as _yaml

    cfg = load(path)
    try:
        data = _yaml.safe_load(path.read_bytes().decode("utf-8"))
    except Exception:  # noqa: BLE001 - our loader accepted what PyYAML refuses: that is a real finding
        return cfg
    raise _Same(cfg, data)


class _Same(VqclipError):
    """A mutated file that is still a valid preset: counted as clear only when the loader agreed with PyYAML."""

    def __init__(self, cfg, data):
        super().__init__("valid after mutation")
        self.cfg, self.data = cfg, data


def test_fuzz_every_bad_input_is_one_clear_line(tmp_path, capsys):
    cases = _cases(tmp_path)
    assert len(cases) >= 500
    counts: collections.Counter = collections.Counter()
    bad: dict[str, list] = collections.defaultdict(list)
    for label, fn in cases:
        kind, msg = _classify(fn)
        counts[kind] += 1
        if kind != "clear":
            bad[kind].append(f"{label[:90]} -> {msg[:200]}")
    with capsys.disabled():
        print(f"\nfuzz: {len(cases)} cases: " + ", ".join(f"{k} {counts[k]}" for k in ("clear", "traceback", "accepted", "hang")))
    assert not bad, "\n".join(f"{k}: {x}" for k, xs in bad.items() for x in xs[:40])


CLI_SAMPLE = [["--set", "output.fps=0.0001"], ["--set", "generation.seed=1:30"], ["--set", "generation.seed=!!int abc"],
              ["--set", "animation.zoom=0:(9**9**9)"], ["--set", "generation.optimizr=sgd"], ["--set", "size.width=[1"],
              ["--set", "animation.frames=100000000"], ["--set", "generation.precision=fp16"],
              ["--set", "prompts.texts=\udcff"], ["--set", "generation.engine=nope"]]


@pytest.mark.slow  # ten interpreters importing torch: ~50 s on 2 shared cores
def test_a_sample_through_the_real_cli_exits_2_with_one_line(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump(BASE))
    env = dict(os.environ, PYTHONPATH=os.getcwd(), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-m", "vqclip", "render", str(preset), "-o", str(tmp_path / f"o{i}"), *args],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, errors="surrogateescape")
             for i, args in enumerate(CLI_SAMPLE)]
    for args, p in zip(CLI_SAMPLE, procs):
        out, err = p.communicate(timeout=120)
        lines = [x for x in err.splitlines() if x.strip()]
        # one error; a schedule's adds its text with a caret under the column (2 more lines), never a traceback
        assert p.returncode == 2 and lines[0].startswith("vqclip: error: ") and "Traceback" not in err, (args, p.returncode, err[-1500:])
        assert len(lines) == 1 or (len(lines) == 3 and lines[2].strip() == "^"), err
    assert not any((tmp_path / f"o{i}").exists() for i in range(len(CLI_SAMPLE)))  # nothing written for a bad input
