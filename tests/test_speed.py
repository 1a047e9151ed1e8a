"""generation.compile: one clear error for bad values and missing compilers, compiled calls only where gradients are
taken, the same gradient as eager, and a compiled bf16 render whose frames the toy CLIP still ranks to their prompt."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from vqclip.errors import ConfigError
from vqclip.production import speed
from vqclip.settings.render import config_hash, config_to_dict, load_config

TOY = {"prompts": {"texts": "a red circle on a blue background"}, "models": {"vqgan": "toy", "clip": [{"spec": "toy"}]}}


def test_compile_setting_defaults_off_and_refuses_other_values():
    assert load_config(TOY).generation.compile == "off"
    assert load_config(TOY, ["generation.compile=on"]).generation.compile == "on"
    # YAML reads a bare on/off as a boolean: a preset's `compile: on` means on
    assert load_config({**TOY, "generation": {"compile": True}}).generation.compile == "on"
    assert load_config({**TOY, "generation": {"compile": False}}).generation.compile == "off"
    with pytest.raises(ConfigError, match=r"generation.compile: 'fast' is not allowed; use one of off, on"):
        load_config(TOY, ["generation.compile=fast"])
    # it changes only the last bits (as a thread count does): the same frame settings hash
    assert config_hash(load_config(TOY, ["generation.compile=on"])) == config_hash(load_config(TOY))
    again = load_config(config_to_dict(load_config(TOY, ["generation.compile=on"])))
    assert again.generation.compile == "on"


def test_compile_refused_where_the_engine_does_not_read_it():
    with pytest.raises(ConfigError, match=r"generation.compile: 'on' is set, but generation.engine 't2v_zero' does not read it"):
        load_config({"prompts": {"texts": "a red circle"}, "generation": {"engine": "t2v_zero", "compile": "on"}})


def test_compile_needs_a_compiler(monkeypatch):
    monkeypatch.setattr(speed.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match=r"generation.compile: 'on' needs a C\+\+ compiler on the CPU \(install g\+\+\); use off"):
        speed.check_compile("on", torch.device("cpu"))
    speed.check_compile("off", torch.device("cpu"))  # off never needs one


def test_only_gradient_taking_calls_run_compiled(monkeypatch):
    calls = []

    def fake_compile(fn, **kwargs):
        def run(*args):
            calls.append(torch.is_grad_enabled())
            return fn(*args)
        return run

    monkeypatch.setattr(speed.torch, "compile", fake_compile)
    module = nn.Linear(3, 2)
    keys = list(module.state_dict())
    speed.compile_grad_forward(module)
    x = torch.randn(4, 3, requires_grad=True)
    module(x).sum().backward()
    with torch.no_grad():
        module(x)
    assert calls == [True]  # the no_grad call (previews, warps, exports) stayed eager
    assert list(module.state_dict()) == keys  # same module, same keys: checkpoints and state unchanged


def test_compiled_block_gives_eager_gradient():
    """Inductor, for real, on a decoder-like block (conv, GroupNorm, swish, upsample): the same gradient as eager."""
    torch.manual_seed(0)
    block = nn.Sequential(nn.Conv2d(8, 32, 3, padding=1), nn.GroupNorm(32, 32), nn.SiLU(),
                          nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(32, 3, 3, padding=1)).eval().requires_grad_(False)
    z = torch.randn(1, 8, 8, 8)

    def grad():
        x = z.clone().requires_grad_(True)
        out = block(x)
        out.square().mean().backward()
        return out.detach(), x.grad

    eager_out, eager_grad = grad()
    speed.compile_grad_forward(block)
    out, g = grad()
    torch.testing.assert_close(out, eager_out, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(g, eager_grad, rtol=1e-4, atol=1e-6)
    assert not torch.equal(g, torch.zeros_like(g))


@pytest.mark.slow
def test_compiled_bf16_render_still_ranks_its_prompt(tmp_path):
    """The quality bar of the fastest CPU setting (bf16 + compile): the toy CLIP ranks >= 80 % of frames to the prompt."""
    import numpy as np
    import torch.nn.functional as F
    from PIL import Image

    from vqclip.models.clip import load_perceptor
    from vqclip.production.precision import cpu_has_bf16
    from vqclip.production.render import render
    from vqclip.toy.data import COLOURS, SHAPES, caption

    precision = "bf16" if cpu_has_bf16() else "fp32"  # fp32 + compile where the CPU has no bf16
    cfg = load_config("default", ["animation.frames=4", f"generation.precision={precision}", "generation.compile=on",
                                  "generation.device=cpu", "output.video=false"])
    result = render(cfg, tmp_path / "r")
    assert result.completed and len(result.frames) == 4
    intended = cfg.prompts.texts
    distractors = [caption(c, s, b) for c in COLOURS for s in SHAPES for b in COLOURS if c != b and caption(c, s, b) != intended]
    clip = load_perceptor("toy")
    frames = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255 for p in result.frames])
    images = F.interpolate(torch.from_numpy(frames).permute(0, 3, 1, 2), size=(clip.input_size,) * 2, mode="area")
    with torch.no_grad():
        scores = clip.encode_image(images) @ clip.encode_text([intended] + distractors).T
    first = (scores.argmax(dim=1) == 0).float().mean().item()
    assert first >= 0.8, f"the intended caption ranks first on {first:.0%} of frames"


def _saved_bytes(fn) -> int:
    """Bytes autograd keeps for backward while ``fn`` runs (each storage once)."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(seen.values())


