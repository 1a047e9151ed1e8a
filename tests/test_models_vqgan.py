"""VQGAN: the three published config kinds load through load_vqgan; mismatches are named exactly."""

from __future__ import annotations

import pickle

import pytest
import torch
import yaml

from conftest import TINY_DDCONFIG, make_tiny_vqgan
from vqclip.errors import ConfigError, ModelError
from vqclip.models.safe_load import Placeholder, safe_load_checkpoint
from vqclip.models.vqgan import VQGAN, build_vqgan, clamp_with_grad, load_vqgan, save_taming_checkpoint


def _rows_in_codebook(z, codebook):
    flat = z.movedim(1, -1).reshape(-1, codebook.shape[1])
    return bool((flat[:, None, :] == codebook[None]).all(-1).any(-1).all())


@pytest.mark.parametrize("kind", ["vq", "gumbel", "transformer"])
def test_each_config_kind_loads_with_its_weights(taming_checkpoints, kind):
    config, ckpt, source = taming_checkpoints[kind]
    model = load_vqgan(config, ckpt)
    assert isinstance(model, VQGAN)
    assert model.kind == ("gumbel" if kind == "gumbel" else "vq")
    assert (model.factor, model.n_embed, model.embed_dim) == (2, 16, 8)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    image = torch.rand(2, 3, 16, 16)
    z = model.encode(image)
    assert z.shape == (2, 8, 8, 8)
    # encode returns codebook vectors
    assert _rows_in_codebook(z, model.codebook)
    out = model.decode(z)
    assert out.shape == (2, 3, 16, 16) and out.min() >= 0 and out.max() <= 1
    assert model.codebook.shape == (16, 8)


def test_yaml_is_taming_layout(taming_checkpoints):
    cfg = yaml.safe_load(taming_checkpoints["transformer"][0].read_text())
    assert cfg["model"]["target"] == "taming.models.cond_transformer.Net2NetTransformer"
    first = cfg["model"]["params"]["first_stage_config"]
    assert first["target"] == "taming.models.vqgan.VQModel"
    assert first["params"]["ddconfig"] == TINY_DDCONFIG
    gumbel = yaml.safe_load(taming_checkpoints["gumbel"][0].read_text())
    assert gumbel["model"]["target"] == "taming.models.vqgan.GumbelVQ"
    assert "temperature_scheduler_config" in gumbel["model"]["params"]


def test_ckpt_is_lightning_108_dict_with_pickled_callback_class(taming_checkpoints):
    ckpt = taming_checkpoints["vq"][1]
    data = safe_load_checkpoint(ckpt)
    assert list(data) == ["epoch", "global_step", "pytorch-lightning_version", "callbacks", "optimizer_states", "lr_schedulers", "state_dict"]
    assert data["pytorch-lightning_version"] == "1.0.8"
    (callback_key,) = data["callbacks"]
    assert isinstance(callback_key, type) and issubclass(callback_key, Placeholder)
    assert callback_key._origin == "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"
    assert set(data["callbacks"][callback_key]) == {"best_model_score", "best_model_path"}
    assert any(k.startswith("loss.discriminator.") for k in data["state_dict"])
    # like the published files, torch's weights-only loader refuses it
    with pytest.raises(pickle.UnpicklingError, match="ModelCheckpoint"):
        torch.load(ckpt, weights_only=True)


def test_transformer_ignores_cond_stage_and_transformer_keys(taming_checkpoints, tmp_path):
    config, ckpt, source = taming_checkpoints["transformer"]
    data = safe_load_checkpoint(ckpt)
    assert any(k.startswith("transformer.") for k in data["state_dict"])
    data["state_dict"]["cond_stage_model.colorize"] = torch.randn(3, 151, 1, 1)
    data["state_dict"]["cond_stage_model.encoder.conv_in.weight"] = torch.randn(32, 151, 3, 3)
    data["callbacks"] = {}
    torch.save(data, tmp_path / "with_cond.ckpt")
    model = load_vqgan(config, tmp_path / "with_cond.ckpt")
    assert torch.equal(model.codebook, source.codebook)


def test_n_embed_mismatch_is_named_exactly(taming_checkpoints, tmp_path):
    config, ckpt, _ = taming_checkpoints["vq"]
    cfg = yaml.safe_load(config.read_text())
    cfg["model"]["params"]["n_embed"] = 16384
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ModelError) as err:
        load_vqgan(bad, ckpt)
    assert str(err.value) == (
        f"checkpoint {str(ckpt)!r} does not match config {str(bad)!r}: "
        "n_embed: checkpoint has 16 codes (quantize.embedding.weight [16, 8]), config model.params.n_embed is 16384"
    )


def test_missing_unexpected_and_shape_keys_are_listed(taming_checkpoints, tmp_path):
    config, ckpt, _ = taming_checkpoints["transformer"]
    data = safe_load_checkpoint(ckpt)
    sd = data["state_dict"]
    del sd["first_stage_model.decoder.conv_out.bias"]
    sd["first_stage_model.extra.weight"] = torch.zeros(1)
    sd["first_stage_model.quant_conv.bias"] = torch.zeros(5)
    data["callbacks"] = {}
    torch.save(data, tmp_path / "broken.ckpt")
    with pytest.raises(ModelError) as err:
        load_vqgan(config, tmp_path / "broken.ckpt")
    msg = str(err.value)
    assert "1 missing keys: first_stage_model.decoder.conv_out.bias" in msg
    assert "1 unexpected keys: first_stage_model.extra.weight" in msg
    assert "1 shape mismatches: first_stage_model.quant_conv.bias checkpoint [5] vs config [8]" in msg


