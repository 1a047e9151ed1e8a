"""The pre-production panel's creative controls: every setting a render reads, by engine, as a valid preset."""

from __future__ import annotations

import io

import pytest
import yaml

from vqclip.settings.render import load_config

from test_ui import fake_upload, smoke_env, wav_bytes  # noqa: F401  (smoke_env is a fixture)


def png_bytes(colour=(200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def real_env(smoke_env):
    import dataclasses

    return dataclasses.replace(smoke_env, smoke=False)


def test_engine_picker_shows_only_that_engines_settings_and_the_preset_stays_valid(real_env):
    from vqclip.ui.pre import PreProductionPanel

    p = PreProductionPanel(real_env, preset="klee_garden", estimate=False)
    c = p.controls
    assert c.engine.value == "vqgan" and p.model in c.engine_settings.children[0].children
    c.engine.value = "pixels"  # the VQGAN picker and cutouts go; temperature, fast mode and views come
    shown = c.engine_settings.children[0].children
    assert p.model not in shown and p.cutn not in shown and c.temperature in shown and c.views in shown
    c.temperature.value, c.views.value = 0.3, 4
    cfg = load_config(p.preset_dict())  # no "models.vqgan is not read by pixels" error: the panel dropped it
    assert cfg.generation.engine == "pixels" and cfg.generation.objective == "views"
    assert cfg.generation.sections["pixels"].temperature == 0.3 and cfg.generation.objective_options.count == 4
    c.engine.value = "animatediff"  # a sampled engine: no steps or lr to set
    assert c.optimized_settings.layout.display == "none" and c.diffusion in c.engine_settings.children[0].children
    c.engine.value = "vqgan"
    assert load_config(p.preset_dict()).models.vqgan == "imagenet_f16_16384"


def test_timeline_motion_frames_fps_seed_and_iterations_reach_the_config(real_env):
    from vqclip.ui.pre import PreProductionPanel

    p = PreProductionPanel(real_env, preset="klee_garden", estimate=False)
    c = p.controls
    c.add_scene_row("a seed in dark soil", 10)
    c.add_scene_row("a flower opening", 14)
    assert c.frames.disabled and "2 scenes, 24 frames" in c.timeline_note.value
    c.move.value = "orbit"
    assert c.motion["angle"].value == "0:(1.0)" and c.motion["zoom"].value == "0:(1.01)"
    c.motion["translation_x"].value = "0:(0), 12:(3)"  # the keyframe box
    c.fps.value = 24
    seed = c.seed.value
    c.dice.click()
    assert c.seed.value != seed or c.roll_seed() != seed
    c.iterations_first.value, c.iterations_per.value = "80", ""
    cfg = load_config(p.preset_dict())
    assert [s.frames for s in cfg.prompts.scenes] == [10, 14] and cfg.animation.frames == 24
    assert cfg.prompts.scenes[1].texts == "a flower opening"
    assert cfg.animation.angle == "0:(1.0)" and cfg.animation.translation_x == "0:(0), 12:(3)"
    assert cfg.output.fps == 24 and cfg.generation.seed == c.seed.value
    assert cfg.generation.iterations_first_frame == 80 and cfg.generation.iterations_per_frame == 30  # empty: vqgan's own
    c.iterations_first.value = "lots"
    from vqclip.errors import ConfigError

    with pytest.raises(ConfigError, match="generation.iterations_first_frame: 'lots' is not allowed"):
        p.preset_dict()


def test_uploads_init_and_target_images_and_a_song_for_beat_synced_zoom(real_env):
    from vqclip.ui.pre import PreProductionPanel

    p = PreProductionPanel(real_env, preset="klee_garden", estimate=False)
    c = p.controls
    fake_upload(c.init_upload, "start here.png", png_bytes())
    fake_upload(c.target_upload, "look.png", png_bytes((10, 200, 10)))
    assert "starts from start_here.png" in c.images_status.value and "look.png" in c.images_status.value
    fake_upload(c.beat_upload, "drums.wav", wav_bytes(2.0))
    assert c.beat_sync.value and "drums.wav" in c.beat_status.value
    c.beat_pulse.value = 1.12
    data = p.preset_dict()
    assert data["prompts"]["init_image"].endswith("uploads/start_here.png")
    assert data["prompts"]["target_images"][0].endswith("uploads/look.png")
    assert data["animation"]["zoom"] == {"beats": str(real_env.out_root / "uploads" / "drums.wav"), "base": 1.0, "pulse": 1.12}
    cfg = load_config({**data, "animation": {**data["animation"], "zoom": "0:(1.0)"}})  # images check out
    assert cfg.prompts.init_image.endswith("start_here.png")
    fake_upload(c.init_upload, "notes.txt", b"hello")
    assert "not allowed" in c.images_status.value
    c.clear_images.click()
    assert "init_image" not in p.preset_dict()["prompts"]


def test_toy_models_bring_their_tuned_settings_unless_the_preset_sets_them(real_env):
    from vqclip.ui.pre import PreProductionPanel, preset_data

    toy = preset_data("default")["generation"]
    p = PreProductionPanel(real_env, preset="zoom_tunnel", estimate=False)
    p.model.value = "toy"
    assert "toy models" in p.toy_note.value
    cfg = load_config(p.preset_dict())
    gen = cfg.generation
    assert [c.spec for c in cfg.models.clip] == ["toy"]
    assert gen.lr == toy["lr"] and gen.sections["vqgan"].init == toy["vqgan"]["init"]  # zoom_tunnel sets neither
    assert gen.iterations_per_frame == 20 and gen.objective_options.cut_pow == 1.0  # zoom_tunnel's own stay
    assert gen.objective_options.augmentations == toy["cutouts"]["augmentations"]


def test_diver_story_previews_and_estimates_as_a_pixels_render(smoke_env):
    """Before: Preview failed with a ConfigError, and the estimate was a VQGAN one (~10.5 GiB, not 2.7)."""
    from vqclip.preproduction.estimate import estimate_config
    from vqclip.ui.pre import PreProductionPanel

    p = PreProductionPanel(smoke_env, preset="diver_story")
    fit = p.wait_estimate()
    assert fit is not None, p.memory.value
    expected = estimate_config(load_config("diver_story"))
    assert fit.estimate.total_bytes == expected.total_bytes and "pixels engine" in p.memory.value
    result = p.preview()
    assert result is not None and len(result.frames) == 1, p.preview_status.value
    assert "preview done" in p.preview_status.value


def test_production_renders_the_panels_choices_and_saves_them(smoke_env):
    from vqclip.ui.pre import PreProductionPanel
    from vqclip.ui.production import ProductionPanel

    pre = PreProductionPanel(smoke_env, preset="klee_garden", estimate=False)
    pre.controls.move.value = "pan left"
    pre.controls.seed.value = 1234
    prod = ProductionPanel(smoke_env, preset=pre)
    assert prod.name.value == "my_preset"
    cfg = prod.config()
    assert cfg.animation.translation_x == "0:(-2)" and cfg.generation.seed == 1234 and cfg.size.width == 48  # smoke-shrunk
    saved = pre.save("panned")
    data = yaml.safe_load(saved.read_text())
    assert data["animation"]["translation_x"] == "0:(-2)" and data["size"]["width"] == 640  # not shrunk


def test_production_panel_takes_a_typed_config(smoke_env):
    from vqclip.ui.production import ProductionPanel

    cfg = load_config("zoom_tunnel", ["generation.seed=99", "animation.frames=3"])
    prod = ProductionPanel(smoke_env, preset=cfg, name="typed")
    assert prod.name.value == "typed"
    shrunk = prod.config()
    assert shrunk.generation.seed == 99 and shrunk.size.width == 48 and shrunk.animation.angle == cfg.animation.angle
    result = prod.run()
    assert result is not None and result.completed and result.out_dir.name == "typed", prod.message.value


def test_pre_panel_estimates_a_diffusion_engine_by_its_own_estimator(smoke_env):
    from vqclip.ui.pre import PreProductionPanel

    p = PreProductionPanel(smoke_env, preset="t2v_zero_t4", estimate=False)
    p._check_fit()
    assert p.last_fit is not None and p.last_fit.fits
    assert "t2v_zero" in p.memory.value and "frames" in p.memory.value and "GiB" in p.memory.value
