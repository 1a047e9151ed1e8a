"""Pre-production by the configured engine: the first-frame preview and the estimate on the bundled presets."""

from __future__ import annotations

import pytest

from vqclip.preproduction.preview import estimate_config, preview_first_frame
from vqclip.settings.render import load_config
from vqclip.ui.common import preset_data, smoke_preset

SMALL = ["models.clip=[toy]", "size.width=32", "size.height=24", "generation.device=cpu", "generation.iterations_first_frame=2",
         "generation.pixels.post_denoise=none", "generation.views.count=1"]


def test_preview_of_the_pixel_preset_renders_frame_zero_with_its_own_steps(tmp_path):
    cfg = load_config("diver_story", SMALL)
    events = []
    result = preview_first_frame(cfg, tmp_path / "preview", callback=events.append)
    steps = [e for e in events if e["event"] == "iteration"]
    assert result.completed and [p.name for p in result.frames] == ["000000.png"]
    assert len(steps) == 2 and steps[-1]["total_iterations"] == 2  # the pixel generator's first frame, not a VQGAN's
    assert "views" not in steps[-1]["losses"] and result.video is None


def test_preview_of_the_smoke_shrunk_pixel_preset_does_not_raise(tmp_path):
    cfg = load_config(smoke_preset(preset_data("diver_story")))
    assert cfg.generation.engine == "pixels" and cfg.generation.iterations_first_frame == 4
    assert preview_first_frame(cfg, tmp_path / "p").completed


def test_estimate_config_follows_the_engine():
    pixels = estimate_config(load_config("diver_story"))
    vqgan = estimate_config(load_config("diver_story", ["generation.engine=vqgan", "generation.pixels={}", "generation.views={}",
                                                        "models.vqgan=imagenet_f16_16384"]))
    assert pixels.cutn == 4  # the views objective's count, not cutouts.cutn (32)
    assert pixels.total_bytes < 0.5 * vqgan.total_bytes  # no decoder: ~2.7 GiB against ~10 GiB


def test_diffusion_engines_are_estimated_by_their_own_estimator_and_offer_the_largest_size_that_fits():
    import vqclip
    from vqclip.preproduction.estimate import T4, check_fit

    small = vqclip.estimate_config(vqclip.load_config("t2v_zero_t4"))
    assert small.engine == "t2v_zero" and 1.0 < small.total_gib < T4.total_bytes / 2**30
    assert "frames" in small.summary() and "T4" in small.summary()
    big = check_fit(vqclip.load_config("t2v_zero_t4", ["size.width=2048", "size.height=2048"]), gpu=T4)
    assert not big.fits and big.largest is not None
    w, h = big.largest
    assert w == h and w % 8 == 0 and w < 2048  # the same aspect, a size the VAE can take
    assert check_fit(vqclip.load_config("t2v_zero_t4", [f"size.width={w}", f"size.height={h}"]), gpu=T4).fits