def test_checkpointed_decoder_same_gradient_less_saved_memory():
    """generation.vqgan.checkpoint: the toy VQGAN's gradient to z is unchanged, bit for bit, and it keeps far less for backward."""
    from vqclip.models.registry import resolve_model
    from vqclip.models.vqgan import load_vqgan

    config, ckpt = resolve_model("toy", "vqgan").paths
    model = load_vqgan(config, ckpt, device="cpu").requires_grad_(False)
    checkpointed = copy.deepcopy(model)
    assert speed.checkpoint_blocks(checkpointed.decoder) >= 4
    torch.manual_seed(0)
    z0 = torch.randn(1, model.embed_dim, 24, 24)

    def run(m):
        z = z0.clone().requires_grad_(True)
        out, saved = _saved_bytes(lambda: m.decode(z))
        out.square().mean().backward()
        return out.detach(), z.grad, saved

    out_a, grad_a, saved_a = run(model)
    out_b, grad_b, saved_b = run(checkpointed)
    assert torch.equal(out_a, out_b) and torch.equal(grad_a, grad_b)
    assert saved_b < saved_a / 2, (saved_a, saved_b)
    with torch.no_grad():  # previews and exports: no recomputation wrapper in the way
        assert torch.equal(checkpointed.decode(z0), model.decode(z0))


def test_checkpoint_option_reaches_the_generator_and_keeps_the_frame_hash():
    on = load_config(TOY, ["generation.vqgan.checkpoint=true"])
    assert on.generation.sections["vqgan"].checkpoint is True
    assert config_hash(on) == config_hash(load_config(TOY))  # memory for time: the same frames
    with pytest.raises(ConfigError, match=r"generation.vqgan.checkpoint"):
        load_config(TOY, ["generation.vqgan.checkpoint=sometimes"])


def test_upsample_conv_as_one_transposed_conv_is_the_same_function():
    """Nearest-2x + 3x3 conv == one stride-2 transposed conv (float64: to rounding), odd sizes and no bias included."""
    from taming.modules.diffusionmodules.model import Upsample

    torch.manual_seed(0)
    for shape, bias in (((2, 5, 7, 6), True), ((1, 4, 3, 9), False)):
        conv = nn.Conv2d(shape[1], 3, 3, padding=1, bias=bias).double()
        x = torch.randn(*shape, dtype=torch.float64)
        expected = conv(torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))
        torch.testing.assert_close(speed.upsample_conv_transposed(x, conv), expected, rtol=1e-12, atol=1e-12)
    plain = Upsample(4, with_conv=False)  # resamp_with_conv: false gets the broadcast: the very same values
    assert speed.fuse_upsample_convs(nn.Sequential(plain)) == 1
    x = torch.randn(1, 4, 5, 3)
    assert torch.equal(plain(x), torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))


def test_fused_upsample_decoder_and_where_the_generator_uses_it():
    """The toy decoder with fused upsampling: its output and gradient agree with taming's; the generator fuses
    only where a step is not the bit-pinned fp32 eager one (bf16 or compile on)."""
    from vqclip.models.registry import resolve_model
    from vqclip.models.vqgan import load_vqgan
    from vqclip.production.engines.base import EngineContext
    from vqclip.production.generators.vqgan import VQGANGenerator
    from vqclip.production.precision import Precision

    config, ckpt = resolve_model("toy", "vqgan").paths
    model = load_vqgan(config, ckpt, device="cpu").requires_grad_(False)
    other = copy.deepcopy(model)
    assert speed.fuse_upsample_convs(other.decoder) == 2  # the toy decoder upsamples f4: twice
    z0 = torch.randn(1, model.embed_dim, 8, 12)
    grads = []
    for m in (model, other):
        z = z0.clone().requires_grad_(True)
        out = m.decode(z)
        out.square().mean().backward()
        grads.append((out.detach(), z.grad))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-4, atol=1e-7)

    cpu = torch.device("cpu")
    fp32, bf16 = Precision("fp32", cpu, None, None), Precision("bf16", cpu, torch.bfloat16, None)
    for overrides, precision, fused in (([], fp32, False), (["generation.compile=on"], fp32, True), ([], bf16, True)):
        cfg = load_config(TOY, overrides)
        ctx = EngineContext(cfg, cpu, 64, 64, False, precision=precision)
        generator = VQGANGenerator(ctx, copy.deepcopy(model))
        ups = [b for b in generator.model.decoder.modules() if type(b).__name__ == "Upsample"]
        assert all(("forward" in vars(b)) == fused for b in ups), overrides


