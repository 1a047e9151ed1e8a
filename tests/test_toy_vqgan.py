"""The shipped toy VQGAN: real taming formats, loaded by the real loader, and its reconstruction quality."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from vqclip.models.registry import resolve_vqgan
from vqclip.models.vqgan import load_vqgan
from tools import train_toy_vqgan as train_vqgan
from vqclip.toy.data import make_dataset
from vqclip.toy.metrics import images_to_tensor, psnr

WEIGHTS = train_vqgan.WEIGHTS_DIR
HELD_OUT_SEED = 20_000  # neither the training seed (0) nor the one the training script reports on (2)


@pytest.fixture(scope="module")
def toy_vqgan():
    config, ckpt = resolve_vqgan("toy", download=False)
    return load_vqgan(config, ckpt)


def test_registry_name_toy_resolves_to_the_packaged_files():
    config, ckpt = resolve_vqgan("toy", download=False)
    assert (config, ckpt) == (WEIGHTS / "toy_vqgan.yaml", WEIGHTS / "toy_vqgan.ckpt")


def test_yaml_is_a_taming_vqmodel_config_with_a_dummy_loss():
    cfg = yaml.safe_load((WEIGHTS / "toy_vqgan.yaml").read_text())
    model = cfg["model"]
    assert model["target"] == "taming.models.vqgan.VQModel"
    assert model["params"]["lossconfig"] == {"target": "taming.modules.losses.DummyLoss"}
    assert model["params"]["ddconfig"] == train_vqgan.TOY_DDCONFIG
    assert (model["params"]["n_embed"], model["params"]["embed_dim"]) == (train_vqgan.TOY_N_EMBED, train_vqgan.TOY_EMBED_DIM)


def test_ckpt_is_lightning_style_with_taming_keys_and_loads_weights_only():
    ckpt = torch.load(WEIGHTS / "toy_vqgan.ckpt", map_location="cpu", weights_only=True)
    assert set(ckpt) == {"epoch", "global_step", "state_dict"} and ckpt["global_step"] > 0
    keys = set(ckpt["state_dict"])
    assert "quantize.embedding.weight" in keys
    assert {"quant_conv.weight", "quant_conv.bias", "post_quant_conv.weight", "post_quant_conv.bias"} <= keys
    assert {k.split(".")[0] for k in keys} == {"encoder", "decoder", "quantize", "quant_conv", "post_quant_conv"}
    assert ckpt["state_dict"]["quantize.embedding.weight"].shape == (train_vqgan.TOY_N_EMBED, train_vqgan.TOY_EMBED_DIM)


def test_loaded_model_is_the_small_taming_architecture(toy_vqgan):
    assert (toy_vqgan.kind, toy_vqgan.factor, toy_vqgan.n_embed) == ("vq", 4, 512)
    assert not any(p.requires_grad for p in toy_vqgan.parameters())
    z = toy_vqgan.encode(torch.rand(1, 3, 64, 96))
    assert z.shape == (1, 32, 16, 24)
    assert toy_vqgan.decode(z).shape == (1, 3, 64, 96)


def test_reconstruction_psnr_on_held_out_scenes_is_at_least_25_db(toy_vqgan):
    images, _ = make_dataset(128, seed=HELD_OUT_SEED)
    x = images_to_tensor(images)
    with torch.no_grad():
        rec = torch.cat([toy_vqgan.decode(toy_vqgan.encode(x[i : i + 32])) for i in range(0, len(x), 32)])
    assert psnr(rec, x) >= 25.0


def test_training_is_deterministic_and_writes_loadable_files(tmp_path):
    cfg = train_vqgan.TrainVqganConfig(steps=4, batch_size=2, ae_steps=2, n_train=16, restart_every=2, threads=1)
    first, steps = train_vqgan.train(cfg, log=lambda line: None)
    second, _ = train_vqgan.train(cfg, log=lambda line: None)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    config, ckpt = train_vqgan.save(first, tmp_path, steps)
    loaded = load_vqgan(config, ckpt)
    assert torch.equal(loaded.codebook, first.codebook)
