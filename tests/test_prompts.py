"""Prompt syntax, the scene timeline (paper 000 eq. 1), the spherical distance loss and the prompt bank."""

import math

import pytest
import torch

from vqclip.settings.render import PromptsConfig, SceneConfig
from vqclip.errors import ConfigError
from vqclip.production.prompts import Prompt, PromptBank, Scene, Timeline, build_timeline, parse_prompts, spherical_dist_loss


def test_text_weight_stop_joined_by_bars():
    ps = parse_prompts("a red circle | blue sky:-0.5 | sunset:2:0.3")
    assert ps == [Prompt("a red circle"), Prompt("blue sky", -0.5), Prompt("sunset", 2.0, 0.3)]
    assert parse_prompts(["a", "b:3"]) == [Prompt("a"), Prompt("b", 3.0)]
    # only numeric tails are fields: URLs and ratios keep their colons
    assert parse_prompts("http://x.org/a.png")[0].text == "http://x.org/a.png"
    assert parse_prompts("ratio 3:4 frame:0.5") == [Prompt("ratio 3:4 frame", 0.5)]
    assert str(Prompt("b", -0.5, 0.1)) == "b:-0.5:0.1"


@pytest.mark.parametrize(
    "text, column, words",
    [("a:", 1, "no number after it"), (":1", 0, "no text"), ("a||b", 1, "empty prompt"), ("a:inf", 1, "not a finite")],
)
def test_prompt_errors_point_at_the_character(text, column, words):
    with pytest.raises(ConfigError) as info:
        parse_prompts(text, "prompts.texts")
    msg = str(info.value)
    assert msg.startswith(f"prompts.texts={text!r}") and words in msg
    assert msg.splitlines()[2].index("^") - 4 == column


def test_image_prompts_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="prompts.target_images: image 'nope.png' is not a file"):
        parse_prompts("nope.png:0.5", "prompts.target_images", is_image=True)
    (tmp_path / "a.png").write_bytes(b"x")
    p = parse_prompts(f"{tmp_path / 'a.png'}:0.5", "prompts.target_images", is_image=True)[0]
    assert p.is_image and p.weight == 0.5


def test_timeline_blends_neighbouring_scenes_linearly():
    tl = Timeline((Scene((Prompt("a"),), (), 4), Scene((Prompt("b"),), (), 2), Scene((Prompt("c"),), (), 3)))
    assert tl.total_frames == 9
    assert tl.weights(0) == [(0, 1.0)]  # the first frame sees only the first scene
    assert tl.weights(1) == [(0, 0.75), (1, 0.25)]
    assert tl.weights(3) == [(0, 0.25), (1, 0.75)]
    assert tl.weights(4) == [(1, 1.0)]
    assert tl.weights(5) == [(1, 0.5), (2, 0.5)]
    assert tl.weights(8) == [(2, 1.0)] and tl.weights(50) == [(2, 1.0)]  # the last scene holds
    for f in range(9):
        assert sum(w for _, w in tl.weights(f)) == pytest.approx(1.0)
    assert tl.describe(1) == "a (x0.75) | b (x0.25)"


def test_a_scene_blend_holds_then_mixes_its_last_frames_and_zero_is_a_cut():
    tl = Timeline((Scene((Prompt("a"),), (), 6, blend=2), Scene((Prompt("b"),), (), 3, blend=0), Scene((Prompt("c"),), (), 2)))
    assert [tl.weights(f) for f in range(4)] == [[(0, 1.0)]] * 4  # held at full weight
    assert tl.weights(4) == [(0, pytest.approx(2 / 3)), (1, 1 / 3)] and tl.weights(5) == [(0, pytest.approx(1 / 3)), (1, 2 / 3)]  # the last 2 mix
    assert tl.weights(6) == [(1, 1.0)] and tl.weights(8) == [(1, 1.0)]  # blend 0: b holds to its last frame
    assert tl.weights(9) == [(2, 1.0)]  # ... and c starts on the next: a cut
    # the default mixes every frame but the first, exactly as blend = frames - 1 does
    default = Timeline((Scene((Prompt("a"),), (), 4), Scene((Prompt("b"),), (), 2)))
    explicit = Timeline((Scene((Prompt("a"),), (), 4, blend=3), Scene((Prompt("b"),), (), 2)))
    assert [explicit.weights(f) for f in range(6)] == [default.weights(f) for f in range(6)]


