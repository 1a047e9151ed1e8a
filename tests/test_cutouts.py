"""The cutout modes of ``generation.cutouts.mode``: ``crops`` (random crops, the default) and ``pooled``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from vqclip.errors import ConfigError
from vqclip.production import cutouts as cutouts_mod
from vqclip.production.cutouts import CUTOUT_MODES, Cutouts
from vqclip.settings.render import load_config

PRESETS = Path(__file__).resolve().parents[1] / "presets"


def _halves(h: int = 64, w: int = 112) -> torch.Tensor:
    """Red left half, blue right half."""
    img = torch.zeros(1, 3, h, w)
    img[:, 0, :, : w // 2] = 1.0
    img[:, 2, :, w // 2 :] = 1.0
    return img


def test_pooled_every_cutout_sees_the_whole_frame_and_thin_lines_survive(monkeypatch):
    """Without augmentation and noise, each pooled cutout is the whole frame: red left, blue right, the line kept."""
    monkeypatch.setattr(cutouts_mod, "POOLED_NOISE", 0.0)
    img = _halves()
    img[:, 1, 10, :] = 1.0  # a 1-px green line: plain 2x average pooling would halve it
    cut = Cutouts(32, 5, mode="pooled")
    cut.augment = torch.nn.Identity()
    out = cut(img)
    assert out.shape == (5, 3, 32, 32)
    assert torch.equal(out[0], out[4])  # no randomness left: the same whole-frame view every time
    assert out[:, 0, :, :16].min() == 1.0 and out[:, 2, :, :16].max() == 0.0
    assert out[:, 2, :, 16:].min() == 1.0 and out[:, 0, :, 16:].max() == 0.0
    assert out[:, 1].amax(dim=(1, 2)).min() >= 0.75  # (avg 0.5 + max 1) / 2


def test_crops_mode_sees_parts_of_the_frame_pooled_mode_does_not():
    """With small crops (cut_pow 5) some crops are all red or all blue; pooled cutouts always hold both."""
    img = _halves(96, 256)
    torch.manual_seed(0)
    crops = Cutouts(32, 24, cut_pow=5.0, mode="crops")(img)
    torch.manual_seed(0)
    pooled = Cutouts(32, 24, cut_pow=5.0, mode="pooled")(img)
    both = lambda b: ((b[:, 0] > 0.5).flatten(1).any(1) & (b[:, 2] > 0.5).flatten(1).any(1))
    assert not both(crops).all()
    assert both(pooled).float().mean() >= 0.9  # only a rare erase box or warp hides one half


def test_pooled_ignores_cut_pow_shares_one_erase_box_and_is_not_clamped():
    img = torch.full((1, 3, 48, 80), 0.97)
    outs = []
    for cut_pow in (0.2, 5.0):
        torch.manual_seed(3)
        cut = Cutouts(24, 16, cut_pow=cut_pow, mode="pooled")
        outs.append(cut(img))
        erase = next(p for p in cut.augment._params if p.name.startswith("RandomErasing"))
        for k in ("widths", "heights", "xs", "ys", "batch_prob"):
            v = erase.data[k]
            assert torch.equal(v, v[:1].expand_as(v)), k  # one box for every cutout
    assert torch.equal(outs[0], outs[1])
    assert outs[0].max() > 1.0 and outs[0].min() < 0.0  # added noise, no clamp to [0, 1]


def test_crops_mode_clamps_and_default_is_crops():
    torch.manual_seed(0)
    out = Cutouts(24, 8, cut_pow=1.0, augmentations=["noise", "jitter"])(torch.full((1, 3, 40, 40), 0.99))
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert Cutouts(24, 2).mode == "crops"
    assert load_config(PRESETS / "default.yaml").generation.objective_options.mode == "crops"


def test_mode_setting_is_validated_with_one_clear_error():
    data = yaml.safe_load((PRESETS / "default.yaml").read_text(encoding="utf-8"))
    data["generation"]["cutouts"]["mode"] = "pool"
    with pytest.raises(ConfigError) as exc:
        load_config(data)
    msg = str(exc.value)
    assert "generation.cutouts.mode" in msg and "'pool'" in msg
    assert all(m in msg for m in CUTOUT_MODES)


def test_notebook_look_preset_uses_the_pooled_mode_and_the_openai_perceptor():
    cfg = load_config(PRESETS / "notebook_look.yaml")
    assert cfg.generation.objective_options.mode == "pooled" and cfg.generation.objective_options.cutn == 32
    assert [p.spec for p in cfg.models.clip] == ["ViT-B-32/openai"]
    assert (cfg.size.width, cfg.size.height, cfg.animation.frames) == (512, 512, 1)


def test_pooled_objective_renders_the_toy_preset_and_lowers_the_loss(tmp_path):
    """End to end on the toy models: the cutouts objective builds pooled makers and the loss goes down."""
    from vqclip.production.render import render

    data = yaml.safe_load((PRESETS / "default.yaml").read_text(encoding="utf-8"))
    data["generation"].update(iterations_first_frame=30, iterations_per_frame=1)
    data["generation"]["cutouts"] = {"mode": "pooled", "cutn": 8}
    data["animation"]["frames"] = 1
    data["output"] = {"fps": 12, "images_interval": 0, "video": False}
    losses = []
    render(load_config(data), tmp_path / "run", callback=lambda e: losses.append(e["losses"]["total"]) if e.get("event") == "iteration" else None)
    assert (tmp_path / "run" / "frames").exists()
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
