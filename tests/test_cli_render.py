"""`vqclip render`: bad input exits 2 with one line; a tiny preset renders; --resume continues."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from vqclip.cli import main


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("vqclip: error: ")
    return err[0]


def test_bad_set_exits_2_with_one_line(capsys):
    assert main(["render", "default", "--set", "generation.optimzer=adam"]) == 2
    line = _one_error_line(capsys)
    assert "generation.optimzer: unknown setting; did you mean 'generation.optimizer'?" in line
    assert main(["render", "default", "--set", "size.width=huge"]) == 2
    assert "size.width: 'huge' is not allowed; use a whole number 16..4096" in _one_error_line(capsys)
    assert main(["render", "no-such-preset"]) == 2
    assert "'no-such-preset' is neither a file nor a bundled preset" in _one_error_line(capsys)


def test_bad_set_through_the_real_console_entry(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "vqclip", "render", "default", "-o", str(tmp_path), "--set", "generation.lr=-1"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "vqclip: error: generation.lr: -1 is not allowed; use a number > 0 and <= 100"
    assert "Traceback" not in proc.stderr


def test_render_and_resume_from_the_cli(tiny_preset, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["render", str(tiny_preset), "-o", str(out), "--resume"]) == 2
    assert "does not exist; there is no render to continue" in _one_error_line(capsys)
    assert main(["render", str(tiny_preset), "-o", str(out), "--set", "generation.max_iterations=3"]) == 0
    err = capsys.readouterr().err
    assert "stopped at generation.max_iterations after 1 of 2 frames" in err
    assert f"-o {out} --resume --set generation.max_iterations=-1" in err
    assert main(["render", str(tiny_preset), "-o", str(out), "--resume"]) == 0
    assert "2 frames, video" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["000000.png", "000001.png"]
    assert (out / "video.mp4").is_file() and (out / "settings.yaml").is_file()


@pytest.fixture
def tiny_preset(taming_checkpoints, open_clip_files, tmp_path):
    """A preset file with local tiny model files."""
    config, ckpt, _ = taming_checkpoints["vq"]
    preset = {
        "description": "tiny test preset",
        "prompts": {"texts": "a red circle"},
        "size": {"width": 32, "height": 32},
        "models": {
            "vqgan": {"config": str(config), "checkpoint": str(ckpt)},
            "clip": [{"spec": {k: str(v) for k, v in open_clip_files.items()}}],
        },
        "generation": {"seed": 1, "iterations_first_frame": 4, "iterations_per_frame": 2, "cutouts": {"cutn": 2}, "device": "cpu"},
        "animation": {"frames": 2, "zoom": 1.1},
        "output": {"fps": 4},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path


def test_default_preset_renders_with_the_toy_pack(tmp_path, capsys):
    out = tmp_path / "default"
    code = main(["render", "default", "-o", str(out), "--set", "animation.frames=2", "--set", "size.width=64",
                 "--set", "size.height=48", "--set", "generation.iterations_first_frame=3",
                 "--set", "generation.iterations_per_frame=2", "--set", "output.images_interval=0"])
    assert code == 0, capsys.readouterr().err
    from PIL import Image

    frames = sorted((out / "frames").glob("*.png"))
    assert [Image.open(p).size for p in frames] == [(64, 48), (64, 48)]
    assert Image.open(frames[0]).text["model"] == "vqgan:toy, clip:toy"
