"""CPU bf16 autocast: offered only where the CPU has bf16 instructions, and the toy CLIP still ranks under it."""

import pytest
import torch

from vqclip.errors import ConfigError
from vqclip.production import precision as P


def test_cpu_bf16_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(P, "cpu_has_bf16", lambda: True)
    p = P.resolve_precision("bf16", torch.device("cpu"))
    assert (p.name, p.dtype, p.scaler, p.channels_last) == ("bf16", torch.bfloat16, None, False)
    with p.autocast():
        y = torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4))
    assert y.dtype == torch.bfloat16
    # auto stays fp32 on the CPU: the frame-hash cases and every CPU render keep their numbers.
    assert P.resolve_precision("auto", torch.device("cpu")).dtype is None


def test_cpu_bf16_refused_without_bf16_instructions(monkeypatch):
    monkeypatch.setattr(P, "cpu_has_bf16", lambda: False)
    with pytest.raises(ConfigError, match=r"generation.precision: 'bf16' is not allowed on this cpu \(no AVX512-BF16 or AMX\); use auto or fp32"):
        P.resolve_precision("bf16", torch.device("cpu"))


def test_cpu_has_bf16_reads_the_cpuinfo_flags(monkeypatch, tmp_path):
    import builtins

    real_open = builtins.open
    for flags, expected in (("fpu avx512f avx512_bf16", True), ("fpu avx2 avx512f", False)):
        info = tmp_path / f"cpuinfo{expected}"
        info.write_text(f"processor : 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
        monkeypatch.setattr(builtins, "open", lambda path, *a, **k: real_open(info if path == "/proc/cpuinfo" else path, *a, **k))
        assert P.cpu_has_bf16() is expected


def test_toy_clip_ranks_under_bf16_autocast():
    """The quality bar for bf16 on the CPU: the toy CLIP ranks >= 80 % of toy scenes' captions and attributes."""
    from vqclip.models.clip import load_perceptor
    from vqclip.toy.data import make_dataset
    from vqclip.toy.metrics import zero_shot_accuracy

    clip = load_perceptor("toy", device="cpu")
    images, scenes = make_dataset(64, seed=11)
    with torch.no_grad():
        fp32 = zero_shot_accuracy(clip.encode_image, clip.encode_text, images, scenes)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = zero_shot_accuracy(clip.encode_image, clip.encode_text, images, scenes)
    for attribute in ("colour", "shape", "background", "caption"):
        assert bf16[attribute] >= 0.8, (attribute, bf16, fp32)
        assert bf16[attribute] >= fp32[attribute] - 0.05, (attribute, bf16, fp32)
