"""The pixel method (paper 000) through render(): timeline spans, temperature, stability, views, perceptors, negatives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vqclip.errors import ConfigError
from vqclip.production.generators.pixels import next_start, story_scene_frames, temperature_params
from vqclip.production.objectives.views import PixelViews
from vqclip.production.prompts import build_timeline
from vqclip.production.render import render
from vqclip.settings.render import load_config


class TinyPerceptor(torch.nn.Module):
    """A seeded random conv 'CLIP' with the Perceptor interface; texts map to fixed random directions."""

    def __init__(self, input_size: int = 32, dim: int = 16, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.input_size, self.dim, self.seed, self.calls = input_size, dim, seed, 0
        self.conv = torch.nn.Conv2d(3, dim, 5, stride=2)
        self.conv2 = torch.nn.Conv2d(dim, dim, 3, stride=2)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.3
        self.requires_grad_(False)

    def encode_text(self, texts):
        out = []
        for t in texts:
            g = torch.Generator().manual_seed(self.seed * 7919 + sum(map(ord, t)) * 31 + len(t))
            out.append(torch.randn(self.dim, generator=g))
        return torch.nn.functional.normalize(torch.stack(out), dim=-1)

    def encode_image(self, x):
        assert x.shape[-2:] == (self.input_size, self.input_size)
        self.calls += 1
        h = torch.relu(self.conv((x - 0.5) / 0.25))
        return torch.nn.functional.normalize(self.conv2(h).mean((2, 3)), dim=-1)


def _preset(frames=4, seed=0, first=6, later=4, weights=(1.0,), pixels=None, views=None, **generation) -> dict:
    return {
        "prompts": {"texts": "a red square on grass"},
        "size": {"width": 40, "height": 24},
        "models": {"clip": [{"spec": "toy", "weight": w} for w in weights]},
        "generation": {"engine": "pixels", "seed": seed, "device": "cpu", "iterations_first_frame": first,
                       "iterations_per_frame": later, "pixels": {"post_denoise": "none", **(pixels or {})},
                       "views": {"count": 2, **(views or {})}, **generation},
        "animation": {"frames": frames},
        "output": {"images_interval": 0, "video": False, "contact_sheet": False},
    }


@pytest.fixture
def tiny(monkeypatch):
    """Renders with TinyPerceptors in place of the configured CLIP models; returns the frames as float tensors."""
    def run(tmp_path, preset, perceptors=None):
        perceptors = perceptors or [TinyPerceptor()]
        monkeypatch.setattr("vqclip.production.render._load_perceptors", lambda cfg, device, callback=None: perceptors)
        out = tmp_path / f"r{len(list(tmp_path.iterdir())) if tmp_path.exists() else 0}"
        result = render(load_config(preset), out)
        assert result.completed
        return [torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32) / 255) for p in result.frames]
    return run


def _mean_change(frames) -> float:
    return float(torch.stack([(b - a).abs().mean() for a, b in zip(frames, frames[1:])]).mean())


def test_story_spans_and_the_timeline_weights_they_give():
    assert story_scene_frames(3, 4) == [8, 8, 4]
    assert story_scene_frames(2, [3, 5]) == [6, 5]
    with pytest.raises(ConfigError, match="frames_per_prompt.*2 counts for 3 prompts"):
        story_scene_frames(3, [1, 2])
    preset = _preset(pixels={"frames_per_prompt": 3})
    preset["prompts"] = {"scenes": [{"texts": "a"}, {"texts": "b"}]}
    del preset["animation"]
    cfg = load_config(preset)
    timeline = build_timeline(cfg.prompts, cfg.animation.frames)
    assert [s.frames for s in cfg.prompts.scenes] == [6, 3] and cfg.animation.frames == 9
    assert timeline.weights(0) == [(0, 1.0)] and timeline.weights(3) == [(0, 0.5), (1, 0.5)]
    assert all(timeline.weights(f) == [(1, 1.0)] for f in (6, 7, 8))


def test_same_seed_same_frames_and_another_seed_others(tmp_path, tiny):
    a = tiny(tmp_path, _preset(frames=2, seed=3))
    b = tiny(tmp_path, _preset(frames=2, seed=3))
    c = tiny(tmp_path, _preset(frames=2, seed=4))
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and not torch.equal(a[0], c[0])


def test_higher_temperature_changes_frames_more(tmp_path, tiny):
    changes = [_mean_change(tiny(tmp_path, _preset(pixels={"temperature": t}))) for t in (0, 50, 100)]
    assert changes[0] < changes[1] < changes[2], changes


def test_stability_term_keeps_consecutive_frames_closer(tmp_path, tiny):
    held = _mean_change(tiny(tmp_path, _preset(seed=1, pixels={"temperature": 0})))  # w_c = 4 at T=0
    free = _mean_change(tiny(tmp_path, _preset(seed=1, pixels={"temperature": 0}, stability_weight=0.0)))
    assert held < free


def test_temperature_mapping_is_monotonic_and_documented():
    cold, warm, hot = (temperature_params(t) for t in (0, 30, 100))
    assert (cold.keep, cold.noise_std, cold.stability_weight) == (1.0, 0.02, 4.0)
    assert hot.keep == pytest.approx(1 / 3) and hot.noise_std == pytest.approx(0.5) and hot.stability_weight == 0.0
    assert cold.keep > warm.keep > hot.keep and cold.noise_std < warm.noise_std < hot.noise_std
    fast, half = temperature_params(100, fast=True), temperature_params(50)
    assert (fast.keep, fast.noise_std, fast.stability_weight) == (half.keep, half.noise_std, half.stability_weight)
    prev = torch.full((1, 3, 16, 16), 0.9)
    g = torch.Generator().manual_seed(0)
    near = (next_start(prev, cold, g) - prev).abs().mean()
    far = (next_start(prev, hot, g) - prev).abs().mean()
    assert near < 0.03 < 0.25 < far  # T=0 barely moves the start, T=100 mostly replaces it


def test_null_settings_resolve_to_the_pixel_generators_defaults():
    cfg = load_config({**_preset(pixels={"temperature": 50, "fast": True}), "generation": {
        "engine": "pixels", "pixels": {"temperature": 50, "fast": True}}})
    g = cfg.generation
    assert (g.iterations_first_frame, g.iterations_per_frame, g.lr, g.objective) == (100, 10, 0.17, "views")
    assert g.stability_weight == pytest.approx(4 - 4 * 0.25)  # fast mode halves tau


@pytest.mark.parametrize("bad", [150, -1])
def test_bad_temperature_is_a_clear_config_error(bad):
    with pytest.raises(ConfigError) as err:
        load_config(_preset(pixels={"temperature": bad}))
    assert str(err.value) == f"generation.pixels.temperature: {float(bad)!r} is not allowed; use a number from 0 to 100"


@pytest.mark.parametrize("bad", [float("nan"), "hot"])
def test_a_temperature_that_is_no_number_is_a_clear_config_error(bad):
    with pytest.raises(ConfigError, match=r"^generation\.pixels\.temperature: .* is not allowed; expected a number$"):
        load_config(_preset(pixels={"temperature": bad}))


def test_other_bad_options_name_key_and_choices():
    with pytest.raises(ConfigError, match=r"^generation\.views\.perceptor_mode: 'mean' .*alternate, sum"):
        load_config(_preset(views={"perceptor_mode": "mean"}))
    with pytest.raises(ConfigError, match=r"^generation\.views\.count: 0 .*>= 1"):
        load_config(_preset(views={"count": 0}))


def test_views_are_square_differentiable_and_white_filled():
    views = PixelViews(32, views=3)
    x = torch.zeros(1, 3, 72, 128, requires_grad=True)
    torch.manual_seed(0)
    v = views(x)
    assert v.shape == (3, 3, 32, 32)
    assert v.max() > 0.99  # the perspective's border is white on a black frame
    v.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("mode,expected", [("alternate", (3, 3)), ("sum", (6, 6))])
def test_several_perceptors_alternate_or_sum(tmp_path, tiny, mode, expected):
    a, b = TinyPerceptor(seed=1), TinyPerceptor(input_size=24, seed=2)
    tiny(tmp_path, _preset(frames=1, weights=(1.0, 0.5), views={"perceptor_mode": mode}), perceptors=[a, b])
    assert (a.calls, b.calls) == expected


def test_negative_prompt_is_pushed_away(tmp_path, tiny):
    p = TinyPerceptor()
    pos = tiny(tmp_path, _preset(frames=1, first=30, views={"negative_prompts": []}), perceptors=[p])
    neg = tiny(tmp_path, _preset(frames=1, first=30, views={"negative_prompts": ["Words and text.:2"]}), perceptors=[p])
    e = p.encode_text(["Words and text."])[0]
    torch.manual_seed(0)
    sim = lambda img: float(p.encode_image(torch.nn.functional.interpolate(img.permute(2, 0, 1)[None], size=(32, 32))) @ e)  # noqa: E731
    assert sim(neg[0]) < sim(pos[0])
