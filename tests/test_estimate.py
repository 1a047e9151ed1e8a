"""The GPU memory/time estimator: FLOPs as DESIGN.md measured them, its meta step() against the same step() on the CPU.

Calibration (documented in the estimator's README text): the estimate of one fp32 step's extra memory
(saved activations + gradients in flight + optimizer state) against the peak resident memory of a
real CPU step with the imagenet f16 VQGAN and ViT-B/32 (random weights) at 192x112, cutn 8, with
the four default augmentations: estimate 741 MB, measured 756 MB (-2%); at 128x128: 627 vs 647 MB (-3%).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from vqclip.errors import ConfigError
from vqclip.preproduction.estimate import GiB, GpuSpec, Estimator, T4, check_fit, detect_gpu, estimate, estimate_config
from vqclip.settings.render import load_config


@pytest.fixture(scope="module")
def imagenet():
    """The imagenet f16 VQGAN and ViT-B/32 on the meta device (no weights, no download)."""
    return Estimator.of("imagenet_f16_16384", ["ViT-B-32/openai"])


def test_flops_match_the_design_measurement(imagenet):
    s = imagenet.step(512, 512, 32, "fp32")
    clip_only = Estimator.of(None, ["ViT-B-32/openai"]).step(512, 512, 32, "fp32")  # pixels: no decoder
    assert clip_only.tflop == pytest.approx(0.567, abs=0.001)
    assert s.tflop - clip_only.tflop == pytest.approx(2.05, abs=0.03)  # the imagenet f16 decoder, forward + backward
    # a T4 step: fp16 tensor cores are several times faster than fp32
    assert s.seconds_per_iteration(T4) > 3 * imagenet.step(512, 512, 32, "fp16").seconds_per_iteration(T4)


def test_memory_grows_with_size_and_cutn_and_shrinks_with_fp16(imagenet):
    small, big = imagenet.step(256, 256, 32, "fp32"), imagenet.step(512, 512, 32, "fp32")
    assert big.activation_bytes > 2.5 * small.activation_bytes  # decoder activations scale with the pixels (CLIP does not)
    assert big.weights_bytes == small.weights_bytes
    assert imagenet.step(256, 256, 64, "fp32").activation_bytes > small.activation_bytes
    half = imagenet.step(512, 512, 32, "fp16")
    # autocast keeps norms and swish in fp32 (taming's decoder), so fp16 saves ~10-20%, not half
    assert 0.7 * big.activation_bytes < half.activation_bytes < 0.95 * big.activation_bytes
    assert half.precision == "fp16" and imagenet.step(64, 64, 4, "auto").precision == "fp16"
    # weights: VQGAN 76M + ViT-B/32 151M parameters in fp32
    assert big.weights_bytes == pytest.approx((76.07e6 + 151.28e6) * 4, rel=0.01)


def test_paper_setting_fits_a_t4_and_a_large_size_does_not(imagenet):
    fit = check_fit(imagenet, 640, 384, 32, "fp16", gpu=T4)
    assert fit.fits and fit.largest is None and "fits" in fit.message
    over = check_fit(imagenet, 1920, 1080, 32, "fp16", gpu=T4)
    assert not over.fits and "too big" in over.message and "T4" in over.message
    w, h = over.largest
    assert w % 16 == 0 and h % 16 == 0 and abs(w / h - 1920 / 1080) < 0.06
    assert imagenet.step(w, h, 32, "fp16").total_bytes <= T4.total_bytes
    assert imagenet.step(w + 64, h + 36, 32, "fp16").total_bytes > T4.total_bytes  # the next size up does not
    assert f"{w}x{h}" in over.message


def test_nothing_fits_a_tiny_gpu(imagenet):
    tiny = GpuSpec("tiny", 256 * 1024**2, 1.0, 1.0)
    report = check_fit(imagenet, 640, 360, 32, "fp16", gpu=tiny)
    assert not report.fits and report.largest is None and "smaller model" in report.message


def test_estimate_config_of_a_preset_dict():
    from vqclip.settings.render import load_config

    cfg = load_config({"prompts": {"texts": "a garden"}, "size": {"width": 640, "height": 360},
                       "models": {"vqgan": "imagenet_f16_16384", "clip": [{"spec": "ViT-B-32/openai"}]},
                       "generation": {"cutouts": {"cutn": 16}, "precision": "fp32"}})
    s = estimate_config(cfg)
    assert (s.width, s.height, s.cutn, s.precision) == (640, 360, 16, "fp32")
    assert 2 * GiB < s.total_bytes < 15 * GiB


def test_errors_name_the_setting(imagenet):
    with pytest.raises(ConfigError, match="generation.precision: 'fp8'"):
        imagenet.step(64, 64, 4, "fp8")
    with pytest.raises(ConfigError, match="generation.cutouts.cutn: 0"):
        imagenet.step(64, 64, 0)
    with pytest.raises(ConfigError, match="models.clip: 'NoSuchNet/x'"):
        Estimator.of("imagenet_f16_16384", ["NoSuchNet/x"])
    with pytest.raises(ConfigError, match=r"generation.cutouts.augmentations\[0\]: 'blur'"):
        Estimator.of("imagenet_f16_16384", ["ViT-B-32/openai"], ["blur"])
    with pytest.raises(ConfigError, match="generation.engine: 't2v_zero' has no step"):
        Estimator(load_config("t2v_zero_toy"))


def test_detect_gpu_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert detect_gpu() is None
    assert check_fit(Estimator.of("imagenet_f16_16384"), 256, 256).gpu_name == T4.name  # falls back to a T4


def _tiny_preset(taming_checkpoints, open_clip_files, **generation) -> dict:
    """The tiny VQGAN and CLIP files of conftest as a preset (the pixel generator reads no models.vqgan)."""
    config, ckpt, _ = taming_checkpoints["vq"]
    models = {"clip": [{"spec": {k: str(v) for k, v in open_clip_files.items()}}]}
    if generation.get("engine") != "pixels":
        models["vqgan"] = {"config": str(config), "checkpoint": str(ckpt)}
    return {"prompts": {"texts": "a red circle | blue stripes:-0.5"}, "size": {"width": 48, "height": 32}, "models": models,
            "generation": {"device": "cpu", "precision": "fp32", **generation}, "animation": {"frames": 2}}


def _cpu_step_saved_bytes(cfg) -> int:
    """Bytes autograd saves in one step() of the render's own generator and objective, with real weights on the CPU."""
    from vqclip.production.engines import get_engine
    from vqclip.production.engines.base import EngineContext
    from vqclip.production.objectives import get_objective
    from vqclip.production.precision import resolve_precision
    from vqclip.production.prompts import PromptBank, build_timeline
    from vqclip.production.render import _load_perceptors
    from vqclip.production.step import make_optimizer, step

    device = torch.device("cpu")
    ctx = EngineContext(cfg, device, cfg.size.height, cfg.size.width, precision=resolve_precision("fp32", device),
                        timeline=build_timeline(cfg.prompts, cfg.animation.frames))
    generator = get_engine(cfg.generation.engine).build(ctx)
    perceptors = _load_perceptors(cfg, device)
    weights = {t.untyped_storage()._cdata for m in [*perceptors, generator.model] for t in [*m.parameters(), *m.buffers()]}
    bank = PromptBank.build(ctx.timeline, perceptors, [1.0], device)
    objective = get_objective(cfg.generation.objective).build(ctx, perceptors, bank)
    optimizer = make_optimizer(cfg.generation.optimizer, generator, cfg.generation.lr)
    generator.start(None)
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s._cdata not in weights:
            seen[s._cdata] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step(generator, objective, optimizer, ctx.precision, 1, 0, generator.image())
    return sum(seen.values())


