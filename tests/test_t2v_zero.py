"""Text2Video-Zero engine (paper 001) on tiny random SD components: attention, motion, chunks, resume."""

from __future__ import annotations

import pytest
import torch


from tests.helpers_diffusion import dummy_sd_folder
from vqclip.errors import ConfigError
from vqclip.production.animate import Motion
from vqclip.production.prompts import Prompt, Scene, Timeline


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return dummy_sd_folder(tmp_path_factory.mktemp("sd"))


@pytest.fixture
def components(sd_folder):
    from vqclip.models.diffusion import load_sd_components

    return load_sd_components(sd_folder)


TIMELINE = Timeline((Scene((Prompt("a red fox"),), (), 4), Scene((Prompt("blue sea"),), (), 4)))
OPTS = dict(steps=4, noise_timestep=800, motion_timestep=500, guidance_scale=3.0)


def make_sampler(components, frames=7, seed=3, motion=Motion(translation_x=4.0), **over):
    from vqclip.production.engines.t2v_zero import T2VZeroOptions, T2VZeroEngine

    opts = T2VZeroOptions(**{**OPTS, "chunk_size": 4, **over})
    return T2VZeroEngine(components, opts, timeline=TIMELINE, motions=[motion] * frames, height=32, width=32, seed=seed)


def render_all(sampler):
    return [img for chunk in sampler.frame_chunks for img in sampler.sample(chunk)]


# --- cross-frame attention ------------------------------------------------------------------------