def test_transformer_config_with_plain_vq_checkpoint_says_so(taming_checkpoints):
    with pytest.raises(ModelError, match="looks like a plain VQModel checkpoint"):
        load_vqgan(taming_checkpoints["transformer"][0], taming_checkpoints["vq"][1])


def test_gumbel_checkpoint_with_vq_config_says_so(taming_checkpoints):
    with pytest.raises(ModelError, match="holds a GumbelVQ codebook"):
        load_vqgan(taming_checkpoints["vq"][0], taming_checkpoints["gumbel"][1])


def test_unknown_target_and_missing_files(taming_checkpoints, tmp_path):
    bad = tmp_path / "other.yaml"
    bad.write_text("model:\n  target: taming.models.vqgan.EMAVQ\n  params: {}\n")
    with pytest.raises(ModelError, match="model.target is 'taming.models.vqgan.EMAVQ'; allowed: taming.models.vqgan.VQModel"):
        load_vqgan(bad, taming_checkpoints["vq"][1])
    with pytest.raises(ModelError, match="does not exist"):
        load_vqgan(tmp_path / "nope.yaml", taming_checkpoints["vq"][1])
    with pytest.raises(ModelError, match="does not exist"):
        load_vqgan(taming_checkpoints["vq"][0], tmp_path / "nope.ckpt")


def test_quantize_st_snaps_to_codebook_with_identity_gradient():
    model = make_tiny_vqgan("vq")
    z = torch.randn(1, 8, 4, 4, requires_grad=True)
    z_q = model.quantize_st(z)
    assert _rows_in_codebook(z_q.detach(), model.codebook)
    (z_q * torch.arange(8.0).view(1, 8, 1, 1)).sum().backward()
    assert torch.equal(z.grad, torch.arange(8.0).view(1, 8, 1, 1).expand_as(z))


def test_decode_is_differentiable_to_z():
    model = make_tiny_vqgan("vq").requires_grad_(False)
    z = torch.randn(1, 8, 8, 8, requires_grad=True)
    model.decode(model.quantize_st(z)).mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_gumbel_encode_is_deterministic():
    model = make_tiny_vqgan("gumbel").eval()
    image = torch.rand(1, 3, 16, 16)
    assert torch.equal(model.encode(image), model.encode(image))


def test_clamp_with_grad_passes_gradient_back_toward_range():
    x = torch.tensor([-0.5, -0.5, 0.5, 1.5, 1.5], requires_grad=True)
    grad_out = torch.tensor([-1.0, 1.0, 1.0, 1.0, -1.0])
    y = clamp_with_grad(x, 0.0, 1.0)
    assert torch.equal(y.detach(), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    y.backward(grad_out)
    # below 0: only a negative gradient (descent raises x) passes; above 1: only a positive one
    assert torch.equal(x.grad, torch.tensor([-1.0, 0.0, 1.0, 1.0, 0.0]))


def test_bad_architecture_errors_name_the_setting():
    with pytest.raises(ConfigError, match="ddconfig.ch is 16; it must be a multiple of 32"):
        VQGAN({**TINY_DDCONFIG, "ch": 16}, 16, 8)
    with pytest.raises(ConfigError, match="kind 'lfq' is not known; allowed: 'vq', 'gumbel'"):
        VQGAN(TINY_DDCONFIG, 16, 8, kind="lfq")
    with pytest.raises(ConfigError, match="multiples of 2"):
        make_tiny_vqgan().encode(torch.rand(1, 3, 15, 16))
    with pytest.raises(ConfigError, match="kind 'gumbel' does not fit a 'vq' VQGAN"):
        save_taming_checkpoint(make_tiny_vqgan("vq"), "x.ckpt", "x.yaml", kind="gumbel")


def test_build_from_yaml_path_matches_architecture(taming_checkpoints):
    model = build_vqgan(taming_checkpoints["gumbel"][0])
    assert model.kind == "gumbel" and model.codebook.shape == (16, 8)


def test_real_imagenet_f16_16384_architecture_round_trip(tmp_path):
    """The registry's imagenet_f16_16384 with random weights: real format out, back in, 16x16 -> 256x256."""
    import hashlib

    from vqclip.models.registry import get_model_info

    info = get_model_info("imagenet_f16_16384")
    torch.manual_seed(0)
    model = build_vqgan("imagenet_f16_16384")
    assert sum(p.numel() for p in model.parameters()) > 70_000_000
    config, ckpt = tmp_path / "model.yaml", tmp_path / "last.ckpt"
    save_taming_checkpoint(model, ckpt, config)
    # our yaml for this architecture is byte-identical to the published heibox model.yaml
    assert hashlib.sha256(config.read_bytes()).hexdigest() == info.files[0].sha256
    conv_out = model.decoder.conv_out.weight.clone()
    del model
    loaded = load_vqgan(config, ckpt)
    assert (loaded.factor, loaded.n_embed, loaded.embed_dim) == (16, 16384, 256)
    assert torch.equal(loaded.decoder.conv_out.weight, conv_out)
    z = loaded.codebook[torch.randint(16384, (16 * 16,))].T.reshape(1, 256, 16, 16)
    with torch.no_grad():
        image = loaded.decode(z)
    assert image.shape == (1, 3, 256, 256) and 0 <= image.min() and image.max() <= 1
