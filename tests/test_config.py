"""Render config: presets, overrides, validation messages (key, value, what is allowed), round trips."""

import pytest
import yaml

from vqclip.settings.render import (
    RenderConfig, apply_override, config_hash, config_to_dict, format_preset_table, list_presets, load_config,
)
from vqclip.errors import ConfigError

BASE = {"prompts": {"texts": "a red circle"}}


def test_defaults_cover_the_papers_notebook_settings():
    cfg = load_config(BASE)
    assert isinstance(cfg, RenderConfig)
    assert (cfg.size.width, cfg.size.height) == (640, 384)
    assert cfg.models.vqgan == "imagenet_f16_16384"
    assert cfg.output.images_interval == 50
    assert cfg.generation.seed == -1 and cfg.generation.max_iterations == -1
    assert cfg.prompts.init_image is None and cfg.prompts.target_images == ""
    assert cfg.models.clip[0].spec == "ViT-B-32/openai" and cfg.models.clip[0].weight == 1.0
    assert cfg.generation.engine == "vqgan" and cfg.generation.options.quantize is True
    assert cfg.animation.frames == 24


def test_bundled_default_preset_loads_by_name():
    names = [n for n, _ in list_presets()]
    assert "default" in names
    cfg = load_config("default")
    assert cfg.prompts.texts == "a red circle on a blue background"
    assert cfg.models.vqgan == "toy" and cfg.animation.frames == 24
    assert "default" in format_preset_table()


def test_overrides_are_yaml_typed():
    cfg = load_config(BASE, [
        "generation.seed=3", "generation.lr=0.05", "generation.optimizer=AdamW", "output.video=false",
        "models.clip=[{spec: toy, weight: 0.5}, ViT-B-16/openai]", "prompts.texts=a cat: 2",
        "animation.zoom=0:(1.0), 10:(1.05)", "generation.vqgan.quantize=false",
    ])
    assert cfg.generation.seed == 3 and cfg.generation.lr == 0.05 and cfg.generation.optimizer == "adamw"
    assert cfg.output.video is False
    assert [(p.spec, p.weight) for p in cfg.models.clip] == [("toy", 0.5), ("ViT-B-16/openai", 1.0)]
    assert cfg.prompts.texts == "a cat: 2"  # a prompt, not a YAML mapping
    assert cfg.animation.zoom == "0:(1.0), 10:(1.05)"
    assert cfg.generation.options.quantize is False
    data = {"prompts": {"texts": "x"}, "models": {"clip": ["toy", "toy"]}}
    apply_override(data, "models.clip.1.weight=0.25")
    assert load_config(data).models.clip[1].weight == 0.25