def test_the_meta_step_saves_what_the_same_step_saves_on_the_cpu(taming_checkpoints, open_clip_files):
    """Without augmentations (kornia does not run on meta) the estimate's saved bytes are those of the real step()."""
    cfg = load_config(_tiny_preset(taming_checkpoints, open_clip_files, cutouts={"cutn": 4, "augmentations": []}))
    traced = Estimator(cfg).step(48, 32, None, "fp32")
    assert (traced.cutn, traced.model, traced.clip) == (4, "vq", ["tiny-clip"])
    assert traced.activation_bytes == pytest.approx(_cpu_step_saved_bytes(cfg), rel=0.02)


def test_estimates_follow_the_step(taming_checkpoints, open_clip_files):
    """What the render's step does, the estimate prices: the cutout mode, the optimizer's state, the stability pull."""
    def est(**generation):
        return Estimator(load_config(_tiny_preset(taming_checkpoints, open_clip_files, **generation))).step(96, 64, None, "fp32")

    crops, pooled = est(cutouts={"mode": "crops", "cutn": 8}), est(cutouts={"mode": "pooled", "cutn": 8})
    assert pooled.activation_bytes != crops.activation_bytes  # priced by its own path, not like crops
    assert est(optimizer="sgd").optimizer_bytes == crops.optimizer_bytes // 2  # SGD keeps no moments: z and its gradient
    plain = est(engine="pixels", objective="cutouts", pixels={"temperature": 100}, cutouts={"cutn": 8})
    pulled = est(engine="pixels", objective="cutouts", pixels={"temperature": 0}, cutouts={"cutn": 8})
    assert pulled.activation_bytes - plain.activation_bytes == 96 * 64 * 3 * 4  # |frame - reference| saved once


