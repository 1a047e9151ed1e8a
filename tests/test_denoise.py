"""The denoise post-step: CycleGAN generator or kornia smoothing, and the fallback between them."""

from __future__ import annotations

import pytest
import torch

from vqclip.production.denoise import DENOISE_MODES, make_denoiser
from vqclip.errors import ConfigError, ModelError
from vqclip.models.cyclegan import ResnetGenerator


def _noisy_step(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A clean two-tone image with a vertical edge, and the same with strong pixel noise."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.full((1, 3, 32, 32), 0.2)
    clean[..., 16:] = 0.8
    return clean, (clean + 0.08 * torch.randn(clean.shape, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("mode", ["bilateral", "guided", "median"])
def test_smoothers_reduce_noise_and_keep_the_edge(mode):
    clean, noisy = _noisy_step()
    d = make_denoiser(mode)
    out = d(noisy)
    assert d.mode == mode and out.shape == noisy.shape and 0 <= out.min() and out.max() <= 1
    assert (out - clean).abs().mean() < 0.6 * (noisy - clean).abs().mean()
    # the step between the two halves survives: columns either side of the edge stay far apart
    assert out[..., 13].mean() < 0.35 and out[..., 18].mean() > 0.65


def test_none_only_clamps_and_single_images_work():
    d = make_denoiser("none")
    x = torch.tensor([-0.5, 0.5, 1.5]).view(3, 1, 1).expand(3, 4, 4)
    assert torch.equal(d(x), x.clamp(0, 1)) and d(x).shape == (3, 4, 4)


def test_cyclegan_from_module_and_from_file(tmp_path):
    torch.manual_seed(0)
    net = ResnetGenerator(ngf=8, n_blocks=1).eval()
    _, noisy = _noisy_step()
    direct = make_denoiser("cyclegan", net)
    with torch.no_grad():
        expected = (net(noisy) + 1) / 2
    torch.testing.assert_close(direct(noisy), expected)

    path = tmp_path / "netG_A.pth"
    torch.save({"module." + k: v for k, v in net.state_dict().items()}, path)
    from_file = make_denoiser("cyclegan", str(path))
    assert from_file.mode == "cyclegan"
    torch.testing.assert_close(from_file(noisy), expected)


def test_cyclegan_without_a_generator_falls_back_with_a_warning(tmp_path):
    with pytest.warns(RuntimeWarning, match="using 'median' instead"):
        d = make_denoiser("cyclegan", None, fallback="median", cache_dir=tmp_path, download=False)
    assert d.mode == "median" and d.requested == "cyclegan" and "not available" in d.note


def test_bad_settings_name_key_value_and_choices(tmp_path):
    with pytest.raises(ConfigError, match=r"post_denoise: 'blur' .*cyclegan, bilateral, guided, median, none"):
        make_denoiser("blur")
    with pytest.raises(ConfigError, match="post_denoise_fallback: 'cyclegan'"):
        make_denoiser("bilateral", fallback="cyclegan")
    with pytest.raises(ModelError, match="does not exist"):
        make_denoiser("cyclegan", str(tmp_path / "typo.pth"))
    assert set(DENOISE_MODES) == {"cyclegan", "bilateral", "guided", "median", "none"}


def test_registry_name_resolves_from_the_cache(tmp_path):
    from vqclip.models.registry import get_model_info

    info = get_model_info("cyclegan_text2video")
    assert info.kind == "denoiser" and info.files[0].urls == ("https://cmu.box.com/shared/static/lxgfgfw9aqia8crfyg5jw0h1gkdv64mk",)
    torch.manual_seed(0)
    net = ResnetGenerator(ngf=32, n_blocks=1, use_dropout=True).eval()  # the authors trained with dropout; > 1 MB
    (tmp_path / "denoiser").mkdir()
    torch.save(net.state_dict(), tmp_path / "denoiser" / info.files[0].filename)
    d = make_denoiser("cyclegan", None, cache_dir=tmp_path, download=False)
    _, noisy = _noisy_step()
    with torch.no_grad():
        expected = (net(noisy) + 1) / 2
    assert d.mode == "cyclegan"
    torch.testing.assert_close(d(noisy), expected)