def test_scene_blend_is_read_from_a_preset_and_checked_against_its_frames(tmp_path):
    from vqclip.settings.render import load_config

    preset = tmp_path / "p.yaml"
    preset.write_text("prompts:\n  scenes:\n    - {texts: a red circle, frames: 4, blend: 1}\n    - {texts: a blue circle, frames: 4}\n"
                      "models: {vqgan: toy, clip: [{spec: toy}]}\n")
    cfg = load_config(preset)
    tl = build_timeline(cfg.prompts, cfg.animation.frames)
    assert [tl.weights(f) for f in range(5)] == [[(0, 1.0)]] * 3 + [[(0, 0.5), (1, 0.5)], [(1, 1.0)]]
    preset.write_text(preset.read_text().replace("blend: 1", "blend: 4"))
    with pytest.raises(ConfigError, match=r"prompts\.scenes\[0\]\.blend: 4 is not allowed; use a whole number 0\.\.3"):
        load_config(preset)


def test_build_timeline_with_style_prompts_on_every_scene():
    cfg = PromptsConfig(texts="oil painting:0.5", scenes=[SceneConfig("a dog", "", 2), SceneConfig("a cat", "", 2)])
    tl = build_timeline(cfg, 4)
    assert [(p.text, w) for p, w in tl.prompts_at(1)] == [("oil painting", 1.0), ("a dog", 0.5), ("a cat", 0.5)]
    assert tl.text_targets(1) == [("oil painting", 0.5), ("a dog", 0.5), ("a cat", 0.5)]  # scene blend x own weight
    pushed = build_timeline(PromptsConfig(texts="a dog|blurry:-1"), 2)
    assert pushed.text_targets(0) == [("a dog", 1.0)]  # what a frame is pushed away from is not what it should show
    plain = build_timeline(PromptsConfig(texts="a dog"), 5)
    assert plain.total_frames == 5 and plain.weights(4) == [(0, 1.0)]


def test_spherical_distance():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    y = torch.tensor([1.0, 0.0])
    d = spherical_dist_loss(x, y)
    assert d.tolist() == pytest.approx([0.0, 2 * (math.pi / 4) ** 2, 2 * (math.pi / 2) ** 2], abs=1e-6)
    assert spherical_dist_loss(3 * x, y).tolist() == pytest.approx(d.tolist(), abs=1e-6)  # scale-free


class _AxisPerceptor:
    """Embeds the texts "x" and "y" as unit axes: enough to check weights, signs and stops."""

    input_size = 8

    def encode_text(self, texts):
        return torch.stack([torch.tensor([1.0, 0.0]) if t == "x" else torch.tensor([0.0, 1.0]) for t in texts])


def test_bank_weights_signs_and_stop():
    tl = Timeline((Scene((Prompt("x", 2.0), Prompt("y", -1.0)), (), 1),))
    bank = PromptBank.build(tl, [_AxisPerceptor()], [0.5], "cpu")
    emb = torch.tensor([[1.0, 1.0]], requires_grad=True)
    loss, parts = bank.loss(0, [emb])
    q = 2 * (math.pi / 8) ** 2  # 45 degrees from each axis
    assert float(loss.detach()) == pytest.approx(0.5 * (2 * q - q))
    assert parts == pytest.approx({"x": q, "y": q})  # plain distances, for progress displays
    loss.backward()
    assert emb.grad.abs().sum() > 0
    # a stop above the current distance switches that prompt's pull off
    tl = Timeline((Scene((Prompt("x", 1.0, stop=1.0),), (), 1),))
    emb = torch.tensor([[1.0, 1.0]], requires_grad=True)
    PromptBank.build(tl, [_AxisPerceptor()], [1.0], "cpu").loss(0, [emb])[0].backward()
    assert emb.grad is None or emb.grad.abs().sum() == 0
