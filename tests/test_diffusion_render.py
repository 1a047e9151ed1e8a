"""Both diffusion engines through render(): run folder, events, Stop and resume, settings errors (tiny random SD)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from PIL import Image


from tests.helpers_diffusion import dummy_motion_adapter_folder, dummy_sd_folder
from vqclip.errors import ConfigError
from vqclip.production.render import render
from vqclip.settings.render import load_config


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("dr")
    return dummy_sd_folder(root / "sd"), dummy_motion_adapter_folder(root / "adapter")


def preset(folders, engine: str, **options) -> dict:
    models = {"diffusion": {"path": str(folders[0])}}
    if engine == "animatediff":
        models["motion_adapter"] = {"path": str(folders[1])}
    return {
        "prompts": {"scenes": [{"texts": "a red fox", "frames": 3}, {"texts": "blue sea", "frames": 2}]},
        "size": {"width": 32, "height": 32},
        "models": models,
        "generation": {"engine": engine, "seed": 4, "device": "cpu", engine: {"steps": 3, "guidance_scale": 2.0, **options}},
        "animation": {"frames": 5, **({"translation_x": 4} if engine == "t2v_zero" else {})},
        "output": {"images_interval": 2, "video": False, "contact_sheet": False},
    }


def pixels(result):
    return [np.asarray(Image.open(p)) for p in result.frames]


T2V = {"chunk_size": 3, "noise_timestep": 800, "motion_timestep": 500}


def test_t2v_zero_renders_chunks_and_resumes_to_the_same_frames(tmp_path, folders):
    cfg = load_config(preset(folders, "t2v_zero", **T2V))
    events = []
    whole = render(cfg, tmp_path / "whole", callback=events.append)
    steps = [e for e in events if e["event"] == "iteration"]
    # steps 667, 334, 1: frame 0 alone to T′ (1 step: T=800 is the first), then 3 joint steps per chunk
    # chunks [0,1,2] [3,4] (+ the anchor)
    assert whole.completed and len(whole.frames) == 5 and whole.iterations == len(steps) == 1 + 3 + 3
    assert [e["total_iteration"] for e in steps] == list(range(1, 8)) and {e["total_iterations"] for e in steps} == {7}
    assert any(e["event"] == "preview" for e in events)
    meta = Image.open(whole.frames[3]).text
    assert meta["model"].startswith("t2v_zero") and "blue sea" in meta["prompt"] and meta["seed"] == "4"
    settings = yaml.safe_load(whole.settings.read_text())
    assert settings["generation"]["t2v_zero"]["chunk_size"] == 3 and "clip" not in settings["models"]

    def stop_in_second_chunk(event):
        return "stop" if event["event"] == "iteration" and event["total_iteration"] == 6 else None

    first = render(cfg, tmp_path / "split", callback=stop_in_second_chunk)
    assert first.stop_reason == "stopped" and len(first.frames) == 3
    rest = render(cfg, tmp_path / "split", resume=True)
    assert rest.completed and rest.iterations == 7
    assert all(np.array_equal(a, b) for a, b in zip(pixels(whole), pixels(rest), strict=True))


def test_animatediff_renders_one_chunk_and_a_stopped_render_resumes_the_same(tmp_path, folders):
    cfg = load_config(preset(folders, "animatediff", context_frames=4, context_overlap=2))
    whole = render(cfg, tmp_path / "whole")
    assert whole.completed and len(whole.frames) == 5 and whole.iterations == 3
    first = render(cfg, tmp_path / "split", callback=lambda e: "stop" if e.get("total_iteration") == 2 else None)
    assert first.stop_reason == "stopped" and first.frames == []
    rest = render(cfg, tmp_path / "split", resume=True)
    assert all(np.array_equal(a, b) for a, b in zip(pixels(whole), pixels(rest), strict=True))


def test_settings_the_engines_do_not_read_are_clear_errors(folders):
    with pytest.raises(ConfigError, match=r"^models\.motion_adapter: .* does not read it; it is read by generation\.engine: animatediff"):
        load_config(preset(folders, "t2v_zero"), ["models.motion_adapter=animatediff-motion-adapter-v1-5-2"])
    with pytest.raises(ConfigError, match=r"^generation\.t2v_zero\.chunk_size: 1 is not allowed"):
        load_config(preset(folders, "t2v_zero", chunk_size=1))
    with pytest.raises(ConfigError, match=r"^generation\.animatediff\.scheduler: 'lms' is not allowed"):
        load_config(preset(folders, "animatediff", scheduler="lms"))


def test_animatediff_refuses_camera_moves_it_would_ignore(tmp_path, folders):
    data = preset(folders, "animatediff")
    data["animation"]["zoom"] = "0:(1.05)"
    with pytest.raises(ConfigError, match=r"animation\.zoom: not read by generation\.engine: animatediff"):
        render(load_config(data), tmp_path / "out")


def test_missing_extra_is_one_clear_error_at_build(tmp_path, folders, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "diffusers" else real(name, *a))
    from vqclip.errors import ModelError

    with pytest.raises(ModelError, match=r'pip install "vqclip\[diffusion\]"'):
        render(load_config(preset(folders, "t2v_zero", **T2V)), tmp_path / "out")
