"""The output folder: one render at a time, never replacing a finished render, checks before any change."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from vqclip.errors import ConfigError
from vqclip.production.render import render
from vqclip.production.run import LOCK_FILE, next_free_folder
from vqclip.settings.render import load_config


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_render_goes_to_a_fresh_folder_and_overwrite_replaces(echo, tmp_path):
    first = render(echo, tmp_path / "r")
    first_pixels = np.asarray(Image.open(first.frames[0]))
    before = _snapshot(tmp_path / "r")
    echo["generation"]["seed"] = 3
    second = render(echo, tmp_path / "r")
    assert second.out_dir == tmp_path / "r-2" and second.completed
    assert _snapshot(tmp_path / "r") == before  # untouched
    assert next_free_folder(tmp_path / "r") == tmp_path / "r-3"
    third = render(echo, tmp_path / "r", overwrite=True)
    assert third.out_dir == tmp_path / "r" and third.seed == 3
    assert not np.array_equal(first_pixels, np.asarray(Image.open(third.frames[0])))
    assert not (tmp_path / "r" / LOCK_FILE).exists()  # released


def test_bad_device_or_precision_leaves_the_earlier_render_untouched(echo, tmp_path):
    render(echo, tmp_path / "r")
    before = _snapshot(tmp_path / "r")
    for bad, match in ((["generation.precision=fp16"], "generation.precision: 'fp16' is not allowed on cpu"),
                       (["generation.device=cuda:7"], "generation.device")):
        with pytest.raises(ConfigError, match=match):
            render(load_config(echo, bad), tmp_path / "r", overwrite=True)
        assert _snapshot(tmp_path / "r") == before
    with pytest.raises(ConfigError, match="generation.precision"):
        render(load_config(echo, ["generation.precision=fp16"]), tmp_path / "new")
    assert not (tmp_path / "new").exists()  # the folder made for the lock goes away again


def test_overwrite_removes_stale_outputs(echo, tmp_path):
    render(echo, tmp_path / "r")
    (tmp_path / "r" / "video.mp4").write_bytes(b"old")
    echo["animation"]["frames"] = 2
    echo["output"]["contact_sheet"] = False
    render(echo, tmp_path / "r", overwrite=True)
    names = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert "video.mp4" not in names and "contact_sheet.png" not in names
    assert sorted(p.name for p in (tmp_path / "r" / "frames").iterdir()) == ["000000.png", "000001.png"]


def test_resume_with_a_deleted_frame_is_a_clear_error(echo, tmp_path):
    part = render(echo, tmp_path / "r", callback=lambda e: "stop" if e["event"] == "iteration" and e["total_iteration"] == 8 else None)
    assert not part.completed and len(part.frames) == 4
    part.frames[1].unlink()
    with pytest.raises(ConfigError, match=r"--resume: .* lacks 000001.png"):
        render(echo, tmp_path / "r", resume=True)


def test_stale_lock_is_taken_over_and_live_lock_refused(echo, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK_FILE).write_text(f"{dead.pid}\n")
    assert render(echo, out).completed and render(echo, out).out_dir == tmp_path / "r-2"


def test_two_processes_one_folder(echo, tmp_path):
    """A live render holding the lock: a second render into that folder is one clear error."""
    out = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        from vqclip.production.run import RunFolder
        from vqclip.settings.render import load_config
        from vqclip.production.engines import ENGINES
        ENGINES["echo"] = "tests.test_render:EchoEngine"
        cfg = load_config({echo!r})
        run = RunFolder.open(Path({str(out)!r}), cfg, resume=False)
        print("locked", flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=os.getcwd()))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=rf"is in use by another render \(pid {holder.pid}"):
            render(echo, out, overwrite=True)
        with pytest.raises(ConfigError, match="is in use by another render"):
            render(echo, out, resume=True)
        assert render(echo, out).out_dir == tmp_path / "busy-2"  # the default goes elsewhere
    finally:
        holder.kill()
        holder.wait()
    assert render(echo, out, overwrite=True).completed  # the dead holder's lock is stale


def test_resume_from_the_folder_alone_needs_no_flags(echo, tmp_path, monkeypatch, capsys):
    from vqclip.production.render import render_cli

    monkeypatch.chdir(tmp_path)
    preset = tmp_path / "p.yaml"
    import yaml

    preset.write_text(yaml.safe_dump(echo))
    stop = lambda e: "stop" if e["event"] == "iteration" and e["total_iteration"] == 4 else None  # noqa: E731
    assert render_cli(str(preset), out="r", overrides=["generation.seed=9"], callback=stop) == 0
    assert len(list((tmp_path / "r" / "frames").iterdir())) == 2
    assert render_cli("r", resume=True) == 0  # the folder: its settings.yaml (seed 9 included), itself as OUT
    assert len(list((tmp_path / "r" / "frames").iterdir())) == 5
    assert render_cli(str(preset), out="r") == 0  # a new render of the same preset: r-2, said on stderr
    assert "r holds an earlier render, kept as it is; this one is in r-2" in capsys.readouterr().err


def test_an_unwritable_output_folder_is_one_line(echo, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"is a file, not a folder"):
        render(echo, tmp_path / "file")
    with pytest.raises(ConfigError, match=r"output folder '.*file/sub' cannot be written \(Not a directory\)"):
        render(echo, tmp_path / "file" / "sub")
