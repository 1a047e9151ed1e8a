"""The diffusion estimate counts the UNet passes the engines really make and traces memory like a fused-attention GPU."""

from __future__ import annotations

import pytest
import torch


from tests.helpers_diffusion import dummy_motion_adapter_folder, dummy_sd_folder
from vqclip.production.animate import Motion
from vqclip.production.prompts import Prompt, Scene, Timeline

TIMELINE = Timeline((Scene((Prompt("fox"),), (), 9),))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("est")
    return dummy_sd_folder(root / "sd"), dummy_motion_adapter_folder(root / "adapter")


def count_unet_samples(unet) -> list[int]:
    seen: list[int] = []
    unet.register_forward_pre_hook(lambda m, args, kwargs: seen.append(args[0].shape[0] * (args[0].shape[2] if args[0].ndim == 5 else 1)), with_kwargs=True)
    return seen


def test_t2v_zero_estimate_counts_every_unet_pass(folders):
    from vqclip.models.diffusion import load_sd_components
    from vqclip.preproduction.diffusion_estimate import estimate_sampled
    from vqclip.production.engines.t2v_zero import T2VZeroOptions, T2VZeroEngine

    opts = T2VZeroOptions(steps=4, noise_timestep=800, motion_timestep=500, chunk_size=4, guidance_scale=2.0)
    s = T2VZeroEngine(load_sd_components(folders[0]), opts, timeline=TIMELINE, motions=[Motion()] * 9, height=32, width=32, seed=0)
    seen = count_unet_samples(s.unet)
    for chunk in s.frame_chunks:
        s.sample(chunk)
    e = estimate_sampled("t2v_zero", 32, 32, 9, opts, "fp32", model_folder=folders[0])
    assert e.unet_samples == sum(seen) == 2 * (2 + 4 * (4 + 4 + 3))  # anchor to T′, then 3 chunks of 4 steps
    assert e.steps == 2 + 3 * 4 and max(seen) == 2 * 4


def test_animatediff_estimate_counts_window_passes(folders):
    from vqclip.models.diffusion import load_motion_adapter, load_sd_components
    from vqclip.preproduction.diffusion_estimate import estimate_sampled
    from vqclip.production.engines.animatediff import AnimateDiffOptions, AnimateDiffEngine

    opts = AnimateDiffOptions(steps=2, context_frames=4, context_overlap=1)
    s = AnimateDiffEngine(load_sd_components(folders[0]), load_motion_adapter(folders[1]), opts,
                           timeline=TIMELINE, frames=9, height=32, width=32, seed=0)
    seen = count_unet_samples(s.unet)
    s.sample(range(9))
    e = estimate_sampled("animatediff", 32, 32, 9, opts, "fp32", folders[0], folders[1])
    assert e.unet_samples == sum(seen) == 2 * 2 * (4 + 4 + 4)  # windows 0-3, 3-6, 5-8
    assert e.denoise_bytes > 0 and e.decode_bytes > 0


def test_unet_flops_match_a_real_forward(folders):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from vqclip.models.diffusion import load_sd_components
    from vqclip.preproduction.diffusion_estimate import estimate_sampled
    from vqclip.production.engines.t2v_zero import T2VZeroOptions

    opts = T2VZeroOptions(steps=1, guidance_scale=1.0, chunk_size=2, noise_timestep=999, motion_timestep=999)
    e = estimate_sampled("t2v_zero", 32, 32, 1, opts, "fp32", model_folder=folders[0])
    unet = load_sd_components(folders[0]).unet
    # the math backend runs attention as matmuls, which FlopCounterMode counts (the fused CPU kernel is not)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        unet(torch.randn(1, 4, 16, 16), 10, encoder_hidden_states=torch.randn(1, 77, 16))  # 32 px / 2 px per cell
    assert e.unet_samples == 1
    assert e.unet_tflop * 1e12 == pytest.approx(fc.get_total_flops(), rel=0.02)


def test_sd15_memory_grows_with_size_and_chunk_and_offload_saves_weights():
    from vqclip.preproduction.diffusion_estimate import estimate_sampled
    from vqclip.production.engines.t2v_zero import T2VZeroOptions

    small = estimate_sampled("t2v_zero", 384, 384, 8, T2VZeroOptions(chunk_size=4))
    big = estimate_sampled("t2v_zero", 512, 512, 8, T2VZeroOptions(chunk_size=4))
    chunky = estimate_sampled("t2v_zero", 512, 512, 8, T2VZeroOptions(chunk_size=8))
    offload = estimate_sampled("t2v_zero", 512, 512, 8, T2VZeroOptions(chunk_size=8, offload=True))
    assert small.total_bytes < big.total_bytes < chunky.total_bytes
    assert offload.total_bytes < chunky.total_bytes - 2**29
    # SD 1.5 at 512 px: ~0.8 TFLOP per UNet pass (FlopCounterMode) and fp16 weights ~2.3 GB with the fp32 VAE
    per_pass = big.unet_tflop / big.unet_samples
    assert 0.7 < per_pass < 0.9
    assert 2.1e9 < big.denoise_weights_bytes < 2.5e9
    assert big.total_bytes < 14.7 * 2**30  # a T4 holds it
