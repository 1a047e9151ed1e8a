"""The pixel engine's method (paper 000): timeline weights, temperature, stability, views, perceptors."""

from __future__ import annotations

import pytest
import torch

from vqclip.production.engines.pixels import (
    PixelOptions,
    PixelStory,
    PixelViews,
    next_start,
    story_scene_frames,
    story_weights,
    temperature_params,
)
from vqclip.errors import ConfigError


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


PROMPTS = ["a red square on grass", "a blue circle in the sky"]


def _story(temperature=30.0, frames_per_prompt=2, perceptors=None, **kw) -> PixelStory:
    opts = PixelOptions(temperature=temperature, frames_per_prompt=frames_per_prompt, views=2, first_steps=6, steps=4, **kw)
    return PixelStory(PROMPTS, perceptors or [TinyPerceptor()], opts, height=24, width=40)


def _mean_change(frames) -> float:
    return float(torch.stack([(b - a).abs().mean() for a, b in zip(frames, frames[1:])]).mean())


def test_story_timeline_spans_and_weights():
    assert story_scene_frames(3, 4) == [8, 8, 4]
    assert story_scene_frames(2, [3, 5]) == [6, 5]
    spans = [6, 3]
    assert story_weights(0, spans) == [(0, 1.0)]
    assert story_weights(3, spans) == [(0, 0.5), (1, 0.5)]
    assert story_weights(5, spans) == [(0, pytest.approx(1 / 6)), (1, pytest.approx(5 / 6))]
    assert all(story_weights(f, spans) == [(1, 1.0)] for f in (6, 7, 8))
    with pytest.raises(ConfigError, match="frames_per_prompt.*2 counts for 3 prompts"):
        story_scene_frames(3, [1, 2])


def test_two_prompt_story_renders_right_frames_and_weights():
    story = _story(frames_per_prompt=2)
    seen = {}

    def callback(event):
        if event["event"] == "iteration" and event["iteration"] == 0:
            seen[event["frame"]] = story.weights_at(event["frame"])

    frames = story.run(seed=0, callback=callback)
    assert story.total_frames == 6 and len(frames) == 6  # 2F for the first prompt, F for the last
    assert all(f.shape == (1, 3, 24, 40) and 0 <= f.min() and f.max() <= 1 for f in frames)
    assert seen[0] == [(0, 1.0)] and seen[1] == [(0, 0.75), (1, 0.25)] and seen[2] == [(0, 0.5), (1, 0.5)]
    assert seen[4] == seen[5] == [(1, 1.0)]


def test_same_seed_same_frames():
    a = _story().run(frames=2, seed=3)
    b = _story().run(frames=2, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_higher_temperature_changes_frames_more():
    changes = [_mean_change(_story(temperature=t).run(frames=4, seed=0)) for t in (0, 50, 100)]
    assert changes[0] < changes[1] < changes[2], changes


def test_stability_term_keeps_consecutive_frames_closer():
    cold = _mean_change(_story(temperature=0).run(frames=4, seed=0))
    hot = _mean_change(_story(temperature=100).run(frames=4, seed=0))
    assert cold < 0.5 * hot
    # the term itself, same start noise: w_c = 4 (T=0's) against no stability term at all
    held = _mean_change(_story(temperature=0).run(frames=4, seed=1))
    free = _mean_change(_story(temperature=0, stability_weight=0.0).run(frames=4, seed=1))
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


@pytest.mark.parametrize("bad", [150, -1, float("nan"), "hot"])
def test_bad_temperature_is_a_clear_config_error(bad):
    with pytest.raises(ConfigError) as err:
        _story(temperature=bad)
    msg = str(err.value)
    assert msg.startswith("generation.pixels.temperature: ") and repr(bad) in msg and "0 to 100" in msg


def test_other_bad_options_name_key_and_choices():
    with pytest.raises(ConfigError, match=r"perceptor_mode: 'mean' .*alternate, sum"):
        _story(perceptor_mode="mean")
    with pytest.raises(ConfigError, match=r"generation.pixels.views: 0 .*>= 1"):
        PixelStory(PROMPTS, [TinyPerceptor()], PixelOptions(views=0), 8, 8)


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
def test_several_perceptors_alternate_or_sum(mode, expected):
    a, b = TinyPerceptor(seed=1), TinyPerceptor(input_size=24, seed=2)
    opts = PixelOptions(frames_per_prompt=1, views=2, first_steps=6, perceptor_mode=mode)
    story = PixelStory(PROMPTS, [a, b], opts, 20, 30, perceptor_weights=[1.0, 0.5])
    story.run(frames=1, seed=0)
    assert (a.calls, b.calls) == expected
    with pytest.raises(ConfigError, match="clip_weights"):
        PixelStory(PROMPTS, [a, b], PixelOptions(), 8, 8, perceptor_weights=[1.0])


def test_negative_prompt_is_pushed_away():
    p = TinyPerceptor()
    pos = PixelStory(["a tree"], [p], PixelOptions(frames_per_prompt=1, views=2, first_steps=30, negative_prompts=[]), 24, 24)
    neg = PixelStory(["a tree"], [p], PixelOptions(frames_per_prompt=1, views=2, first_steps=30, negative_prompts=["Words and text.:2"]), 24, 24)
    e = p.encode_text(["Words and text."])[0]
    torch.manual_seed(0)
    sim = lambda img: float(p.encode_image(torch.nn.functional.interpolate(img, size=(32, 32))) @ e)  # noqa: E731
    assert sim(neg.run(seed=0)[0]) < sim(pos.run(seed=0)[0])
