"""Kills: SIGTERM/SIGHUP save state like Ctrl-C; kill -9 at random points loses no frame and resumes to the same frames."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

from vqclip.production.render import render


@pytest.fixture
def echo(echo):
    """conftest's echo preset, 12 frames long, without a contact sheet."""
    return {**echo, "animation": {"frames": 12}, "output": {**echo["output"], "contact_sheet": False}}


def _pixels(folder):
    return [np.asarray(Image.open(p)) for p in sorted((folder / "frames").glob("*.png"))]


@pytest.fixture
def default_handlers():
    """SIGTERM and SIGHUP at their defaults during a test, whatever started pytest (nohup ignores SIGHUP)."""
    before = {sig: signal.signal(sig, signal.SIG_DFL) for sig in (signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in before.items():
        signal.signal(sig, handler)


def test_a_signal_ignored_at_the_start_stays_ignored():
    """Under nohup SIGHUP is ignored so the render outlives its terminal: it must not stop the render."""
    from vqclip.production.run import StopOnSigint

    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with StopOnSigint() as stop:
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.05)
            assert not stop.requested
            assert signal.getsignal(signal.SIGTERM) == stop._handler  # the others are still caught
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_save_state_like_ctrl_c(echo, tmp_path, sig, default_handlers):
    whole = render(echo, tmp_path / "whole")

    def send(e):
        if e["event"] == "iteration" and e["total_iteration"] == 8:
            os.kill(os.getpid(), sig)

    part = render(echo, tmp_path / "o", callback=send)
    assert part.stop_reason == "interrupted" and not part.completed and len(part.frames) == 4
    assert signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler)  # put back
    assert (tmp_path / "o" / "resume.pt").is_file()
    rest = render(echo, tmp_path / "o", resume=True)
    assert rest.completed and all(np.array_equal(a, b) for a, b in zip(_pixels(whole.out_dir), _pixels(rest.out_dir)))
    assert len(_pixels(rest.out_dir)) == 12
    assert not list((tmp_path / "o").glob(".*.tmp*"))


_CHILD = textwrap.dedent("""
    import sys, time
    from vqclip.production.engines import ENGINES
    from vqclip.production.render import render
    ENGINES["echo"] = "tests.test_render:EchoEngine"
    cfg = {cfg!r}
    slow = lambda e: time.sleep(0.004) if e["event"] == "iteration" else None
    render(cfg, sys.argv[1], callback=slow, resume=sys.argv[2] == "1", overwrite=True)
""")


def test_kill_9_at_random_points_loses_no_frame(echo, tmp_path):
    """SIGKILL a child render at 4 random moments; resuming (or restarting when it died before its first state) gives the same frames."""
    whole = _pixels(render(echo, tmp_path / "whole").out_dir)
    script = _CHILD.format(cfg=echo)
    env = dict(os.environ, PYTHONPATH=os.getcwd(), OMP_NUM_THREADS="1")
    rng = random.Random(15)
    for trial in range(4):
        out = tmp_path / f"k{trial}"
        child = subprocess.Popen([sys.executable, "-c", script, str(out), "0"], env=env)
        time.sleep(rng.uniform(1.0, 2.5))  # import time is ~1 s: kills land before, during and after the frames
        child.send_signal(signal.SIGKILL)
        child.wait()
        on_disk = _pixels(out) if out.exists() else []
        for got, want in zip(on_disk, whole):  # every frame already written is a whole, correct frame
            assert np.array_equal(got, want)
        again = subprocess.run([sys.executable, "-c", script, str(out), "1" if (out / "resume.pt").is_file() else "0"],
                               env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr[-2000:]
        final = _pixels(out)
        assert len(final) == 12 and all(np.array_equal(a, b) for a, b in zip(final, whole))


def test_disk_full_is_one_line_and_leaves_no_temp_file(tmp_path, monkeypatch):
    import errno

    from vqclip.errors import ConfigError
    from vqclip.production import resume

    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(resume.os, "fsync", full)
    with pytest.raises(ConfigError, match=r"^disk full: cannot write 'resume.pt' in '.*' \(1\.0 MiB needed, [\d.]+ MiB free\); free some space"):
        resume.atomic_write_bytes(tmp_path / "resume.pt", b"x" * 2**20)
    monkeypatch.setattr(resume.os, "fsync", real_fsync)
    assert list(tmp_path.iterdir()) == []  # neither the target nor its .resume.pt.tmp<pid>


def test_an_error_while_writing_keeps_the_previous_file(tmp_path, monkeypatch):
    from vqclip.production import resume

    target = tmp_path / "contact_sheet.png"
    target.write_bytes(b"old")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(resume.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        resume.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["contact_sheet.png"]