def test_estimating_leaves_the_global_rng_alone(imagenet):
    torch.manual_seed(5)
    before = torch.get_rng_state()
    imagenet.step(64, 64, 4, "fp32")
    assert torch.equal(torch.get_rng_state(), before)


_PROBE = textwrap.dedent("""
    import json, os, resource, sys
    import torch, torch.nn.functional as F
    import open_clip
    from vqclip.production.cutouts import Cutouts
    from vqclip.models.registry import get_model_info
    from vqclip.models.vqgan import build_vqgan
    torch.set_num_threads(1)
    W, H, CUTN = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    def rss():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    with torch.device("meta"):
        vq = build_vqgan(get_model_info("imagenet_f16_16384").architecture)
    clip = open_clip.create_model("ViT-B-32", pretrained=None, device="meta")
    vq, clip = vq.to_empty(device="cpu").requires_grad_(False), clip.to_empty(device="cpu").requires_grad_(False)
    with torch.no_grad():
        for p in list(vq.parameters()) + list(clip.parameters()):
            p.normal_(0, 0.02)
    torch.manual_seed(0)
    cut = Cutouts(224, CUTN, 1.0, ["affine", "perspective", "jitter", "erasing"])
    z = torch.randn(1, 256, H // 16, W // 16, requires_grad=True)
    opt = torch.optim.Adam([z], lr=0.1)
    text = F.normalize(torch.randn(1, 512), dim=-1)
    base = rss()
    emb = F.normalize(clip.encode_image((cut(vq.decode(vq.quantize_st(z))) - 0.45) / 0.27), dim=-1)
    loss = (emb - text).norm(dim=-1).div(2).arcsin().pow(2).mul(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"delta": peak - base}))
""")


@pytest.mark.slow
def test_calibration_against_a_real_cpu_step(tmp_path):
    """The estimate of one fp32 step's extra memory is within 10% of a real CPU step's peak RSS (measured: -2%)."""
    script = tmp_path / "probe.py"
    script.write_text(_PROBE, encoding="utf-8")
    # Large blocks straight from mmap, so freed tensors leave the resident set at once and the peak is honest.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), "192", "112", "8"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    measured = json.loads(proc.stdout.strip().splitlines()[-1])["delta"]
    s = estimate(192, 112, cutn=8, precision="fp32")
    estimated = s.activation_bytes + s.transient_bytes + s.optimizer_bytes
    assert estimated == pytest.approx(measured, rel=0.10), (estimated, measured)


def test_every_augmentation_a_preset_can_name_is_priced():
    """kornia cannot run on meta: each module the objectives build has a measured price, none falls back to the worst."""
    from vqclip.preproduction.estimate import AUG_SAVED_BATCHES
    from vqclip.production.cutouts import AUGMENTATIONS, Cutouts, build_augmentations
    from vqclip.production.objectives.views import PixelViews

    views = PixelViews(224)
    modules = [*build_augmentations(list(AUGMENTATIONS)).children(), *Cutouts(224, 2, mode="pooled").augment.children(),
               views.perspective, views.crop]
    assert {type(m).__name__ for m in modules} <= set(AUG_SAVED_BATCHES)