def test_cross_frame_attention_uses_first_frame_keys_and_values():
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    from vqclip.production.engines.t2v_zero import CrossFrameAttnProcessor

    torch.manual_seed(0)
    attn = Attention(query_dim=8, heads=2, dim_head=4).eval()
    groups, frames, tokens = 2, 3, 5
    h = torch.randn(groups * frames, tokens, 8)
    with torch.no_grad():
        out = CrossFrameAttnProcessor()(attn, h, frames=frames)
        plain = AttnProcessor2_0()(attn, h)
        g = h.view(groups, frames, tokens, 8)
        for gi in range(groups):
            anchor = g[gi, 0]
            k, v = attn.to_k(anchor), attn.to_v(anchor)
            for f in range(frames):
                q = attn.to_q(g[gi, f])
                qh, kh, vh = (x.view(tokens, 2, 4).transpose(0, 1) for x in (q, k, v))
                weights = torch.softmax(qh @ kh.transpose(-1, -2) / 2.0, dim=-1)  # 1/sqrt(dim_head)
                expected = attn.to_out[0]((weights @ vh).transpose(0, 1).reshape(tokens, 8))
                torch.testing.assert_close(out[gi * frames + f], expected, atol=1e-5, rtol=1e-5)
    # frame 1 of each group is plain self-attention; later frames are not
    first = torch.arange(groups) * frames
    torch.testing.assert_close(out[first], plain[first], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(out[first + 1], plain[first + 1], atol=1e-3)


def test_cross_frame_attention_leaves_text_cross_attention_alone():
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    from vqclip.production.engines.t2v_zero import CrossFrameAttnProcessor

    torch.manual_seed(1)
    attn = Attention(query_dim=8, cross_attention_dim=6, heads=2, dim_head=4).eval()
    h, text = torch.randn(4, 5, 8), torch.randn(4, 3, 6)
    with torch.no_grad():
        torch.testing.assert_close(CrossFrameAttnProcessor()(attn, h, text, frames=4), AttnProcessor2_0()(attn, h, text))


def test_first_frame_of_the_unet_output_is_unchanged(components):
    from vqclip.production.engines.t2v_zero import install_cross_frame_attention

    unet = components.unet
    torch.manual_seed(2)
    x, emb = torch.randn(3, 4, 8, 8), torch.randn(3, 16, 16)
    with torch.no_grad():
        alone = unet(x[:1], 500, encoder_hidden_states=emb[:1]).sample
        batch_plain = unet(x, 500, encoder_hidden_states=emb).sample
        install_cross_frame_attention(unet)
        cross = unet(x, 500, encoder_hidden_states=emb, cross_attention_kwargs={"frames": 3}).sample
    torch.testing.assert_close(cross[:1], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(cross[1:], batch_plain[1:], atol=1e-4)


# --- motion in the latents ------------------------------------------------------------------------


def test_translation_schedule_shifts_the_latent_by_delta_per_frame():
    from vqclip.production.engines.t2v_zero import latent_motion_matrices, warp_latents

    torch.manual_seed(3)
    latent = torch.randn(1, 4, 16, 16)
    # 8 px right and 16 px down per frame = 1 and 2 latent cells at 8 px per cell
    motions = [Motion(translation_x=8.0, translation_y=16.0)] * 4
    m = latent_motion_matrices(motions, [0, 1, 2, 3], 16, 16, cells=8)
    torch.testing.assert_close(m[:, :, 2], torch.tensor([[0.0, 0.0], [1.0, 2.0], [2.0, 4.0], [3.0, 6.0]]))
    warped = warp_latents(latent, m, mode="nearest")
    assert torch.equal(warped[0], latent[0])
    for k in (1, 2, 3):
        dx, dy = k, 2 * k  # δ_k = (k-1)·δ counted from frame 0 (the paper's frame 1)
        torch.testing.assert_close(warped[k, :, dy:, dx:], latent[0, :, : 16 - dy, : 16 - dx])


def test_zoom_and_rotation_compose_frame_after_frame():
    from vqclip.production.animate import affine_matrix
    from vqclip.production.engines.t2v_zero import latent_motion_matrices

    step = Motion(zoom=1.1, angle=5.0, translation_x=8.0)
    m = latent_motion_matrices([step] * 3, [2], 16, 16, cells=8)[0]
    one = torch.eye(3)
    one[:2] = affine_matrix(Motion(1.1, 5.0, 1.0, 0.0), 16, 16)[0]
    torch.testing.assert_close(m, (one @ one)[:2])


# --- chunks, anchor, determinism, resume ----------------------------------------------------------


def test_chunk_ranges_leave_room_for_the_anchor():
    from vqclip.production.engines.t2v_zero import chunk_batch_frames, chunk_ranges

    assert chunk_ranges(10, 4) == [range(0, 4), range(4, 7), range(7, 10)]
    assert chunk_ranges(3, 8) == [range(0, 3)]
    assert chunk_batch_frames(range(0, 4)) == [0, 1, 2, 3]
    assert chunk_batch_frames(range(4, 7)) == [0, 4, 5, 6]


def test_chunking_keeps_the_anchor_frames_equal_any_chunk_size(components):
    small = render_all(make_sampler(components, chunk_size=3))
    whole = render_all(make_sampler(components, chunk_size=7))
    assert len(small) == len(whole) == 7
    for a, b in zip(small, whole):
        torch.testing.assert_close(a, b, atol=2e-4, rtol=0)
    # the frames are not all the same picture: the motion and the prompt blend change them
    assert (small[0] - small[-1]).abs().mean() > 1e-3


def test_same_seed_same_video_other_seed_other_video(components):
    a = render_all(make_sampler(components, seed=5))
    b = render_all(make_sampler(components, seed=5))
    c = render_all(make_sampler(components, seed=6))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert (a[0] - c[0]).abs().mean() > 1e-3
    assert all(x.shape == (1, 3, 32, 32) and 0 <= x.min() and x.max() <= 1 for x in a)


def test_stop_then_resume_from_state_equals_uninterrupted(components):
    full = render_all(make_sampler(components))
    first = make_sampler(components)
    got = first.sample(first.frame_chunks[0])
    state = first.state_dict()
    stopped = first.sample(first.frame_chunks[1], lambda e: "stop" if e["event"] == "iteration" else None)
    assert stopped is None
    resumed = make_sampler(components)  # a fresh process: new models, state from the run folder
    resumed.load_state_dict(state)
    for chunk in resumed.frame_chunks[1:]:
        got += resumed.sample(chunk)
    assert all(torch.equal(x, y) for x, y in zip(got, full))


def test_events_report_every_denoising_step_and_previews(components):
    s = make_sampler(components, chunk_size=7)
    s.preview_every = 2
    events = []
    s.sample(s.frame_chunks[0], events.append)
    steps = [e for e in events if e["event"] == "iteration"]
    # 2 steps for frame 1 alone (to T′), then 4 joint steps from T (T=751 is the first timestep)
    assert [e["iteration"] for e in steps] == [1, 2, 3, 4, 5, 6]
    assert {e["iterations"] for e in steps} == {6} and all(e["losses"] == {} for e in steps)
    previews = [e for e in events if e["event"] == "preview"]
    assert [e["iteration"] for e in previews] == [4, 6] and previews[0]["image"].size == (32, 32)


# --- timeline conditioning ------------------------------------------------------------------------


def test_scene_blend_and_negative_prompts_condition_each_frame(components):
    from vqclip.production.engines.diffusion_common import Placement, TextConditioner

    text = TextConditioner(components.tokenizer, components.text_encoder, Placement(torch.device("cpu")), "ugly")
    a, b, ugly, dark = text.encode(["a red fox", "blue sea", "ugly", "dark"])
    timeline = Timeline((Scene((Prompt("a red fox"), Prompt("dark", -0.5)), (), 4), Scene((Prompt("blue sea"),), (), 4)))
    cond, uncond = text.frames(timeline, [0, 2, 5])
    torch.testing.assert_close(cond[0], a)
    torch.testing.assert_close(cond[1], 0.5 * a + 0.5 * b)  # halfway through scene 1 (paper 000, eq. 1)
    torch.testing.assert_close(cond[2], b)
    torch.testing.assert_close(uncond[0], (ugly + 0.5 * dark) / 1.5)
    torch.testing.assert_close(uncond[1], (ugly + 0.25 * dark) / 1.25)
    torch.testing.assert_close(uncond[2], ugly)


def test_image_prompts_are_one_clear_error(components, tmp_path):
    from vqclip.production.engines.diffusion_common import Placement, TextConditioner

    text = TextConditioner(components.tokenizer, components.text_encoder, Placement(torch.device("cpu")), engine="t2v_zero")
    timeline = Timeline((Scene((Prompt("fox"),), (Prompt("ref.png", is_image=True),), 2),))
    with pytest.raises(ConfigError, match=r"prompts.target_images: 'ref.png' cannot be used by the t2v_zero engine"):
        text.frames(timeline, [0])


@pytest.mark.parametrize(
    "over, message",
    [
        ({"chunk_size": 1}, r"generation.t2v_zero.chunk_size: 1 is not allowed"),
        ({"motion_timestep": 950}, r"generation.t2v_zero.motion_timestep: 950 .* noise_timestep \(800\)"),
        ({"warp_mode": "cubic"}, r"generation.t2v_zero.warp_mode: .cubic. is not allowed; use one of nearest, bilinear"),
    ],
)
def test_bad_options_name_the_setting(components, over, message):
    with pytest.raises(ConfigError, match=message):
        make_sampler(components, **over)


def test_step_plan_matches_the_paper():
    from vqclip.production.engines.t2v_zero import chunk_steps, step_plan

    # 50 DDIM steps 981, 961, 941, ...: T=941 after 2 steps, T′=881 after 5 (the paper's t1=47, t0=44)
    assert step_plan(50, 941, 881) == (2, 5)
    assert chunk_steps(range(0, 8), 50, 941, 881) == 5 + 48
    assert chunk_steps(range(8, 15), 50, 941, 881) == 48


def test_fp16_overflow_is_one_clear_error():
    from vqclip.errors import ModelError
    from vqclip.production.engines.diffusion_common import Placement, check_finite

    bad = torch.tensor([[0.0, float("nan")]])
    with pytest.raises(ModelError, match=r"'t2v_zero' produced NaN/inf latents on cuda in float16; use generation.precision: fp32"):
        check_finite(bad, Placement(torch.device("cuda"), torch.float16), "t2v_zero")
    check_finite(torch.zeros(2), Placement(torch.device("cpu")), "t2v_zero")