@pytest.mark.parametrize(
    "override, message",
    [
        ("generation.optimzer=adam", "generation.optimzer: unknown setting; did you mean 'generation.optimizer'?"),
        ("generation.width=3", "generation.width: unknown setting; did you mean 'size.width'?"),
        ("animaton.zoom=1", "animaton: unknown setting; did you mean 'animation'?"),
        ("generation.vqgan.quantise=true", "generation.vqgan.quantise: unknown setting; did you mean 'generation.vqgan.quantize'?"),
    ],
)
def test_unknown_keys_get_a_did_you_mean(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(BASE, [override])
    assert str(info.value).startswith(message) and "allowed here:" in str(info.value)


@pytest.mark.parametrize(
    "override, message",
    [
        ("generation.optimizer=adamx", "generation.optimizer: 'adamx' is not allowed; use one of adam, adamw"),
        ("size.width=abc", "size.width: 'abc' is not allowed; use a whole number 16..4096"),
        ("size.height=8", "size.height: 8 is not allowed; use a whole number 16..4096"),
        ("generation.seed=-2", "generation.seed: -2 is not allowed; use a whole number 0..4294967295 or -1"),
        ("generation.max_iterations=0", "generation.max_iterations: 0 is not allowed; use a whole number >= 1 or -1"),
        ("generation.precision=fp8", "generation.precision: 'fp8' is not allowed; use one of auto, fp32, fp16, bf16"),
        ("generation.device=gpu", "generation.device: 'gpu' is not allowed; use auto, cpu, cuda or cuda:N"),
        ("generation.lr=0", "generation.lr: 0 is not allowed; use a number > 0 and <= 100"),
        ("generation.cutouts.augmentations=[affine, jiter]", "generation.cutouts.augmentations[1]: 'jiter' is not allowed"),
        ("generation.engine=diffusion", "generation.engine: 'diffusion' is not allowed; use one of vqgan"),
        ("animation.zoom=0:(1-t)", "animation.zoom='0:(1-t)': '1-t' gives 0 at frame 1; allowed: 0.01 .. 100"),
        ("animation.border_mode=wrap", "animation.border_mode: 'wrap' is not allowed; use one of reflect, replicate, zeros"),
        ("models.vqgan=imagenet_f16_16385", "models.vqgan: 'imagenet_f16_16385' is not a known model; use one of"),
        ("models.clip=[]", "models.clip: [] is not allowed"),
        ("prompts.init_image=missing.png", "prompts.init_image: 'missing.png' is not a file"),
        ("prompts.texts=", "prompts.texts: '' is not allowed; give at least one prompt"),
        ("output.video_quality=best", "output.video_quality: 'best' is not allowed; use one of lossless, high"),
        ("generation.cutouts.cutn=1.5", "generation.cutouts.cutn: 1.5 is not allowed; use a whole number 1..1024"),
        ("output.video=maybe", "output.video: 'maybe' is not allowed; use true or false"),
        ("nokey", "--set 'nokey': not allowed; write KEY=VALUE"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(BASE, [override])
    assert str(info.value).startswith(message), str(info.value)


def test_did_you_mean_for_choices_and_models():
    with pytest.raises(ConfigError, match="did you mean 'adamax'"):
        load_config(BASE, ["generation.optimizer=adamx"])
    with pytest.raises(ConfigError, match="did you mean 'imagenet_f16_16384'"):
        load_config(BASE, ["models.vqgan=imagenet_f16_16385"])


def test_scenes_set_the_frame_count():
    scenes = {"prompts": {"scenes": [{"texts": "a dog", "frames": 5}, {"texts": "a cat", "frames": 7}]}}
    assert load_config(scenes).animation.frames == 12
    with pytest.raises(ConfigError, match="animation.frames: 10 is not allowed; the scenes add up to 12 frames"):
        load_config(scenes, ["animation.frames=10"])
    with pytest.raises(ConfigError, match=r"prompts.scenes\[1\].frame: unknown setting; did you mean 'prompts.scenes\[1\].frames'"):
        load_config({"prompts": {"scenes": [{"texts": "a"}, {"texts": "b", "frame": 3}]}})


def test_bad_preset_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("prompts:\n  texts: 'a'\n  colour: red\n")
    with pytest.raises(ConfigError, match="prompts.colour: unknown setting"):
        load_config(str(bad))
    broken = tmp_path / "broken.yaml"
    broken.write_text("prompts: [\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(str(broken))
    with pytest.raises(ConfigError, match="'defualt' is neither a file nor a bundled preset.*did you mean 'default'"):
        load_config("defualt")
    with pytest.raises(ConfigError, match="file 'nope.yaml' does not exist"):
        load_config("nope.yaml")


def test_round_trip_and_hash():
    cfg = load_config(BASE, ["generation.seed=5", "models.clip=[toy]"])
    d = config_to_dict(cfg)
    assert d["generation"]["vqgan"] == {"init": "codes", "quantize": True, "clamp": True, "checkpoint": False}
    again = load_config(yaml.safe_load(yaml.safe_dump(d)))
    assert config_to_dict(again) == d and config_hash(again) == config_hash(cfg)
    # output settings do not change the frames, so they do not change the hash
    assert config_hash(load_config(d, ["output.fps=30", "generation.max_iterations=5"])) == config_hash(cfg)
    assert config_hash(load_config(d, ["generation.lr=0.2"])) != config_hash(cfg)


# ----------------------------------------------------------------------------------------------
# The one YAML reader (render and post presets alike)


def test_a_duplicate_key_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("prompts:\n  texts: a cat\nsize:\n  width: 64\n  width: 128\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"the key 'width' appears twice \(lines 4 and 5\)"):
        load_config(path)


def test_text_that_is_not_utf8_is_one_clear_error(tmp_path):
    from vqclip.settings.post import load_post_config

    path = tmp_path / "p.yaml"
    path.write_bytes("prompts:\n  texts: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 21 is 0xe9\); save the file as UTF-8"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"^post file .*not UTF-8 text"):
        load_post_config(path)


def test_aliases_are_bounded(tmp_path):
    from vqclip.settings.loader import MAX_ALIASES

    lines = ["a: &a [1, 2]"] + [f"b{i}: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]" for i in range(MAX_ALIASES // 10 + 1)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ConfigError, match=f"more than {MAX_ALIASES} aliases"):
        load_config(path)


def test_section_options_take_ranges_from_field_metadata():
    with pytest.raises(ConfigError, match=r"^generation\.cutouts\.cut_pow: 0\.0 is not allowed; use a number > 0 and <= 10$"):
        load_config(BASE, ["generation.cutouts.cut_pow=0.0"])
    with pytest.raises(ConfigError, match=r"^generation\.cutouts\.cutn: 2000 is not allowed; use a whole number 1\.\.1024$"):
        load_config(BASE, ["generation.cutouts.cutn=2000"])


def test_null_optimized_settings_resolve_per_generator_and_reload_to_the_same_hash(tmp_path):
    import yaml

    cfg = load_config(BASE, ["generation.iterations_first_frame=null", "generation.lr=null", "generation.stability_weight=null"])
    g = cfg.generation
    assert (g.iterations_first_frame, g.lr, g.stability_weight, g.objective) == (200, 0.1, 0.0, "cutouts")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(config_to_dict(cfg)), encoding="utf-8")
    assert config_hash(load_config(tmp_path / "s.yaml")) == config_hash(cfg)


def test_every_section_goes_through_the_typed_loader():
    """Ranges, extra values, case-folded choices and nested paths come from field metadata in every section."""
    cfg = load_config(BASE, ["generation.precision=FP32", "animation.border_mode=Zeros", "generation.stability_weight=0",
                             "size.width=320.0", "generation.seed=-1"])
    assert (cfg.generation.precision, cfg.animation.border_mode, cfg.generation.stability_weight) == ("fp32", "zeros", 0.0)
    assert cfg.size.width == 320 and isinstance(cfg.size.width, int) and cfg.generation.seed == -1
    for override, message in [
        ("generation.stability_weight=-1", "generation.stability_weight: -1 is not allowed; use a number >= 0"),
        ("output.fps=0.5", "output.fps: 0.5 is not allowed; use a number from 1 to 240"),
        ("models.clip=[{spec: toy, weight: 0}]", "models.clip[0].weight: 0 is not allowed; use a number > 0"),
        ("prompts.scenes=[{texts: a, frames: 0}]", "prompts.scenes[0].frames: 0 is not allowed; use a whole number >= 1"),
        ("prompts.scenes=[{texts: a, frams: 2}]", "prompts.scenes[0].frams: unknown setting; did you mean 'prompts.scenes[0].frames'?"),
        ("output.width=3", "output.width: unknown setting; did you mean 'size.width'?"),
        ("post=3", "post: 3 is not allowed; this section is a mapping"),
        ("generation.views.distortion=2", "generation.views.distortion: 2 is not allowed; use a number from 0 to 1"),
        ("generation.views.perceptor_mode=mean", "generation.views.perceptor_mode: 'mean' is not allowed; use one of alternate, sum"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_config(BASE, [override])
        assert str(info.value).startswith(message), (override, str(info.value))
