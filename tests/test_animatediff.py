"""AnimateDiff engine on a tiny random SD UNet + MotionAdapter: windows, timeline, determinism, Stop."""

from __future__ import annotations

import pytest
import torch


from tests.helpers_diffusion import dummy_motion_adapter_folder, dummy_sd_folder
from vqclip.errors import ConfigError
from vqclip.production.prompts import Prompt, Scene, Timeline

TIMELINE = Timeline((Scene((Prompt("a red fox"),), (), 3), Scene((Prompt("blue sea"),), (), 3)))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("ad")
    return dummy_sd_folder(root / "sd"), dummy_motion_adapter_folder(root / "adapter")


def make_sampler(folders, frames=6, seed=1, **over):
    from vqclip.models.diffusion import load_motion_adapter, load_sd_components
    from vqclip.production.engines.animatediff import AnimateDiffOptions, AnimateDiffEngine

    opts = AnimateDiffOptions(**{"steps": 3, "guidance_scale": 2.0, **over})
    return AnimateDiffEngine(
        load_sd_components(folders[0]), load_motion_adapter(folders[1]), opts,
        timeline=TIMELINE, frames=frames, height=32, width=32, seed=seed,
    )


def test_context_windows_cover_every_frame_and_end_on_the_last():
    from vqclip.production.engines.animatediff import context_windows, window_weights

    assert context_windows(12, 16, 4) == [range(12)]
    assert context_windows(40, 16, 4) == [range(0, 16), range(12, 28), range(24, 40)]
    assert context_windows(20, 16, 4) == [range(0, 16), range(4, 20)]
    assert window_weights(5).tolist() == [1, 2, 3, 2, 1]


def test_same_seed_same_video_other_seed_other_video(folders):
    a = make_sampler(folders).sample(range(6))
    b = make_sampler(folders).sample(range(6))
    c = make_sampler(folders, seed=2).sample(range(6))
    assert len(a) == 6 and all(x.shape == (1, 3, 32, 32) and 0 <= x.min() and x.max() <= 1 for x in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert (a[0] - c[0]).abs().mean() > 1e-3


def test_motion_modules_couple_the_frames(folders, monkeypatch):
    from vqclip.production.engines import animatediff

    base = make_sampler(folders).sample(range(6))
    plain = animatediff.frame_noise
    # change only the last frame's noise: frame 0 moves too, through temporal attention alone
    monkeypatch.setattr(animatediff, "frame_noise", lambda seed, f, shape, salt="noise": plain(seed + (f == 5), f, shape, salt))
    other = make_sampler(folders).sample(range(6))
    assert (base[0] - other[0]).abs().mean() > 1e-5
    assert (base[5] - other[5]).abs().mean() > 10 * (base[0] - other[0]).abs().mean()


def test_sliding_windows_blend_overlapping_predictions(folders):
    windowed = make_sampler(folders, context_frames=4, context_overlap=2)
    assert windowed.windows == [range(0, 4), range(2, 6)]
    plain = make_sampler(folders, frames=4)  # one 4-frame window: the UNet's own prediction
    torch.manual_seed(0)
    x = torch.randn(1, 4, 6, 8, 8)
    cond, uncond = windowed.text.frames(TIMELINE, range(6))
    with torch.no_grad():
        blended = windowed._predict(x, 500, cond, uncond)
        first = plain._predict(x[:, :, 0:4], 500, cond[0:4], uncond[0:4])
        second = plain._predict(x[:, :, 2:6], 500, cond[2:6], uncond[2:6])
    # frames only one window sees take its prediction; shared ones the pyramid-weighted mean (1,2,2,1)
    torch.testing.assert_close(blended[:, :, 0:2], first[:, :, 0:2])
    torch.testing.assert_close(blended[:, :, 4:6], second[:, :, 2:4])
    torch.testing.assert_close(blended[:, :, 2], (2 * first[:, :, 2] + 1 * second[:, :, 0]) / 3)
    torch.testing.assert_close(blended[:, :, 3], (1 * first[:, :, 3] + 2 * second[:, :, 1]) / 3)
    assert (first[:, :, 2] - second[:, :, 0]).abs().mean() > 1e-3  # the windows really disagree


@pytest.mark.parametrize("scheduler", ["euler_a", "dpm++"])
def test_scheduler_choice_is_deterministic(folders, scheduler):
    a = make_sampler(folders, frames=4, scheduler=scheduler).sample(range(4))
    b = make_sampler(folders, frames=4, scheduler=scheduler).sample(range(4))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_stop_returns_none_and_a_rerun_gives_the_same_frames(folders):
    s = make_sampler(folders)
    seen = []
    assert s.sample(range(6), lambda e: seen.append(e) or ("stop" if e.get("iteration") == 2 else None)) is None
    assert [e["iteration"] for e in seen if e["event"] == "iteration"] == [1, 2]
    assert s.frame_chunks == [range(6)] and s.state_dict() == {}
    again = make_sampler(folders)
    again.load_state_dict({})
    torch.testing.assert_close(again.sample(range(6))[3], make_sampler(folders).sample(range(6))[3])


def test_negative_prompt_changes_the_video(folders):
    a = make_sampler(folders, frames=4).sample(range(4))
    b = make_sampler(folders, frames=4, negative_prompt="dark").sample(range(4))
    assert (a[0] - b[0]).abs().mean() > 1e-5


@pytest.mark.parametrize(
    "over, message",
    [
        ({"scheduler": "lms"}, r"generation.animatediff.scheduler: .lms. is not allowed; use one of ddim"),
        ({"context_overlap": 16}, r"generation.animatediff.context_overlap: 16 .* 0 to context_frames - 1 \(15\)"),
        ({"context_frames": 40}, r"generation.animatediff.context_frames: 40 is more than this motion adapter handles \(32\)"),
    ],
)
def test_bad_options_name_the_setting(folders, over, message):
    with pytest.raises(ConfigError, match=message):
        make_sampler(folders, **over)
