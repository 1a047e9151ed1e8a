"""generation.engine: pixels through the shared renderer (tiny open_clip files, real loader): story, metadata, resume, errors, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from vqclip.settings.render import load_config
from vqclip.errors import ConfigError

PRESET = {
    "prompts": {"scenes": [{"texts": "a red square on grass"}, {"texts": "a blue circle in the sky"}]},
    "size": {"width": 40, "height": 24},
    "models": {"clip": [{"spec": "toy", "weight": 1.0}]},  # the tests give local open_clip files
    "generation": {
        "engine": "pixels",
        "seed": 7,
        "iterations_first_frame": 4,
        "iterations_per_frame": 2,
        "pixels": {"temperature": 40, "frames_per_prompt": 2, "post_denoise": "median"},
        "views": {"count": 2},
    },
    "output": {"fps": 4, "images_interval": 0, "video": False, "contact_sheet": False},
}


@pytest.fixture
def preset(open_clip_files):
    """PRESET with two tiny open_clip models from local files (the real loader; no network)."""
    import copy

    spec = {"config": str(open_clip_files["config"]), "weights": str(open_clip_files["weights"])}
    data = copy.deepcopy(PRESET)
    data["models"]["clip"] = [{"spec": spec, "weight": 1.0}, {"spec": dict(spec), "weight": 0.5}]
    return data


@pytest.fixture
def perceptor_calls(monkeypatch):
    """Counts encode_image calls per perceptor instance, in load order."""
    from vqclip.models.clip import Perceptor

    calls: dict[int, int] = {}
    original = Perceptor.encode_image

    def counting(self, x01):
        calls[id(self)] = calls.get(id(self), 0) + 1
        return original(self, x01)

    monkeypatch.setattr(Perceptor, "encode_image", counting)
    return calls


def _frames(out):
    return [torch.from_numpy(np.array(Image.open(p))) for p in sorted((out / "frames").glob("*.png"))]


def test_two_prompt_story_renders_frames_weights_and_settings(tmp_path, preset, perceptor_calls):
    from vqclip.production.render import planned_iterations, render

    cfg = load_config(preset)
    assert [s.frames for s in cfg.prompts.scenes] == [4, 2] and cfg.animation.frames == 6  # 2F, then F
    assert planned_iterations(cfg) == 4 + 5 * 2
    events = []
    result = render(cfg, tmp_path / "out", callback=events.append)

    assert result.completed and len(result.frames) == 6 and result.iterations == 14
    meta = [Image.open(p).text for p in result.frames]
    assert meta[0]["prompt"] == "a red square on grass"
    assert meta[1]["prompt"] == "a red square on grass (x0.75) | a blue circle in the sky (x0.25)"
    assert meta[2]["prompt"] == "a red square on grass (x0.50) | a blue circle in the sky (x0.50)"
    assert meta[4]["prompt"] == meta[5]["prompt"] == "a blue circle in the sky"
    assert meta[0]["model"].startswith("pixels:T40:denoise-median")
    assert Image.open(result.frames[0]).size == (40, 24)
    steps = [e for e in events if e["event"] == "iteration"]
    assert "stability" not in steps[0]["losses"] and "stability" in steps[-1]["losses"]  # eq. 2 after the first frame
    assert sorted(perceptor_calls.values()) == [7, 7]  # two perceptors alternate over the 14 steps
    settings = yaml.safe_load((tmp_path / "out" / "settings.yaml").read_text())
    assert settings["generation"]["engine"] == "pixels" and settings["generation"]["pixels"]["temperature"] == 40
    assert load_config(tmp_path / "out" / "settings.yaml").prompts.scenes[0].frames == 4  # reloads the same


def test_resume_after_a_stop_gives_the_same_frames(tmp_path, preset):
    from vqclip.production.render import render

    cfg = load_config(preset)
    render(cfg, tmp_path / "whole")

    def stop_after_two(event):
        if event["event"] == "frame" and event["frame"] == 1:
            return "stop"

    first = render(cfg, tmp_path / "split", callback=stop_after_two)
    assert not first.completed and len(first.frames) == 2
    rest = render(cfg, tmp_path / "split", resume=True)
    assert rest.completed
    whole, split = _frames(tmp_path / "whole"), _frames(tmp_path / "split")
    assert len(whole) == len(split) == 6
    assert all(torch.equal(a, b) for a, b in zip(whole, split))


def test_bad_pixel_settings_are_clear_config_errors():
    with pytest.raises(ConfigError, match=r"^generation\.pixels\.temperature: 150\.0 is not allowed; use a number from 0 to 100"):
        load_config(PRESET, ["generation.pixels.temperature=150"])
    with pytest.raises(ConfigError, match=r"generation\.pixels\.post_denoise: 'blur' .*cyclegan, bilateral"):
        load_config(PRESET, ["generation.pixels.post_denoise=blur"])
    with pytest.raises(ConfigError, match=r"generation\.pixels\.temprature: unknown setting; did you mean 'generation\.pixels\.temperature'"):
        load_config(PRESET, ["generation.pixels.temprature=10"])


def test_cli_bad_temperature_exits_2_with_one_line(tmp_path, capsys):
    from vqclip.cli import main

    preset = tmp_path / "story.yaml"
    preset.write_text(yaml.safe_dump(PRESET), encoding="utf-8")
    code = main(["render", str(preset), "-o", str(tmp_path / "o"), "--set", "generation.pixels.temperature=150"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("vqclip: error: generation.pixels.temperature: 150") and "0 to 100" in err[0]


def test_settings_yaml_reloads_to_the_same_spans_frames_and_hash(tmp_path, preset):
    """settings.yaml already holds the 2F/F spans; loading it runs configure_prompts again and must change nothing."""
    from vqclip.settings.render import config_hash
    from vqclip.production.generators.pixels import PixelGenerator
    from vqclip.production.render import render

    preset["prompts"]["scenes"].append({"texts": "a green triangle"})
    preset["generation"]["pixels"]["frames_per_prompt"] = [1, 2, 3]
    cfg = load_config(preset)
    assert [s.frames for s in cfg.prompts.scenes] == [2, 4, 3] and cfg.animation.frames == 9
    assert PixelGenerator.configure_prompts(cfg.prompts, cfg.generation.options) == cfg.prompts  # idempotent

    def stop_after_two(event):
        if event["event"] == "frame" and event["frame"] == 1:
            return "stop"

    out = tmp_path / "out"
    first = render(cfg, out, callback=stop_after_two)
    assert not first.completed
    again = load_config(out / "settings.yaml")
    assert [s.frames for s in again.prompts.scenes] == [2, 4, 3] and again.animation.frames == 9
    assert again.generation.options == cfg.generation.options
    assert config_hash(again) == config_hash(load_config(preset, ["generation.seed=7"]))
    # `vqclip render OUT/settings.yaml -o OUT --resume` continues the render it came from
    rest = render(load_config(out / "settings.yaml"), out, resume=True)
    assert rest.completed and len(rest.frames) == 9
    # and `vqclip render OUT/settings.yaml -o NEW` repeats it frame for frame
    from vqclip.cli import main

    assert main(["render", str(out / "settings.yaml"), "-o", str(tmp_path / "new")]) == 0
    assert all(torch.equal(a, b) for a, b in zip(_frames(out), _frames(tmp_path / "new"), strict=True))


@pytest.mark.parametrize("item, new", [
    ("generation.cutn=8", "generation.cutouts.cutn"),
    ("generation.cut_pow=2", "generation.cutouts.cut_pow"),
    ("generation.augmentations=[affine]", "generation.cutouts.augmentations"),
    ("generation.pixels.views=3", "generation.views.count"),
    ("generation.pixels.first_steps=50", "generation.iterations_first_frame"),
    ("generation.pixels.steps=5", "generation.iterations_per_frame"),
    ("generation.pixels.lr=0.2", "generation.lr"),
    ("generation.pixels.stability_weight=1", "generation.stability_weight"),
    ("generation.pixels.negative_prompts=[]", "generation.views.negative_prompts"),
])
def test_a_key_of_the_old_flat_layout_says_where_it_moved(item, new):
    key = item.partition("=")[0]
    with pytest.raises(ConfigError, match=rf"^{key}: moved to {new}; write {new}: "):
        load_config(PRESET, [item])


@pytest.mark.parametrize("item, reader", [
    ("generation.vqgan.init=noise", "generation.engine: vqgan"),
    ("models.vqgan=toy", "generation.engine: vqgan"),
    ("generation.cutouts.cutn=8", "generation.objective: cutouts"),
])
def test_a_section_the_pixel_engine_does_not_read_is_a_clear_error(item, reader):
    key, _, value = item.partition("=")
    with pytest.raises(ConfigError) as err:
        load_config(PRESET, [item])
    msg = str(err.value)
    assert msg.startswith(f"{key}: ") and value in msg
    assert "generation.engine 'pixels' with generation.objective 'views' does not read it" in msg and reader in msg


def test_the_pixel_generator_may_be_judged_by_cutouts_instead(tmp_path):
    cfg = load_config(PRESET, ["generation.objective=cutouts", "generation.cutouts.cutn=3", "generation.views={}"])
    assert (cfg.generation.engine, cfg.generation.objective, cfg.generation.objective_options.cutn) == ("pixels", "cutouts", 3)
    with pytest.raises(ConfigError, match=r"^generation\.views\.count: 2 is set, but generation\.engine 'pixels' with generation\.objective 'cutouts'"):
        load_config(PRESET, ["generation.objective=cutouts"])


def test_a_vqgan_setting_in_a_pixels_preset_file_is_an_error_too(tmp_path):
    data = {**PRESET, "generation": {**PRESET["generation"], "vqgan": {"quantize": False}}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^generation\.vqgan\.quantize: False is set, but generation\.engine 'pixels'"):
        load_config(path)
    load_config(PRESET, ["generation.vqgan={}"])  # an empty section asks for nothing


def test_pixels_settings_yaml_holds_only_what_the_engine_reads_resolved(tmp_path, preset):
    from vqclip.production.run import RunFolder
    from vqclip.settings.render import config_hash, config_to_dict, unread_keys

    cfg = load_config(preset)
    run = RunFolder.open(tmp_path / "out", cfg, resume=False)
    assert not run.settings.exists()  # open only checks and locks; commit() (after the models load) writes
    run.commit()
    run.release()
    settings = yaml.safe_load(run.settings.read_text())
    assert "vqgan" not in settings["models"] and {"pixels", "views"} <= set(settings["generation"])
    for key in unread_keys("pixels"):
        section, name = key.split(".")
        assert name not in settings[section], key
    g = settings["generation"]  # null defaults are written resolved: w_c = 4 - 4 * 0.4
    assert (g["objective"], g["lr"], g["stability_weight"]) == ("views", 0.1, pytest.approx(2.4))
    again = load_config(run.settings)
    assert config_to_dict(again) == config_to_dict(run.cfg) and config_hash(again) == config_hash(run.cfg)