def test_seq_first_attention_is_the_same_attention():
    """The wrapper around batch-first attention: same outputs, weights and input gradients, self and cross attention."""
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    wrapped = nn.Sequential(copy.deepcopy(attention))
    assert speed.seq_first_attention(wrapped) == 1
    assert speed.seq_first_attention(wrapped) == 0  # already sequence-first inside: not wrapped twice
    x0, memory = torch.randn(3, 7, 16), torch.randn(3, 5, 16)
    for kv in (None, memory):
        outs = []
        for m in (attention, wrapped[0]):
            x = x0.clone().requires_grad_(True)
            k = x if kv is None else kv
            out, weights = m(x, k, k, need_weights=True)
            out.square().sum().backward()
            outs.append((out.detach(), weights.detach(), x.grad))
        for a, b in zip(*outs):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    assert list(wrapped[0].state_dict()) == list(attention.state_dict())


def test_patch_embedding_as_matmul_is_the_same_convolution():
    torch.manual_seed(0)
    for bias, size in ((False, (2, 3, 16, 12)), (True, (1, 3, 18, 13))):  # the second does not divide: conv floors
        conv = nn.Conv2d(3, 5, 4, stride=4, bias=bias).double()
        x0 = torch.randn(*size, dtype=torch.float64)
        results = []
        for fn in (conv, lambda x: speed.patches_as_matmul(x, conv)):
            x = x0.clone().requires_grad_(True)
            out = fn(x)
            out.square().sum().backward()
            results.append((out.detach(), x.grad))
        for a, b in zip(*results):
            torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    tower = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 2, stride=2), nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 3, stride=2))
    assert speed.fuse_patch_embedding(tower) == 1  # only the non-overlapping 2x2 / stride 2 one
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    tower(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_math_attention_and_which_perceptors_get_the_rewrites():
    """Short attention on the CPU runs with SDPA's math backend inside the tower only; fp32 eager keeps the tower as is."""
    from vqclip.models.clip import load_perceptor
    from vqclip.production.precision import Precision

    class Probe(nn.Module):
        def forward(self, x):
            return torch.backends.cuda.flash_sdp_enabled()  # the backend flags sdpa_kernel sets (CPU too)

    probe = speed.math_attention(Probe())
    assert probe(None) is False and torch.backends.cuda.flash_sdp_enabled()

    cpu = torch.device("cpu")
    fp32, bf16 = Precision("fp32", cpu, None, None), Precision("bf16", cpu, torch.bfloat16, None)
    for precision, mode, changed in ((fp32, "off", False), (fp32, "on", True), (bf16, "off", True)):
        p = load_perceptor("toy", device="cpu").requires_grad_(False)
        x0 = torch.rand(2, 3, p.input_size, p.input_size)

        def encode():
            x = x0.clone().requires_grad_(True)
            out = p.encode_image(x)
            out.square().sum().backward()
            return out.detach(), x.grad

        before = encode()
        speed.speed_up_perceptors([p], precision, mode)
        assert ("forward" in vars(p.model.visual)) == changed  # the toy tower attends over 5 tokens: math
        for a, b in zip(before, encode()):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_checkpointing_is_estimated_under_half_precision_and_renders_under_bf16(tmp_path):
    """The estimator prices a checkpointed decoder under emulated fp16 (its recompute runs in backward), and
    a real CPU render with bf16 autocast + checkpointing runs its recompute under the same autocast."""
    import vqclip
    from vqclip.production.precision import cpu_has_bf16
    from vqclip.production.render import render

    plain = vqclip.estimate_config(load_config("klee_garden", ["generation.precision=fp16"]))
    ckpt = vqclip.estimate_config(load_config("klee_garden", ["generation.precision=fp16", "generation.vqgan.checkpoint=true"]))
    assert ckpt.activation_bytes < 0.6 * plain.activation_bytes  # measured 7.4 -> 3.7 GiB in all at 640x360
    assert ckpt.tflop > plain.tflop  # the recomputed decoder forward
    precision = "bf16" if cpu_has_bf16() else "fp32"
    cfg = load_config("default", ["animation.frames=1", "generation.iterations_first_frame=2", f"generation.precision={precision}",
                                  "generation.vqgan.checkpoint=true", "generation.device=cpu", "output.video=false"])
    assert render(cfg, tmp_path / "r").completed
