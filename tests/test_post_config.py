"""The post: schema: defaults, shorthands, overrides, and one clear error per bad setting."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vqclip.errors import ConfigError, PostError
from vqclip.postproduction.run import load_post_config, run_post
from vqclip.settings.post import PostConfig, post_config_to_dict

from helpers_media import make_render

PRESET = Path(__file__).resolve().parents[1] / "presets" / "post" / "three_scene_story.yaml"


def test_defaults_and_shorthands():
    cfg = load_post_config({"scenes": ["a", {"source": "b", "speed": 0.5}], "music": "song.mp3",
                            "titles": ["Hello"], "output": {"formats": "gif"}})
    assert isinstance(cfg, PostConfig)
    assert [s.source for s in cfg.scenes] == ["a", "b"] and cfg.scenes[1].speed == 0.5
    assert cfg.music.path == "song.mp3" and cfg.music.loop is True
    assert cfg.titles[0].text == "Hello" and cfg.titles[0].font == "sans"
    assert cfg.output.formats == ["gif"] and cfg.output.path == "post.mp4"
    assert cfg.transition == "cut" and cfg.fit == "crop"
    assert yaml.safe_dump(post_config_to_dict(cfg))  # round-trips to plain YAML


def test_render_preset_post_section_and_overrides(tmp_path):
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump({"generation": {"seed": 1}, "post": {"scenes": ["x"], "music": "m.wav"}}))
    cfg = load_post_config(path, ["scenes.0.speed=0.5", "post.music.volume=0.25", "output.path=o.webm",
                                  "transition=crossfade"])
    assert cfg.scenes[0].speed == 0.5 and cfg.music.volume == 0.25 and cfg.output.path == "o.webm"
    assert cfg.transition == "crossfade" and cfg.base_dir == str(tmp_path)


def test_shipped_example_is_valid():
    cfg = load_post_config(PRESET)
    assert len(cfg.scenes) == 3 and cfg.aspect == "16:9" and cfg.music is not None
    assert cfg.scenes[2].transition == "fade"


@pytest.mark.parametrize(
    "data, match",
    [
        ({"scenes": ["a"], "trasition": "cut"}, r"trasition: unknown setting; did you mean 'transition'\?"),
        ({"scenes": [{"source": "a", "sped": 2}]}, r"scenes\[0\]\.sped: unknown setting; did you mean 'scenes\[0\]\.speed'"),
        ({"scenes": [{"source": "a", "speed": -1}]}, r"scenes\[0\]\.speed: -1\.0 is not allowed; use a positive"),
        ({"scenes": [{"source": "a", "speed": "fast"}]}, r"scenes\[0\]\.speed: 'fast' is not allowed; expected a number"),
        ({"scenes": [{"source": "a", "interpolate": "optical"}]}, r"interpolate: 'optical'.*none, blend, motion"),
        ({"scenes": ["a"], "aspect": "wide"}, r"aspect: 'wide' is not allowed; use one of 16:9"),
        ({"scenes": ["a"], "transition": "wipe"}, r"transition: 'wipe'.*cut, crossfade, fade"),
        ({"scenes": ["a"], "output": {"path": "x.avi"}}, r"output\.path: 'x\.avi'.*\.mp4"),
        ({"scenes": ["a"], "output": {"quality": "ultra"}}, r"output\.quality: 'ultra'"),
        ({"scenes": ["a"], "music": {"path": "m.wav", "volume": -2}}, r"music\.volume: -2\.0"),
        ({"scenes": ["a"], "titles": [{"text": "hi", "position": "middle"}]}, r"titles\[0\]\.position: 'middle'"),
        ({"scenes": ["a"], "titles": [{"text": "hi", "color": "teal-ish"}]}, r"titles\[0\]\.color: 'teal-ish'"),
        ({"scenes": [{"source": "a", "trim": [2, 1]}]}, r"scenes\[0\]\.trim"),
        ({"scenes": [{"source": "a", "loop": 0}]}, r"scenes\[0\]\.loop: 0"),
        ({"scenes": [{"source": "a", "speed": 2, "duration": 3}]}, r"speed or duration, not both"),
        ({"scenes": []}, r"scenes: at least one scene"),
        ({"scenes": ["a"], "output": {"gif": {"colors": 999}}}, r"output\.gif\.colors: 999"),
    ],
)
def test_bad_settings_name_key_value_and_allowed(data, match):
    with pytest.raises(ConfigError, match=match):
        load_post_config(data)


def test_bad_override():
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_post_config({"scenes": ["a"]}, ["music.volume"])
    with pytest.raises(ConfigError, match="index"):
        load_post_config({"scenes": ["a"]}, ["scenes.3.speed=2"])


def test_missing_inputs_fail_before_anything_is_written(tmp_path):
    make_render(tmp_path / "r", n=6)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an earlier export")
    cases = [
        ({"scenes": ["nowhere"]}, r"scenes\[0\]\.source: .*nowhere.* does not exist"),
        ({"scenes": ["r"], "music": "missing.mp3"}, r"music\.path: audio file .*missing\.mp3.* does not exist"),
        ({"scenes": ["r"], "titles": [{"text": "x", "font": "no.ttf"}]}, r"titles\[0\]\.font: font file"),
        ({"scenes": ["r", {"source": "r", "overlays": ["logo.png"]}]}, r"scenes\[1\]\.overlays\[0\]\.source"),
        ({"scenes": ["r"], "output": {"path": "r/frames/x.mp4"}}, r"output\.path: .* inside the input"),
    ]
    for data, match in cases:
        data.setdefault("output", {"path": "out.mp4"})
        with pytest.raises(PostError, match=match):
            run_post(load_post_config(data, base_dir=str(tmp_path)))
    assert out.read_bytes() == b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "r"]
    assert len(list((tmp_path / "r" / "frames").iterdir())) == 6


def test_empty_frames_and_mismatched_scene_sizes(tmp_path):
    make_render(tmp_path / "big", n=6)
    make_render(tmp_path / "small", n=6, w=32, h=24)
    (tmp_path / "empty" / "frames").mkdir(parents=True)
    base = str(tmp_path)
    with pytest.raises(PostError, match=r"scenes\[0\]\.source: the frames folder .* is empty"):
        run_post(load_post_config({"scenes": ["empty"]}, base_dir=base))
    with pytest.raises(PostError, match=r"scenes\[1\]: size 32x24 does not match .* set aspect: or size:"):
        run_post(load_post_config({"scenes": ["big", "small"]}, base_dir=base))
    with pytest.raises(PostError, match=r"scenes\[0\]\.blend: .*fit"):
        run_post(load_post_config({"scenes": [{"source": "big", "blend": {"source": "small"}}]}, base_dir=base))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big", "empty", "small"]
    # With an aspect both scenes are fitted to one frame, and it works.
    res = run_post(load_post_config({"scenes": ["big", "small"], "aspect": "1:1", "output": {"path": "o.mp4"}},
                                    base_dir=base))
    assert res.info.size == (48, 48) and res.info.n_frames == 12


def test_cli_error_is_one_line(tmp_path, capsys):
    from vqclip.cli import main

    job = tmp_path / "job.yaml"
    job.write_text("post:\n  scenes: [a]\n  scenes_speed: 2\n")
    assert main(["post", str(job)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scenes_speed: unknown setting" in err[0] and "did you mean 'scenes'" in err[0]


def test_cli_errors_say_post_once(tmp_path, capsys):
    from vqclip.cli import main

    assert main(["post", str(tmp_path / "none.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vqclip: error: post file: ") and "post: post" not in err and "\n" not in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"scenes": [str(make_render(tmp_path / "r", n=3))], "transition": "wipe"}))
    assert main(["post", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == "vqclip: error: post: transition: 'wipe' is not allowed; use one of cut, crossfade, fade"


def test_override_text_with_a_colon_stays_text(tmp_path):
    # the same reading as `vqclip render --set prompts.texts=...`: "Act one: red" is a title, not a mapping
    cfg = load_post_config({"scenes": [{"source": str(make_render(tmp_path / "r", n=3)), "titles": [{"text": "x"}]}]},
                           overrides=["scenes.0.titles.0.text=Act one: red", "music={path: a.wav}"], base_dir=tmp_path)
    assert cfg.scenes[0].titles[0].text == "Act one: red"
    assert cfg.music.path == "a.wav"
