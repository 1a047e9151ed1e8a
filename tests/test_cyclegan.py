"""The CycleGAN ResNet generator (paper 000's denoiser) and its loader across the published key layouts."""

from __future__ import annotations

import pytest
import torch

from vqclip.errors import ModelError
from vqclip.models.cyclegan import ResnetGenerator, build_generator, load_generator, normalize_state_dict


def _source(use_dropout: bool, ngf: int = 8, n_blocks: int = 2) -> ResnetGenerator:
    torch.manual_seed(0)
    return ResnetGenerator(ngf=ngf, n_blocks=n_blocks, use_dropout=use_dropout).eval()


def test_default_architecture_matches_the_reference_layout():
    g = build_generator()
    keys = set(g.state_dict())
    assert g.ngf == 64 and g.n_blocks == 9
    assert {"model.1.weight", "model.4.weight", "model.7.weight", "model.26.weight"} <= keys
    assert "model.10.conv_block.5.weight" in keys and "model.18.conv_block.1.bias" in keys
    assert "model.19.weight" in keys and tuple(g.state_dict()["model.19.weight"].shape) == (256, 128, 3, 3)
    assert sum(p.numel() for p in g.parameters()) == 11_378_179  # CycleGAN resnet_9blocks, ngf=64
    with_dropout = ResnetGenerator(use_dropout=True).state_dict()
    assert "model.10.conv_block.6.weight" in with_dropout and "model.10.conv_block.5.weight" not in with_dropout


@pytest.mark.parametrize("use_dropout", [False, True], ids=["no-dropout", "dropout"])
@pytest.mark.parametrize("prefix", ["", "module."], ids=["plain", "module-prefix"])
def test_loads_checkpoint_saved_with_or_without_prefix_and_dropout(tmp_path, use_dropout, prefix):
    src = _source(use_dropout)
    state = {prefix + k: v for k, v in src.state_dict().items()}
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(state, path)

    g = load_generator(path)

    assert not g.use_dropout and g.ngf == 8 and g.n_blocks == 2
    assert not any(p.requires_grad for p in g.parameters()) and not g.training
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        torch.testing.assert_close(g(x), src(x))


def test_stale_instance_norm_buffers_and_wrappers_are_accepted():
    src = _source(False)
    state = dict(src.state_dict())
    state["model.2.running_mean"] = torch.zeros(8)  # what PyTorch 0.3 saved for InstanceNorm
    state["model.2.running_var"] = torch.ones(8)
    g = load_generator({"state_dict": {"module." + k: v for k, v in state.items()}})
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(g(x), src(x))


def test_output_keeps_odd_sizes_and_range():
    g = _source(False)
    with torch.no_grad():
        y = g(torch.rand(2, 3, 17, 23))
    assert y.shape == (2, 3, 17, 23) and y.abs().max() <= 1


def test_bad_checkpoints_get_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_generator(tmp_path / "missing.pth")
    with pytest.raises(ModelError, match="model.1.weight"):
        normalize_state_dict({"encoder.weight": torch.zeros(1)})
    state = _source(False).state_dict()
    state.pop("model.4.bias")
    with pytest.raises(ModelError, match="missing"):
        load_generator(state)
